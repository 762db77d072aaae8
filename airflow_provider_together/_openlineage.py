"""
OpenLineage facets of the fine-tune and evaluation operators (``get_openlineage_facets_on_complete``).

Imported only when ``apache-airflow-providers-openlineage`` asks a finished task for its lineage, so the
OpenLineage client is never a dependency of the provider.

.. seealso:: https://openlineage.io/docs/spec/naming (dataset naming) and docs/ui.md
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attr
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import RunFacet, documentation_dataset, symlinks_dataset

from airflow_provider_together._lineage import TOGETHER_NAMESPACE, file_facts

if TYPE_CHECKING:
    from airflow_provider_together._lineage import FileFacts, FineTuneFacts

__all__ = [
    "TogetherEvaluationRunFacet",
    "TogetherFineTuneRunFacet",
    "evaluation_lineage",
    "fine_tune_lineage",
]

_SCHEMA = "https://github.com/airflow-provider-together/airflow-provider-together/blob/main/docs/ui.md"


@attr.define
class TogetherFineTuneRunFacet(RunFacet):
    """The Together job behind a run: its id, base model and config fingerprint."""

    jobId: str  # OpenLineage facets use camelCase field names
    baseModel: str | None = None
    configFingerprint: str | None = None

    @staticmethod
    def _get_schema() -> str:
        return f"{_SCHEMA}#togetherfinetune-run-facet"


@attr.define
class TogetherEvaluationRunFacet(RunFacet):
    """An evaluation's figures, and the gate the task applied to them."""

    evaluationId: str
    type: str | None = None
    status: str | None = None
    figures: dict[str, Any] = attr.field(factory=dict)
    gate: dict[str, float] = attr.field(factory=dict)

    @staticmethod
    def _get_schema() -> str:
        return f"{_SCHEMA}#togetherevaluation-run-facet"


def _input(item: FileFacts) -> Dataset:
    """The file where it came from, with its Together file as a symlink; the Together file when given as an id."""
    together = f"files/{item.file_id}" if item.file_id else None
    if item.source is None:
        return Dataset(namespace=TOGETHER_NAMESPACE, name=together or "files/unknown")
    facets: dict[str, Any] = {}
    if together is not None:
        facets["symlinks"] = symlinks_dataset.SymlinksDatasetFacet(
            identifiers=[
                symlinks_dataset.Identifier(namespace=TOGETHER_NAMESPACE, name=together, type="FILE")
            ]
        )
    namespace, name = item.source
    return Dataset(namespace=namespace, name=name, facets=facets)


def fine_tune_lineage(facts: FineTuneFacts | None) -> OperatorLineage[Dataset, RunFacet]:
    """Inputs: the training and validation files; output: the fine-tuned model (namespace ``together``)."""
    if facts is None:  # the task did not complete a job, or the job could not be read: report nothing
        return OperatorLineage()
    outputs = []
    if facts.output_model:
        description = (
            f"Fine-tuned from {facts.base_model or 'an unknown model'} by Together job {facts.job_id}"
        )
        outputs.append(
            Dataset(
                namespace=TOGETHER_NAMESPACE,
                name=facts.output_model,
                facets={
                    "documentation": documentation_dataset.DocumentationDatasetFacet(description=description)
                },
            )
        )
    run = TogetherFineTuneRunFacet(
        jobId=facts.job_id, baseModel=facts.base_model, configFingerprint=facts.config_fingerprint
    )
    return OperatorLineage(
        inputs=[_input(item) for item in facts.files], outputs=outputs, run_facets={"togetherFineTune": run}
    )


def evaluation_lineage(
    evaluation_id: str,
    input_file: Any,
    input_file_id: str | None,
    result: dict[str, Any] | None,
    gate: dict[str, float],
) -> OperatorLineage[Dataset, RunFacet]:
    """Input: the evaluated file; run facet: the figures beside the gate."""
    item = file_facts("input_file", input_file, input_file_id)
    result = result or {}
    figures = {
        key: value
        for key, value in result.items()
        if key not in ("evaluation_id", "type", "status", "result_file_id") and value is not None
    }
    run = TogetherEvaluationRunFacet(
        evaluationId=evaluation_id,
        type=result.get("type"),
        status=result.get("status"),
        figures=figures,
        gate=gate,
    )
    return OperatorLineage(
        inputs=[_input(item)] if item is not None else [], outputs=[], run_facets={"togetherEvaluation": run}
    )
