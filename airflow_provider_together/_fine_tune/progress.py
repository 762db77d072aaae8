"""
What a waiting task reports while a job trains, shared by the trigger and the synchronous wait loop.

Events are streamed with a cursor instead of a count: the API returns the whole event list on every poll,
and a restarted trigger must skip exactly the events already written to the task log. The cursor is the
newest event time plus the keys of the events at that time (two events can share a timestamp), so it is
small, JSON-able (it travels in the trigger's kwargs) and does not depend on the list's length.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_together._fine_tune.payload import FineTuneEventPayload, FineTuneResult
    from airflow_provider_together.models import FineTuneEvent, FineTuneJob, Outcome

__all__ = [
    "EventCursor",
    "error_messages",
    "format_event",
    "format_progress",
    "later_cursor",
    "new_events",
    "terminal_payload",
    "timeout_payload",
]

#: How many of Together's error messages a failure carries (the newest ones explain the failure).
MAX_ERROR_MESSAGES = 5


class EventCursor(TypedDict):
    """Position in a job's event log: newest event time seen and the keys of the events at that time."""

    t: float | None
    keys: list[str]


def _event_time(event: FineTuneEvent) -> float:
    raw = event.created_at
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str) and raw:
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    # No usable time: such an event sorts before everything, so it is logged at most once (on the first poll).
    return float("-inf")


def _event_key(event: FineTuneEvent) -> str:
    if event.hash:
        return event.hash
    basis = f"{event.created_at}|{event.type}|{event.step}|{event.message}"
    return hashlib.sha1(basis.encode(), usedforsecurity=False).hexdigest()[:16]


def new_events(
    events: Sequence[FineTuneEvent], cursor: EventCursor | None
) -> tuple[list[FineTuneEvent], EventCursor | None]:
    """
    Return the events after ``cursor`` (oldest first) and the advanced cursor.

    The API lists events oldest first, so the scan walks back from the end and stops at the first event
    already seen: a poll with nothing new costs one comparison, which matters with a thousand triggers.
    """
    if not events:
        return [], cursor
    fresh: list[FineTuneEvent] = []
    # A cursor whose time is None was taken at events without a usable time: those sort first (-inf).
    seen_t = None if cursor is None else (cursor["t"] if cursor["t"] is not None else float("-inf"))
    seen_keys = set(cursor["keys"]) if cursor else set()
    batch_keys: set[str] = set()
    for event in reversed(events):
        t, key = _event_time(event), _event_key(event)
        if seen_t is not None and (t < seen_t or (t == seen_t and key in seen_keys)):
            break
        if key in batch_keys:  # the same event listed twice: write it once
            continue
        batch_keys.add(key)
        fresh.append(event)
    if not fresh:
        return [], cursor
    fresh.reverse()
    newest = max(_event_time(e) for e in fresh)
    keys = [_event_key(e) for e in fresh if _event_time(e) == newest]
    if seen_t is not None and newest == seen_t:
        keys = sorted(seen_keys.union(keys))
    return fresh, EventCursor(t=newest if newest != float("-inf") else None, keys=keys)


def later_cursor(a: EventCursor | None, b: EventCursor | None) -> EventCursor | None:
    """Return whichever cursor is further along (used when a re-created trigger finds a persisted one)."""
    if a is None or a.get("t") is None:
        return b or a
    if b is None or b.get("t") is None:
        return a
    if a["t"] == b["t"]:
        return EventCursor(t=a["t"], keys=sorted(set(a["keys"]) | set(b["keys"])))
    return a if a["t"] > b["t"] else b  # type: ignore[operator]


def as_cursor(value: Any) -> EventCursor | None:
    """Read a cursor from JSON (kwargs or XCom), ignoring anything malformed rather than failing a wait."""
    if isinstance(value, dict) and isinstance(value.get("keys"), list):
        t = value.get("t")
        if t is None or isinstance(t, (int, float)):
            return EventCursor(t=None if t is None else float(t), keys=[str(k) for k in value["keys"]])
    return None


def format_event(event: FineTuneEvent) -> str:
    """One log line per Together event, in Together's words."""
    where = f" step {event.step}" if event.step else ""
    kind = event.kind or "event"
    return f"Together event [{kind}{where}] {event.message or ''}".rstrip()


def format_progress(job: FineTuneJob) -> str:
    """Status, steps, epochs and ETA in one line."""
    parts = [f"status={job.status_raw or job.status.value}"]
    if job.total_steps:
        parts.append(f"steps={job.steps_completed or 0}/{job.total_steps}")
    if job.n_epochs:
        parts.append(f"epochs={job.epochs_completed or 0}/{job.n_epochs}")
    if job.queue_depth:
        parts.append(f"queue_depth={job.queue_depth}")
    if job.progress and job.progress.estimate_available and job.progress.seconds_remaining is not None:
        parts.append(f"eta={job.progress.seconds_remaining}s")
    return f"Fine-tuning job {job.id}: " + ", ".join(parts)


def error_messages(events: Sequence[FineTuneEvent]) -> list[str]:
    """Together's own error messages (error-level or job-error events), newest last."""
    found = [
        e.message
        for e in events
        if e.message and (e.is_error or e.is_type("job_error", "job_user_error", "billing_limit"))
    ]
    return found[-MAX_ERROR_MESSAGES:]


def terminal_payload(
    job: FineTuneJob,
    outcome: Outcome,
    events: Sequence[FineTuneEvent],
    result: FineTuneResult | None,
) -> FineTuneEventPayload:
    """Build the single event for a job that reached a terminal status."""
    # Imported here so that importing the trigger module stays free of the pydantic models.
    from airflow_provider_together.models import Outcome

    raw = job.status_raw or job.status.value
    if outcome is Outcome.SUCCEEDED:
        return {
            "status": "success",
            "job_id": job.id,
            "job_status": raw,
            "message": f"Fine-tuning job {job.id} completed: model {job.model_output_name}",
            "result": result,
            "errors": [],
        }
    if outcome is Outcome.CANCELLED:
        return {
            "status": "cancelled",
            "job_id": job.id,
            "job_status": raw,
            "message": f"Fine-tuning job {job.id} was cancelled",
            "result": None,
            "errors": error_messages(events),
        }
    errors = error_messages(events)
    detail = "; ".join(errors) if errors else "Together gave no error message"
    return {
        "status": "error",
        "job_id": job.id,
        "job_status": raw,
        "message": f"Fine-tuning job {job.id} ended with status {raw}: {detail}",
        "result": None,
        "errors": errors,
    }


def timeout_payload(job_id: str, job_status: str, waited_s: float) -> FineTuneEventPayload:
    """Build the event for a wait that hit its deadline while the job was still running."""
    return {
        "status": "timeout",
        "job_id": job_id,
        "job_status": job_status,
        "message": f"Stopped waiting for fine-tuning job {job_id} after {waited_s:.0f} s (status {job_status})",
        "result": None,
        "errors": [],
    }
