"""``get_openlineage_facets_on_complete`` of the evaluation operator: the input file and the figures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_together.exceptions import TogetherError

if TYPE_CHECKING:
    from airflow_provider_together._evaluation.operator import TogetherEvaluationOperator

__all__ = ["evaluation_facets"]

_GATE_ARGUMENTS = ("min_pass_percentage", "min_mean_score", "min_win_rate")


def _gate(op: TogetherEvaluationOperator) -> dict[str, float]:
    gate: dict[str, float] = {}
    for name in _GATE_ARGUMENTS:
        value = getattr(op, name, None)
        try:
            if value not in (None, ""):
                gate[name] = float(value)
        except (TypeError, ValueError):
            continue
    return gate


def _input_file_id(op: TogetherEvaluationOperator, evaluation_id: str) -> str | None:
    """The Together id of the evaluated file: the argument itself, else what the evaluation was given."""
    from airflow_provider_together._lineage import is_file_id

    if is_file_id(op.input_file):
        return str(op.input_file)
    try:
        parameters = op.hook.get_evaluation(evaluation_id).parameters or {}
    except TogetherError as exc:
        op.log.warning("No input file id for the lineage of evaluation %s: %s", evaluation_id, exc)
        return None
    value = parameters.get("input_data_file_path")
    return value if isinstance(value, str) and value else None


def evaluation_facets(op: TogetherEvaluationOperator) -> Any:
    """Build the ``OperatorLineage`` of a finished evaluation task (empty when it has no figures)."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_together._openlineage import evaluation_lineage

    result: dict[str, Any] | None = getattr(op, "_together_result", None)
    if not result or not result.get("evaluation_id"):
        return OperatorLineage()
    evaluation_id = str(result["evaluation_id"])
    return evaluation_lineage(
        evaluation_id, op.input_file, _input_file_id(op, evaluation_id), result, _gate(op)
    )
