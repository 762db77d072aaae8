"""
The one event the fine-tune trigger (or the synchronous wait loop) hands to ``execute_complete``.

``dag.test`` and ``airflow dags test`` drop the ``kwargs`` given to ``defer()`` (fixed upstream after
3.3.2), so the payload carries everything ``execute_complete`` needs: the job id, the final status, the
summary returned on success and Together's own error messages on failure. It is plain JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

from airflow_provider_together.exceptions import TogetherJobUserError

if TYPE_CHECKING:
    from airflow_provider_together.models import FineTuneJob

__all__ = [
    "EVENT_STATUSES",
    "FineTuneEventPayload",
    "FineTuneResult",
    "TogetherJobUserError",  # re-exported for compatibility; its home is airflow_provider_together.exceptions
    "result_from_job",
    "validate_event",
]

EventStatus = Literal["success", "error", "cancelled", "timeout"]
EVENT_STATUSES: frozenset[str] = frozenset({"success", "error", "cancelled", "timeout"})


class FineTuneResult(TypedDict):
    """The small summary a successful fine-tune task returns (its ``return_value`` XCom)."""

    job_id: str
    status: str
    model_output_name: str | None
    checkpoint_count: int | None
    token_count: int | None
    total_price_usd: float | None
    wandb_url: str | None


class FineTuneEventPayload(TypedDict):
    """
    Payload of the trigger's single event.

    :param status: what happened, from the waiting task's point of view.
    :param job_id: the Together job id.
    :param job_status: the job's last status as the API sent it (``completed``, ``user_error``, ...).
    :param message: a human sentence; on failure Together's own last error messages.
    :param result: the summary returned by the task (success only, ``None`` otherwise).
    :param errors: Together's error-level event messages, newest last (failure only).
    """

    status: EventStatus
    job_id: str
    job_status: str
    message: str
    result: FineTuneResult | None
    errors: list[str]


def result_from_job(job: FineTuneJob, checkpoint_count: int | None) -> FineTuneResult:
    """Summarise a finished job for XCom and the asset event: small, JSON-able, no secrets."""
    return FineTuneResult(
        job_id=job.id,
        status=job.status.value,
        model_output_name=job.model_output_name,
        checkpoint_count=checkpoint_count,
        token_count=job.token_count,
        total_price_usd=job.total_price_usd,
        wandb_url=job.wandb_url,
    )


def validate_event(event: Any) -> FineTuneEventPayload:
    """
    Check the payload handed to ``execute_complete`` and return it typed.

    A missing event or an unknown status is a bug (or a payload from another provider version): fail loudly
    instead of guessing whether the model exists.

    :raises TypeError: the payload is not a dict with a known ``status`` and a ``job_id``.
    """
    if not isinstance(event, dict):
        raise TypeError(f"Expected a dict event from TogetherFineTuneTrigger, got {type(event).__name__}")
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise TypeError(f"Unknown trigger event status {status!r}; expected one of {sorted(EVENT_STATUSES)}")
    if not isinstance(event.get("job_id"), str) or not event["job_id"]:
        raise TypeError("Trigger event has no job_id")
    payload = dict(event)
    payload.setdefault("job_status", "unknown")
    payload.setdefault("message", "")
    payload.setdefault("result", None)
    payload.setdefault("errors", [])
    return cast("FineTuneEventPayload", payload)
