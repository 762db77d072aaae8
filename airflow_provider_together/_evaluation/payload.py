"""
An evaluation's single trigger event, its progress line, and the worker's wait (``deferrable=False``).

The event has the fine-tune event's shape (``status``, ``job_id``, ``job_status``, ``message``, ``result``,
``errors``), so one trigger and one ``validate_event`` serve both kinds; ``result`` holds the
:class:`~airflow_provider_together.models.EvaluationResult` figures.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

if TYPE_CHECKING:
    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.models import EvaluationJob, EvaluationResult, Outcome

__all__ = ["EvaluationEventPayload", "progress_line", "terminal_payload", "timeout_payload", "wait_in_worker"]


class EvaluationEventPayload(TypedDict):
    """Payload of the trigger's single event about an evaluation (see the fine-tune payload)."""

    status: Literal["success", "error", "cancelled", "timeout"]
    job_id: str
    job_status: str
    message: str
    result: EvaluationResult | None
    errors: list[str]


#: Transient poll failures in a row the worker's wait outlives (the trigger's default too).
MAX_CONSECUTIVE_FAILURES = 5


class _Log(Protocol):
    def info(self, event: Any, *args: Any) -> Any: ...

    def warning(self, event: Any, *args: Any) -> Any: ...


def progress_line(job: EvaluationJob) -> str:
    """One line per status change."""
    return f"Evaluation {job.workflow_id} ({job.type or 'type unknown'}): status={job.status_raw or job.status.value}"


def terminal_payload(job: EvaluationJob, outcome: Outcome) -> EvaluationEventPayload:
    """The event of an evaluation that ended: its figures, or Together's own error message."""
    from airflow_provider_together.models import Outcome

    raw = job.status_raw or job.status.value
    if outcome is Outcome.SUCCEEDED:
        return {
            "status": "success",
            "job_id": job.workflow_id,
            "job_status": raw,
            "message": f"Evaluation {job.workflow_id} completed",
            "result": job.summary(),
            "errors": [],
        }
    error = job.error_message
    return {
        "status": "error",
        "job_id": job.workflow_id,
        "job_status": raw,
        "message": f"Evaluation {job.workflow_id} ended with status {raw}: {error or 'Together gave no error message'}",
        "result": None,
        "errors": [error] if error else [],
    }


def timeout_payload(evaluation_id: str, status: str, waited_s: float) -> EvaluationEventPayload:
    """The event of a wait that hit its deadline (evaluations cannot be cancelled: it keeps running)."""
    return {
        "status": "timeout",
        "job_id": evaluation_id,
        "job_status": status,
        "message": f"Stopped waiting for evaluation {evaluation_id} after {waited_s:.0f} s (status {status}); "
        "the Evaluations API cannot cancel it",
        "result": None,
        "errors": [],
    }


def wait_in_worker(
    hook: TogetherHook, job: EvaluationJob, *, poll_interval: float, timeout: float | None, log: _Log
) -> EvaluationEventPayload:
    """
    Poll in the worker until the evaluation ends or ``timeout`` seconds pass (same table as the trigger).

    A transient failure (no answer, 5xx or 429 after the hook's own retries) is logged and polled again, up to
    ``MAX_CONSECUTIVE_FAILURES`` in a row, as the trigger does: the evaluation runs on whatever the network does.
    """
    from airflow_provider_together.exceptions import (
        TogetherRateLimitError,
        TogetherServerError,
        TogetherTransportError,
    )
    from airflow_provider_together.models import Outcome, classify

    started = time.monotonic()
    last = ""
    failures = 0
    while True:
        try:
            job = hook.get_evaluation(job.workflow_id)
        except (TogetherTransportError, TogetherServerError, TogetherRateLimitError) as exc:
            failures += 1
            if failures >= MAX_CONSECUTIVE_FAILURES:
                raise
            log.warning(
                "Polling evaluation %s failed (%d in a row), retrying: %s", job.workflow_id, failures, exc
            )
            time.sleep(poll_interval)
            continue
        failures = 0
        outcome = classify(job)
        if outcome is not Outcome.RUNNING:
            return terminal_payload(job, outcome)
        line = progress_line(job)
        if line != last:
            log.info("%s", line)
            last = line
        waited = time.monotonic() - started
        if timeout is not None and waited >= timeout:
            return timeout_payload(job.workflow_id, job.status_raw or job.status.value, waited)
        time.sleep(poll_interval if timeout is None else min(poll_interval, timeout - waited))
