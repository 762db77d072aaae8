"""
Waiting for a job inside the worker (``deferrable=False``): the same decisions as the trigger, blocking I/O.

The sync loop and :class:`~airflow_provider_together.triggers.TogetherFineTuneTrigger` share the status
table (``classify``), the event cursor, the progress line and the payload builders, so both paths log the
same lines and end in the same event.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_together._fine_tune.payload import result_from_job
from airflow_provider_together._fine_tune.progress import (
    format_event,
    format_progress,
    new_events,
    terminal_payload,
    timeout_payload,
)

if TYPE_CHECKING:
    from airflow_provider_together._fine_tune.payload import FineTuneEventPayload, FineTuneResult
    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.models import FineTuneJob

__all__ = ["MAX_CONSECUTIVE_FAILURES", "PollFailures", "job_result", "wait_in_worker"]

#: Transient poll failures in a row a wait outlives (the trigger's default too).
MAX_CONSECUTIVE_FAILURES = 5


class _Log(Protocol):
    """Either a stdlib logger or the structlog logger Airflow gives operators (``self.log``)."""

    def info(self, event: Any, *args: Any) -> Any: ...

    def warning(self, event: Any, *args: Any) -> Any: ...


class PollFailures:
    """
    Count transient poll failures in a row, as the trigger does: one blip (a proxy's error page, a 503
    after the hook's own retries) must not fail a task whose job trains on; ``limit`` in a row does.

    :param limit: failures in a row tolerated; the next one is raised.
    """

    def __init__(self, job_id: str, log: _Log, limit: int = MAX_CONSECUTIVE_FAILURES) -> None:
        self.job_id = job_id
        self.log = log
        self.limit = max(1, limit)
        self.count = 0

    def failed(self, exc: BaseException) -> None:
        """Record a transient failure; re-raise it once ``limit`` happened in a row."""
        self.count += 1
        if self.count >= self.limit:
            raise exc
        self.log.warning(
            "Polling fine-tuning job %s failed (%d/%d in a row), retrying: %s",
            self.job_id,
            self.count,
            self.limit,
            exc,
        )

    def succeeded(self) -> None:
        """A poll worked: the count starts again."""
        self.count = 0


def job_result(hook: TogetherHook, job: FineTuneJob) -> FineTuneResult | None:
    """The summary of a completed job (with its checkpoint count), ``None`` for any other status."""
    from airflow_provider_together.models import Outcome, classify

    if classify(job) is not Outcome.SUCCEEDED:
        return None
    return result_from_job(job, len(hook.list_fine_tune_checkpoints(job.id)))


def wait_in_worker(
    hook: TogetherHook, job: FineTuneJob, *, poll_interval: float, timeout: float | None, log: _Log
) -> FineTuneEventPayload:
    """
    Poll until the job ends or ``timeout`` seconds pass, logging progress and every new Together event.

    Transient failures (no answer, 5xx, 429, an unreadable answer) are outlived up to
    :data:`MAX_CONSECUTIVE_FAILURES` in a row, like in the trigger.
    """
    from airflow_provider_together.exceptions import transient_errors
    from airflow_provider_together.models import Outcome, classify

    started = time.monotonic()
    cursor = None
    last_progress = ""
    failures = PollFailures(job.id, log)
    while True:
        try:
            job = hook.get_fine_tune(job.id)
            events = job.events if "events" in job.model_fields_set else hook.list_fine_tune_events(job.id)
        except transient_errors() as exc:
            failures.failed(exc)
            time.sleep(poll_interval)
            continue
        failures.succeeded()
        fresh, cursor = new_events(events, cursor)
        for event in fresh:
            log.info("%s", format_event(event))
        outcome = classify(job)
        if outcome is not Outcome.RUNNING:
            return terminal_payload(job, outcome, events, job_result(hook, job))
        progress = format_progress(job)
        if progress != last_progress:
            log.info("%s", progress)
            last_progress = progress
        waited = time.monotonic() - started
        if timeout is not None and waited >= timeout:
            return timeout_payload(job.id, job.status_raw or job.status.value, waited)
        time.sleep(poll_interval if timeout is None else min(poll_interval, timeout - waited))
