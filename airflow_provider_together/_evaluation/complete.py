"""``execute_complete`` of the evaluation operator: Together's failure, or the figures and the gate's verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from airflow.providers.common.compat.sdk import AirflowSkipException

from airflow_provider_together._evaluation.gate import Gate
from airflow_provider_together._fine_tune.completion import attach_to_outlets
from airflow_provider_together._fine_tune.payload import validate_event
from airflow_provider_together.exceptions import (
    TogetherError,
    TogetherEvaluationGateError,
    TogetherJobFailedError,
    TogetherJobTimeoutError,
    TogetherJobUserError,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_together._evaluation.operator import TogetherEvaluationOperator
    from airflow_provider_together.models import EvaluationResult

__all__ = ["complete"]


def complete(
    op: TogetherEvaluationOperator, context: Context, event: dict[str, Any] | None
) -> EvaluationResult:
    """Implement ``TogetherEvaluationOperator.execute_complete`` (see its docstring)."""
    from airflow_provider_together._evaluation.operator import RESULT_XCOM_KEY
    from airflow_provider_together.models import EvaluationStatus

    payload = validate_event(event)
    evaluation_id, status, message = payload["job_id"], payload["status"], payload["message"]
    job_status = payload["job_status"]
    if status == "timeout":
        raise TogetherJobTimeoutError(message, job_id=evaluation_id, status=job_status)
    if status != "success":
        if EvaluationStatus(job_status) is EvaluationStatus.USER_ERROR:
            raise TogetherJobUserError(message, job_id=evaluation_id, status=job_status)
        if EvaluationStatus(job_status) is EvaluationStatus.ERROR:
            raise TogetherJobFailedError(message, job_id=evaluation_id, status=job_status)
        # Lost contact with the API while the evaluation ran: a retry finds it again (task state store).
        raise TogetherError(message)
    result = cast("EvaluationResult", payload["result"])
    context["ti"].xcom_push(key=RESULT_XCOM_KEY, value=dict(result))
    op._together_result = dict(result)  # for get_openlineage_facets_on_complete, whatever the gate decides
    # Checked when the task started; a resumed task renders its templates again, so re-read the numbers.
    gate, _ = Gate.coerce(
        {
            "min_pass_percentage": op.min_pass_percentage,
            "min_mean_score": op.min_mean_score,
            "min_win_rate": op.min_win_rate,
        }
    )
    verdict = gate.decide(result)
    if not verdict.passed:
        if op.soft_fail:
            raise AirflowSkipException(f"{verdict.message}; skipped (soft_fail=True)")
        assert verdict.figure is not None
        assert verdict.threshold is not None
        raise TogetherEvaluationGateError(
            verdict.message,
            evaluation_id=evaluation_id,
            figure=verdict.figure,
            value=verdict.value,
            threshold=verdict.threshold,
        )
    op.log.info("%s", verdict.message)
    attach_to_outlets(op, context, cast("Any", result))
    return result
