"""
``execute_complete`` of the fine-tune operator: turn the single event into a return value or an error.

Kept apart from the operator so that the decision table (success / error / user_error / cancelled /
timeout / lost contact) reads in one place, and because it imports the error classes and the event
validation only when a task actually finishes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from airflow_provider_together._fine_tune.payload import FineTuneResult, validate_event
from airflow_provider_together.exceptions import (
    TogetherError,
    TogetherJobCancelledError,
    TogetherJobFailedError,
    TogetherJobTimeoutError,
    TogetherJobUserError,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_together._lineage import FineTuneFacts
    from airflow_provider_together.operators import TogetherFineTuneOperator

__all__ = ["attach_to_outlets", "complete", "lineage_facts"]


def attach_to_outlets(
    op: Any, context: Context, result: FineTuneResult, metadata: dict[str, Any] | None = None
) -> None:
    """Put the result (and ``metadata``) into the metadata (``extra``) of every outlet asset event of this task."""
    outlets = getattr(op, "outlets", None) or []
    if not outlets:
        return
    accessors = context.get("outlet_events")
    if accessors is None:
        return
    for outlet in outlets:
        accessors[outlet].extra.update({**cast("dict[str, Any]", result), **(metadata or {})})


def lineage_facts(op: Any) -> FineTuneFacts | None:
    """
    The files, base model and config fingerprint of the job this task completed, or ``None``.

    One ``GET`` of the job, made only when something asks (outlets, or OpenLineage), cached on the operator.
    A failure to read it only costs the lineage, never the finished task.
    """
    from airflow_provider_together._lineage import fine_tune_facts

    cached = getattr(op, "_together_lineage", None)
    job_id = getattr(op, "_together_completed_job", None)
    if cached is not None or job_id is None:
        return cast("FineTuneFacts | None", cached)
    try:
        job = op.hook.get_fine_tune(job_id)
    except TogetherError as exc:
        op.log.warning("No lineage for job %s: %s", job_id, exc)
        return None
    op._together_lineage = facts = fine_tune_facts(op, job)
    return facts


def _job_of_this_try(op: Any, context: Context) -> str | None:
    """The job id this try pushed to XCom before waiting (it survives the deferral), if any."""
    from airflow_provider_together.links import JOB_ID_XCOM_KEY

    ti = context.get("ti")
    if ti is None:
        return None
    value = ti.xcom_pull(task_ids=op.task_id, key=JOB_ID_XCOM_KEY)
    return value if isinstance(value, str) and value else None


def _is_last_try(op: Any, context: Context) -> bool:
    ti = context.get("ti")
    try_number = getattr(ti, "try_number", None)
    return not isinstance(try_number, int) or try_number > int(getattr(op, "retries", 0) or 0)


def complete(op: TogetherFineTuneOperator, context: Context, event: dict[str, Any] | None) -> FineTuneResult:
    """Implement ``TogetherFineTuneOperator.execute_complete`` (see its docstring)."""
    from airflow_provider_together.models import JobStatus

    payload = validate_event(event)
    job_id = payload["job_id"]
    waiting_on = _job_of_this_try(op, context)
    if waiting_on is not None and waiting_on != job_id:
        # The event is about another job: a trigger of an earlier try (one a user cleared) fired after this
        # try deferred, and Airflow handed its event to this try. Seen on SQLite, which reuses the freed
        # trigger id for the new deferral. That job's fate is not this try's outcome: keep waiting.
        op.log.warning(
            "Ignoring an event about job %s (%s) from an earlier try's trigger; waiting for job %s",
            job_id,
            payload["status"],
            waiting_on,
        )
        op.defer_on(context, waiting_on)
    status = payload["status"]
    message = payload["message"]
    job_status = payload["job_status"]
    if status == "success":
        result = payload["result"] or FineTuneResult(
            job_id=job_id,
            status=job_status,
            model_output_name=None,
            checkpoint_count=None,
            token_count=None,
            total_price_usd=None,
            wandb_url=None,
        )
        op._together_completed_job = job_id
        facts = lineage_facts(op) if getattr(op, "outlets", None) else None
        attach_to_outlets(op, context, result, facts.asset_metadata() if facts is not None else None)
        price = result["total_price_usd"]
        op.log.info(
            "Fine-tuning job %s completed: model %s, %s tokens, %s",
            job_id,
            result["model_output_name"],
            result["token_count"],
            f"${price:.2f}" if price is not None else "price unknown",
        )
        return result
    if status == "cancelled":
        raise TogetherJobCancelledError(message, job_id=job_id, status=job_status)
    if status == "timeout":
        if op.cancel_on_timeout:
            op.cancel_job(job_id, reason="timeout")
        raise TogetherJobTimeoutError(message, job_id=job_id, status=job_status)
    if JobStatus(job_status) is JobStatus.USER_ERROR:
        raise TogetherJobUserError(message, job_id=job_id, status=job_status)
    if JobStatus(job_status) is JobStatus.ERROR:
        raise TogetherJobFailedError(message, job_id=job_id, status=job_status)
    # Lost contact with the API while the job was still running: a retry reattaches to it. With no retry
    # left, nobody would ever look at the job again, so it must not keep running (and billing).
    if _is_last_try(op, context) and op.cancel_on_timeout:
        op.cancel_job(job_id, reason="no retries left after losing track of the job")
    raise TogetherError(message)
