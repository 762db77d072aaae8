"""Lineage of finished tasks, read back through apache-airflow-providers-openlineage's own classes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _fine_tune_support import BASE_MODEL, FAST, FakeTI, make_context, make_operator

pytest.importorskip("airflow.providers.openlineage")

from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import Dataset
from openlineage.client.serde import Serde

from airflow_provider_together._lineage import dataset_name
from airflow_provider_together._openlineage import (
    TogetherEvaluationRunFacet,
    TogetherFineTuneRunFacet,
)
from airflow_provider_together.hooks import TogetherHook
from airflow_provider_together.models import FineTuneConfig
from airflow_provider_together.operators import TogetherEvaluationOperator

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def emu(together_emulator_conn: Any) -> Any:
    together_emulator_conn.admin.update_settings(speed=FAST)
    return together_emulator_conn


class _Accessor:
    def __init__(self, extras: dict[str, dict[str, Any]], name: str) -> None:
        self.extra = extras.setdefault(name, {})


def _outlets(context: dict[str, Any]) -> dict[str, dict[str, Any]]:
    extras: dict[str, dict[str, Any]] = {}
    context["outlet_events"] = {"model": _Accessor(extras, "model")}
    return extras


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s3://bucket/data/train.jsonl", ("s3://bucket", "data/train.jsonl")),
        ("gs://b/k.jsonl", ("gs://b", "k.jsonl")),
        ("/data/train.jsonl", ("file", "/data/train.jsonl")),
        ("file:///data/train.jsonl", ("file", "/data/train.jsonl")),
        ("file-0b7a9c1d-aaaa", None),
        (None, None),
    ],
)
def test_files_are_named_the_openlineage_way(value: Any, expected: Any) -> None:
    assert dataset_name(value) == expected


def test_fine_tune_reports_its_files_and_model_and_fills_the_asset_metadata(emu: Any, tmp_path: Path) -> None:
    op = make_operator(tmp_path, deferrable=False, outlets=["model"])
    path = op.training_file
    context = make_context(FakeTI())
    extras = _outlets(context)

    result = op.execute(context)

    job = TogetherHook().get_fine_tune(result["job_id"])
    assert job.training_file is not None
    meta = extras["model"]
    assert meta["job_id"] == job.id  # the result is still there
    assert meta["base_model"] == BASE_MODEL
    assert meta["training_file_id"] == job.training_file
    assert "validation_file_id" not in meta  # no validation file (the API sends "")
    # The fingerprint the operator takes before submitting: the user's config, with the uploaded file's id.
    expected = FineTuneConfig.parse({"model": BASE_MODEL, "training_file": job.training_file}).fingerprint()
    assert meta["config_fingerprint"] == expected
    json.dumps(meta)  # asset extras must be JSON

    lineage = op.get_openlineage_facets_on_complete(None)
    assert isinstance(lineage, OperatorLineage)
    (source,) = lineage.inputs
    assert isinstance(source, Dataset)
    assert (source.namespace, source.name) == ("file", str(Path(path).resolve()))
    (symlink,) = source.facets["symlinks"].identifiers
    assert (symlink.namespace, symlink.name, symlink.type) == (
        "together",
        f"files/{job.training_file}",
        "FILE",
    )
    (model,) = lineage.outputs
    assert (model.namespace, model.name) == ("together", job.model_output_name)
    assert BASE_MODEL in model.facets["documentation"].description
    run = lineage.run_facets["togetherFineTune"]
    assert isinstance(run, TogetherFineTuneRunFacet)
    assert (run.jobId, run.baseModel, run.configFingerprint) == (job.id, BASE_MODEL, expected)
    # What the OpenLineage client would send: camelCase fields and the facet's schema URL.
    sent = Serde.to_dict(run)
    assert sent["jobId"] == job.id
    assert sent["_schemaURL"].endswith("#togetherfinetune-run-facet")


def test_a_file_given_as_an_id_is_the_together_dataset(emu: Any, tmp_path: Path) -> None:
    from _fine_tune_support import write_training_file

    hook = TogetherHook()
    file_id = hook.upload_file(write_training_file(tmp_path / "t.jsonl")).id
    hook.wait_for_file_ready(file_id, timeout=30, poll_interval=0.05)
    op = make_operator(tmp_path, deferrable=False, training_file=file_id)
    op.execute(make_context(FakeTI()))
    (source,) = op.get_openlineage_facets_on_complete(None).inputs
    assert (source.namespace, source.name) == ("together", f"files/{file_id}")


def test_a_task_without_a_finished_job_reports_nothing(tmp_path: Path) -> None:
    op = make_operator(tmp_path, deferrable=False)
    assert op.get_openlineage_facets_on_complete(None) == OperatorLineage()


def test_evaluation_reports_its_input_file_and_figures(emu: Any, tmp_path: Path) -> None:
    rows = tmp_path / "eval.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"prompt": f"q {i}", "new_answer": f"new {i}", "prod_answer": f"old {i}"}) + "\n"
            for i in range(20)
        ),
        encoding="utf-8",
    )
    emu.admin.set_evaluation_quality("new_answer", 0.9)
    emu.admin.set_evaluation_quality("prod_answer", 0.2)
    op = TogetherEvaluationOperator(
        task_id="evaluate",
        evaluation_type="compare",
        parameters={
            "judge": {
                "model": "judge/model",
                "model_source": "serverless",
                "system_template": "Which answer to {{prompt}} is better?",
            },
            "model_a": "new_answer",
            "model_b": "prod_answer",
        },
        input_file=str(rows),
        min_win_rate=0.5,
        deferrable=False,
        poll_interval=0.05,
    )
    result = op.execute(make_context(FakeTI(task_id="evaluate")))

    lineage = op.get_openlineage_facets_on_complete(None)
    (source,) = lineage.inputs
    assert (source.namespace, source.name) == ("file", str(rows))
    (symlink,) = source.facets["symlinks"].identifiers
    assert symlink.namespace == "together"
    assert symlink.name.startswith("files/file-")
    run = lineage.run_facets["togetherEvaluation"]
    assert isinstance(run, TogetherEvaluationRunFacet)
    assert run.evaluationId == result["evaluation_id"]
    assert run.type == "compare"
    assert run.figures["win_rate"] == pytest.approx(result["win_rate"])
    assert run.gate == {"min_win_rate": 0.5}
    assert Serde.to_dict(run)["figures"]["a_wins"] == result["a_wins"]
