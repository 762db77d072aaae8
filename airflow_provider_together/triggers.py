"""
TogetherJobTrigger: waits in the triggerer for a Together job of a given kind (a fine-tuning job or an
evaluation), streaming a fine-tune's events to the task log. ``TogetherFineTuneTrigger`` is its fine-tune form,
with the kwargs serialized triggers already stored in users' databases.

What differs between kinds (how to read the job, its progress line, final event, whether it can be cancelled)
is a ``JobKind`` (``_job_kinds``); everything below is shared. Design points (see docs/operators.md):

* Fully async: every call goes through the hook's ``a*`` twins, which share one ``httpx.AsyncClient`` per
  event loop and fetch the connection with the async lookup. Nothing blocks the triggerer loop.
* A wall-clock deadline (``end_time``, epoch seconds) lives in the kwargs, so a trigger re-created after a
  triggerer restart keeps the original deadline and ends with a clean ``timeout`` event that the operator
  turns into a cancel.
* Event cursor: the trigger logs every new Together event once. The cursor starts in the kwargs (set by
  the operator) and advances in memory (``serialize()`` shows it). Airflow re-creates a trigger from the
  kwargs it was *deferred* with, so the trigger also mirrors the cursor into its task instance's XCom
  (key ``together_event_cursor``) when the async XCom API exists (Airflow 3.3+), and a re-created trigger
  starts from the later of the two. On 3.1 / 3.2 a re-created trigger may repeat the events logged since
  the deferral, never lose one.
* Exactly one event, carrying everything ``execute_complete`` needs (``dag.test`` drops defer kwargs).
* ``on_kill()`` (Airflow 3.3, user marked the task failed/success or cleared it) cancels the job when
  ``cancel_on_kill``. On 3.1 / 3.2, which have no trigger ``on_kill``, ``cleanup()`` does it instead, but only
  when the trigger has not fired and Airflow says its task instance is no longer deferred: cleanup also runs on
  every triggerer restart and takeover, where the task stays deferred (``_kill_check``). The kill's work runs
  to its end even when Airflow cancels the trigger again meanwhile (its runner re-sends a cancel every loop).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_together._fine_tune.pacing import first_poll_delay, sleep_on_grid
from airflow_provider_together._fine_tune.progress import (
    EventCursor,
    as_cursor,
    format_event,
    later_cursor,
    new_events,
)
from airflow_provider_together._fine_tune.reattach import comms_errors
from airflow_provider_together._job_kinds import job_kind

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine

    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_together._fine_tune.payload import FineTuneEventPayload
    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.models import FineTuneEvent

__all__ = [
    "CURSOR_XCOM_KEY",
    "TogetherFineTuneTrigger",
    "TogetherJobTrigger",
    "first_poll_delay",
    "seed_cursor_xcom",
]


_XCOM_ERRORS = comms_errors()

#: XCom key (on the waiting task instance) where the trigger mirrors its event cursor.
CURSOR_XCOM_KEY = "together_event_cursor"


def seed_cursor_xcom(context: Context) -> None:
    """
    Store an empty event cursor before deferring, so that the trigger's first read of it finds a value.

    Airflow's API client logs an *error* ("XCom not found") for every read of a missing XCom; without
    the seed, every trigger start would put one in the triggerer's log. Called on a try's first deferral
    only: a re-deferral keeps the cursor the earlier trigger left.
    """
    context["ti"].xcom_push(key=CURSOR_XCOM_KEY, value={"t": None, "keys": []})


#: How long ``on_kill`` waits for the cancel call; Airflow bounds on_kill itself at [triggerer] on_kill_timeout.
CANCEL_TIMEOUT_S = 20.0
#: How long ``on_kill`` then spends checking whether a failed cancel matters (both stay within that bound).
STATUS_TIMEOUT_S = 5.0

#: A killed trigger's cancel work still running after Airflow stopped waiting for it. The loop keeps only weak
#: references to tasks; without these a pending cancel could be collected mid-call (see ``_run_to_the_end``).
_KILL_WORK: set[asyncio.Task[None]] = set()


def _event(payload: FineTuneEventPayload | dict[str, Any]) -> TriggerEvent:
    return TriggerEvent(payload)  # type: ignore[no-untyped-call]  # Airflow's TriggerEvent is untyped


class TogetherJobTrigger(BaseTrigger):
    """
    Poll a Together job of a given kind until it ends, then fire one event.

    :param job_id: the Together job id (``ft-...``, or an evaluation's ``workflow_id``).
    :param kind: ``fine-tune`` or ``evaluation`` (see ``_job_kinds``).
    :param together_conn_id: the Together connection; only its id travels, never the key.
    :param poll_interval: seconds between polls.
    :param end_time: wall-clock deadline (epoch seconds); past it the trigger fires a ``timeout`` event.
        ``None`` waits as long as Airflow lets it.
    :param cancel_on_kill: cancel the job when a user kills the deferred task (``on_kill`` on Airflow 3.3+,
        ``cleanup`` on 3.1 / 3.2); ignored for kinds the API cannot cancel (evaluations).
    :param event_cursor: position in the job's event log already written to the task log.
    :param max_consecutive_failures: transient API failures tolerated in a row before giving up; a
        blip must not fail the task, since a task retry costs a reattach round-trip at best.
    :param first_poll_jitter: maximum random delay before the first poll; by default the first poll comes
        between ``min(poll_interval, 2)`` and ``min(poll_interval, 30)`` seconds after the trigger starts.
    """

    def __init__(
        self,
        *,
        job_id: str,
        kind: str = "fine-tune",
        together_conn_id: str = "together_default",
        poll_interval: float = 60.0,
        end_time: float | None = None,
        cancel_on_kill: bool = True,
        event_cursor: dict[str, Any] | None = None,
        max_consecutive_failures: int = 5,
        first_poll_jitter: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.job_id = job_id
        self.kind = kind
        self._kind = job_kind(kind)
        self.together_conn_id = together_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.cancel_on_kill = cancel_on_kill
        self.event_cursor: EventCursor | None = as_cursor(event_cursor)
        self.max_consecutive_failures = max(1, int(max_consecutive_failures))
        self.first_poll_jitter = first_poll_jitter
        self._no_cursor_store = False
        self._fired = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and exactly the constructor kwargs (ids and numbers; never a secret)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "kind": self.kind,
                "together_conn_id": self.together_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "cancel_on_kill": self.cancel_on_kill,
                "event_cursor": dict(self.event_cursor) if self.event_cursor else None,
                "max_consecutive_failures": self.max_consecutive_failures,
                "first_poll_jitter": self.first_poll_jitter,
            },
        )

    def _hook(self) -> TogetherHook:
        from airflow_provider_together.hooks import TogetherHook

        return TogetherHook(together_conn_id=self.together_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job ends or the deadline passes; yield exactly one event."""
        from airflow_provider_together._transport.client import loop_user

        # Counted in: the last trigger of a loop to stop closes the loop's idle clients (_transport.client).
        async with loop_user():
            async for event in self._poll():
                yield event

    async def _poll(self) -> AsyncIterator[TriggerEvent]:
        kind = self._kind
        # Imported here, not at module top: the operator module imports this one lazily, and DAG parsing
        # must not pay for httpx-based hooks or pydantic models.
        import httpx

        from airflow_provider_together.exceptions import TogetherError, transient_errors
        from airflow_provider_together.models import Outcome, classify

        # No answer, 5xx, 429 or an unreadable answer: the next poll may well work (counted in a row).
        transient: tuple[type[Exception], ...] = (*transient_errors(), httpx.HTTPError)
        hook = self._hook()
        if kind.has_events:
            self.event_cursor = later_cursor(self.event_cursor, await self._load_persisted_cursor())
        delay = first_poll_delay(self.poll_interval, self.first_poll_jitter)
        if delay > 0:
            # Never earlier than drawn: the first poll's floor (MIN_FIRST_POLL_DELAY_S) guards a scheduler race.
            await sleep_on_grid(delay, self.poll_interval, early=False)

        failures = 0
        last_status = "unknown"
        last_progress = ""
        started = time.monotonic()
        while True:
            if self.end_time is not None and time.time() >= self.end_time:
                yield self._fire(kind.timeout_payload(self.job_id, last_status, time.monotonic() - started))
                return
            try:
                job = await kind.fetch(hook, self.job_id)
                events = await kind.events(hook, self.job_id, job)
            except transient as exc:
                failures += 1
                if failures >= self.max_consecutive_failures:
                    yield self._fire(self._lost_contact(last_status, failures, exc))
                    return
                self.log.warning(
                    "Polling %s %s failed (%d/%d in a row), retrying: %s",
                    kind.noun,
                    self.job_id,
                    failures,
                    self.max_consecutive_failures,
                    exc,
                )
                await sleep_on_grid(self._sleep_for(), self.poll_interval)
                continue
            except TogetherError as exc:
                # Not transient (auth, not found, bad request): waiting longer will not fix it.
                yield self._fire(self._lost_contact(last_status, failures + 1, exc))
                return
            failures = 0
            last_status = job.status_raw or job.status.value
            await self._stream(events)
            outcome = classify(job)
            if outcome is not Outcome.RUNNING:
                yield self._fire(await kind.final_payload(hook, job, outcome, events, self.log))
                return
            progress = kind.progress(job)
            if progress != last_progress:
                self.log.info("%s", progress)
                last_progress = progress
            await sleep_on_grid(self._sleep_for(), self.poll_interval)

    def _fire(self, payload: FineTuneEventPayload | dict[str, Any]) -> TriggerEvent:
        # Remembered for cleanup(): a trigger that fired was not killed, whatever state its task is in next.
        self._fired = True
        return _event(payload)

    async def _stream(self, events: list[FineTuneEvent]) -> None:
        fresh, cursor = new_events(events, self.event_cursor)
        if not fresh:
            return
        for event in fresh:
            self.log.info("%s", format_event(event))
        self.event_cursor = cursor
        await self._persist_cursor()

    def _lost_contact(self, last_status: str, failures: int, exc: BaseException) -> FineTuneEventPayload:
        return {
            "status": "error",
            "job_id": self.job_id,
            "job_status": last_status,
            "message": f"Lost track of {self._kind.noun} {self.job_id} after {failures} failed poll(s): {exc}",
            "result": None,
            "errors": [],
        }

    def _sleep_for(self) -> float:
        if self.end_time is None:
            return self.poll_interval
        # Wake up at the deadline rather than a whole interval after it.
        return max(0.0, min(self.poll_interval, self.end_time - time.time()))

    def _xcom_target(self) -> dict[str, Any] | None:
        ti = self.task_instance
        if ti is None:
            return None
        map_index = getattr(ti, "map_index", -1)
        return {
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": ti.run_id,
            "map_index": -1 if map_index is None else map_index,
        }

    async def _load_persisted_cursor(self) -> EventCursor | None:
        from airflow.providers.common.compat.sdk import XCom

        target = self._xcom_target()
        if target is None or not hasattr(XCom, "aget_one"):
            return None
        try:
            return as_cursor(await XCom.aget_one(key=CURSOR_XCOM_KEY, **target))
        except _XCOM_ERRORS as exc:
            self._cursor_store_broken(exc)
            return None

    async def _persist_cursor(self) -> None:
        from airflow.providers.common.compat.sdk import XCom

        target = self._xcom_target()
        if target is None or self.event_cursor is None or self._no_cursor_store or not hasattr(XCom, "aset"):
            return
        try:
            await XCom.aset(CURSOR_XCOM_KEY, dict(self.event_cursor), **target)
        except _XCOM_ERRORS as exc:
            self._cursor_store_broken(exc)

    def _cursor_store_broken(self, exc: BaseException) -> None:
        # The mirrored cursor only avoids repeated log lines after a triggerer restart; losing it must never
        # fail the wait for a job that is being paid for.
        self._no_cursor_store = True
        self.log.warning(
            "Cannot keep the event cursor in XCom (%s); a restarted trigger may repeat events", exc
        )

    async def on_kill(self) -> None:
        """
        Cancel the job when a user killed the deferred task (Airflow 3.3+ calls this; on 3.1 / 3.2, cleanup).

        Airflow 3.3 also calls it on a triggerer that a trigger moved away from, so it first asks whether the
        task instance is still deferred (``_kill_check``).
        """
        await self._run_to_the_end(self._cancel_for_kill(ask_airflow=True))

    async def _run_to_the_end(self, work: Coroutine[Any, Any, None]) -> None:
        """
        Await ``work``, and let it finish even if this await is cancelled.

        Airflow's trigger runner re-sends the cancel of a stopped trigger on every loop, about once a second,
        until the trigger has finished (``TriggerRunner.cancel_triggers`` on 3.1 to 3.3), and each re-send
        interrupts whatever the trigger awaits, ``on_kill()`` and ``cleanup()`` included. On a loaded triggerer
        the kill's state question and cancel call take longer than one loop, and the job kept running after
        the task was killed. ``work`` is bounded by its own timeouts (the state question's and
        ``CANCEL_TIMEOUT_S``); its log lines reach the task log while Airflow still routes the trigger's
        logs there, the triggerer's own log after.
        """
        task = asyncio.ensure_future(work)
        _KILL_WORK.add(task)
        task.add_done_callback(self._kill_work_done)
        await asyncio.shield(task)

    def _kill_work_done(self, task: asyncio.Task[None]) -> None:
        _KILL_WORK.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self.log.warning("Could not finish the kill of %s %s: %r", self._kind.noun, self.job_id, error)

    async def _cancel_for_kill(self, *, ask_airflow: bool) -> None:
        """Cancel the job of a killed task; with ``ask_airflow``, not when Airflow says the task is still deferred."""
        if not self._kind.cancellable:
            self.log.info(
                "Task killed; %s %s keeps running (the API cannot cancel it)", self._kind.noun, self.job_id
            )
            return
        if not self.cancel_on_kill:
            self.log.info(
                "Task killed; leaving %s %s running (cancel_on_kill=False)", self._kind.noun, self.job_id
            )
            return
        from airflow_provider_together._kill_check import moved_not_killed

        if ask_airflow and await moved_not_killed(self.task_instance):
            self.log.info(
                "Stopped on this triggerer, but the task is still deferred or running: the trigger moved to "
                "another triggerer, so %s %s keeps running",
                self._kind.noun,
                self.job_id,
            )
            return
        import httpx

        from airflow_provider_together.exceptions import TogetherError

        hook = self._hook()
        try:
            job = await asyncio.wait_for(self._kind.cancel(hook, self.job_id), timeout=CANCEL_TIMEOUT_S)
        except (TogetherError, httpx.HTTPError, asyncio.TimeoutError) as exc:
            # After a clear, the new try may already have cancelled the job itself (it does not wait for
            # this on_kill; see _abandoned.stop_abandoned_job): that is not a failure worth a warning.
            if await self._already_stopping(hook):
                self.log.info("Task killed; %s %s is already stopping or ended", self._kind.noun, self.job_id)
            else:
                self.log.warning("Could not cancel %s %s on kill: %s", self._kind.noun, self.job_id, exc)
            return
        self.log.info(
            "Task killed; cancel requested for %s %s (status %s)",
            self._kind.noun,
            self.job_id,
            job.status_raw,
        )

    async def cleanup(self) -> None:
        """On Airflow 3.1 / 3.2, cancel the job when the task was killed while deferred (3.3 calls on_kill)."""
        if self._fired or not self.cancel_on_kill:
            return
        await self._run_to_the_end(self._cancel_if_killed_while_deferred())

    async def _cancel_if_killed_while_deferred(self) -> None:
        from airflow_provider_together._kill_check import killed_while_deferred

        if await killed_while_deferred(self.task_instance):
            await self._cancel_for_kill(ask_airflow=False)  # already asked: it is a kill

    async def _already_stopping(self, hook: TogetherHook) -> bool:
        import httpx

        from airflow_provider_together.exceptions import TogetherError

        try:
            job = await asyncio.wait_for(self._kind.fetch(hook, self.job_id), timeout=STATUS_TIMEOUT_S)
        except (TogetherError, httpx.HTTPError, asyncio.TimeoutError):
            return False
        return not self._kind.is_live(job)


class TogetherFineTuneTrigger(TogetherJobTrigger):
    """
    :class:`TogetherJobTrigger` for a fine-tuning job, with the constructor kwargs it always had.

    Kept as its own class path so that triggers serialized by earlier releases (stored in the metadata
    database while their task is deferred) keep deserialising, and so that it serializes to the same kwargs.
    """

    def __init__(
        self,
        *,
        job_id: str,
        together_conn_id: str = "together_default",
        poll_interval: float = 60.0,
        end_time: float | None = None,
        cancel_on_kill: bool = True,
        event_cursor: dict[str, Any] | None = None,
        max_consecutive_failures: int = 5,
        first_poll_jitter: float | None = None,
    ) -> None:
        super().__init__(
            job_id=job_id,
            kind="fine-tune",
            together_conn_id=together_conn_id,
            poll_interval=poll_interval,
            end_time=end_time,
            cancel_on_kill=cancel_on_kill,
            event_cursor=event_cursor,
            max_consecutive_failures=max_consecutive_failures,
            first_poll_jitter=first_poll_jitter,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and exactly the constructor kwargs (``kind`` is implied by the class)."""
        path, kwargs = super().serialize()
        kwargs.pop("kind")
        return path, kwargs
