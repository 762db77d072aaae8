"""
What differs between the kinds of Together job one trigger waits for: fine-tuning jobs and evaluations.

:class:`~airflow_provider_together.triggers.TogetherJobTrigger` holds the wait itself (deadline, polling grid,
transient failures, event cursor, one event, kill handling); a :class:`JobKind` says how to read one kind of
job, what its events and progress line are, what its final event carries, and whether it can be cancelled.
Status decisions stay in the one ``classify()``. Cheap to import (the trigger module imports it at the top):
models and hooks are imported inside the methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.models import FineTuneEvent, Outcome

__all__ = ["KINDS", "EvaluationKind", "FineTuneKind", "JobKind", "job_kind"]


class JobKind:
    """One kind of Together job, as the trigger sees it."""

    #: The ``kind`` kwarg of the trigger.
    name = ""
    #: How log lines and messages call it.
    noun = "job"
    #: Whether the job has an event log to stream (and an event cursor to keep).
    has_events = False
    #: Whether the API can cancel it.
    cancellable = False

    async def fetch(self, hook: TogetherHook, job_id: str) -> Any:
        """Read the job (one poll)."""
        raise NotImplementedError

    async def events(self, hook: TogetherHook, job_id: str, job: Any) -> list[FineTuneEvent]:
        """The job's events so far (oldest first); none for kinds without an event log."""
        return []

    def progress(self, job: Any) -> str:
        """The progress line, logged when it changes."""
        raise NotImplementedError

    async def final_payload(
        self, hook: TogetherHook, job: Any, outcome: Outcome, events: list[FineTuneEvent], log: Any
    ) -> dict[str, Any]:
        """The single event of a job that ended."""
        raise NotImplementedError

    def timeout_payload(self, job_id: str, status: str, waited_s: float) -> dict[str, Any]:
        """The single event of a wait that hit its deadline."""
        raise NotImplementedError

    async def cancel(self, hook: TogetherHook, job_id: str) -> Any:
        """Ask Together to stop the job (only called when :attr:`cancellable`)."""
        raise NotImplementedError

    def is_live(self, job: Any) -> bool:
        """Whether the job may still run (and bill)."""
        from airflow_provider_together.models import Outcome, classify

        return classify(job) is Outcome.RUNNING


class FineTuneKind(JobKind):
    """A fine-tuning job: events streamed, checkpoints counted at the end, cancellable."""

    name = "fine-tune"
    noun = "fine-tuning job"
    has_events = True
    cancellable = True

    async def fetch(self, hook: TogetherHook, job_id: str) -> Any:
        """``GET /fine-tunes/{id}``."""
        return await hook.aget_fine_tune(job_id)

    async def events(self, hook: TogetherHook, job_id: str, job: Any) -> list[FineTuneEvent]:
        """The events embedded in the job; only a server that omits them costs a second request."""
        if "events" in job.model_fields_set:
            return list(job.events)
        return await hook.alist_fine_tune_events(job_id)

    def progress(self, job: Any) -> str:
        """Status, steps, epochs and ETA."""
        from airflow_provider_together._fine_tune.progress import format_progress

        return format_progress(job)

    async def final_payload(
        self, hook: TogetherHook, job: Any, outcome: Outcome, events: list[FineTuneEvent], log: Any
    ) -> dict[str, Any]:
        """The result (with the checkpoint count) on success, Together's error events otherwise."""
        from airflow_provider_together._fine_tune.payload import result_from_job
        from airflow_provider_together._fine_tune.progress import terminal_payload
        from airflow_provider_together.exceptions import TogetherError
        from airflow_provider_together.models import Outcome

        result = None
        if outcome is Outcome.SUCCEEDED:
            try:
                count: int | None = len(await hook.alist_fine_tune_checkpoints(job.id))
            except TogetherError as exc:
                # The model exists; a missing checkpoint count must not fail the task.
                log.warning("Could not list checkpoints of %s: %s", job.id, exc)
                count = None
            result = result_from_job(job, count)
        return dict(terminal_payload(job, outcome, events, result))

    def timeout_payload(self, job_id: str, status: str, waited_s: float) -> dict[str, Any]:
        """Stopped waiting; the operator cancels the job (``cancel_on_timeout``)."""
        from airflow_provider_together._fine_tune.progress import timeout_payload

        return dict(timeout_payload(job_id, status, waited_s))

    async def cancel(self, hook: TogetherHook, job_id: str) -> Any:
        """``POST /fine-tunes/{id}/cancel``."""
        return await hook.acancel_fine_tune(job_id)

    def is_live(self, job: Any) -> bool:
        """Running, and nobody asked Together to stop it."""
        from airflow_provider_together._fine_tune.abandoned import is_live

        return is_live(job)


class EvaluationKind(JobKind):
    """An evaluation: no event log, figures at the end, and no cancel in the API."""

    name = "evaluation"
    noun = "evaluation"

    async def fetch(self, hook: TogetherHook, job_id: str) -> Any:
        """``GET /evaluation/{id}`` (the full object: its ``type`` says how to read the results)."""
        return await hook.aget_evaluation(job_id)

    def progress(self, job: Any) -> str:
        """Type and status."""
        from airflow_provider_together._evaluation.payload import progress_line

        return progress_line(job)

    async def final_payload(
        self, hook: TogetherHook, job: Any, outcome: Outcome, events: list[FineTuneEvent], log: Any
    ) -> dict[str, Any]:
        """The figures on success, Together's own error message otherwise."""
        from airflow_provider_together._evaluation.payload import terminal_payload

        return dict(terminal_payload(job, outcome))

    def timeout_payload(self, job_id: str, status: str, waited_s: float) -> dict[str, Any]:
        """Stopped waiting; the evaluation keeps running (nothing can cancel it)."""
        from airflow_provider_together._evaluation.payload import timeout_payload

        return dict(timeout_payload(job_id, status, waited_s))


KINDS: dict[str, JobKind] = {kind.name: kind for kind in (FineTuneKind(), EvaluationKind())}


def job_kind(name: str) -> JobKind:
    """The kind called ``name``; a ``ValueError`` naming the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"Unknown Together job kind {name!r}; expected one of {sorted(KINDS)}") from None
