"""
The triggers the triggerer benchmark runs: ours, and the same trigger on a naive client.

* ``TimedTrigger`` is ``TogetherFineTuneTrigger`` unchanged except that its hook records when each
  ``aget_fine_tune`` call started and ended (the only way to see poll lateness from outside).
* ``NaiveTimedTrigger`` is the same trigger on a hook that builds a new ``httpx.AsyncClient`` for every
  request, the pattern many providers use (``async with AsyncClient() as c: ...`` inside the method).
  The connection is still looked up once per hook, like ours, so the difference measured is the client.
* ``NullTrigger`` is the same trigger on a hook with no network at all (a canned job body): what is left
  is the trigger's and the event loop's share of a poll, the floor under ours.

They live here, not in the package: they are foils and probes, and the package must not carry them. Only
the hook factory (``_hook``) is overridden; the trigger's own logic runs unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import httpx

from airflow_provider_together.hooks import TogetherHook
from airflow_provider_together.models import Checkpoint, FineTuneEvent, FineTuneJob
from airflow_provider_together.triggers import TogetherFineTuneTrigger


@dataclass
class Poll:
    job_id: str
    start: float
    end: float
    error: str | None
    #: Interrupted by the benchmark stopping its triggers (a triggerer shutdown), not a failure.
    cancelled: bool = False


#: Every poll made in this process, in completion order (the client is single-threaded asyncio).
POLLS: list[Poll] = []
#: HTTP requests made by the naive hook (ours is counted by the server).
NAIVE_REQUESTS = [0]


class _Stop:
    """Sets ``event`` once each of ``jobs`` jobs has had ``after`` successful polls (0: never)."""

    def __init__(self) -> None:
        self.jobs = 0
        self.after = 0
        self.counts: dict[str, int] = {}
        self.reached = 0
        self.event = asyncio.Event()

    def arm(self, jobs: int, after: int) -> None:
        self.jobs, self.after = jobs, after

    def polled(self, job_id: str) -> None:
        count = self.counts[job_id] = self.counts.get(job_id, 0) + 1
        if self.after and count == self.after:
            self.reached += 1
            if self.reached >= self.jobs:
                self.event.set()


STOP = _Stop()


class TimedHook(TogetherHook):
    """Our hook, with each job poll timed."""

    async def aget_fine_tune(self, job_id: str) -> FineTuneJob:
        start = time.perf_counter()
        error = None
        cancelled = False
        try:
            return await self._bench_get_job(job_id)
        except asyncio.CancelledError:
            cancelled = True
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            POLLS.append(Poll(job_id, start, time.perf_counter(), error, cancelled))
            if error is None and not cancelled:
                STOP.polled(job_id)

    async def _bench_get_job(self, job_id: str) -> FineTuneJob:
        return await TogetherHook.aget_fine_tune(self, job_id)


class NaiveHook(TimedHook):
    """A new ``httpx.AsyncClient`` per request; connection looked up once per hook."""

    _settings: tuple[str, str] | None = None

    async def _naive_get(self, path: str) -> Any:
        if self._settings is None:
            conn = await self.aget_connection(self.together_conn_id)
            host = (conn.host or "").rstrip("/")
            base = host if host.endswith("/v1") else host + "/v1"
            self._settings = (base, conn.password or "")
        base, key = self._settings
        NAIVE_REQUESTS[0] += 1
        async with httpx.AsyncClient(
            base_url=base,
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(60.0, connect=10.0),
        ) as client:
            response = await client.get(path)
            response.raise_for_status()
            return response.json()

    async def _bench_get_job(self, job_id: str) -> FineTuneJob:
        return FineTuneJob.model_validate(await self._naive_get(f"/fine-tunes/{job_id}"))

    async def alist_fine_tune_events(self, job_id: str) -> list[FineTuneEvent]:
        body = await self._naive_get(f"/fine-tunes/{job_id}/events")
        return [FineTuneEvent.model_validate(e) for e in body.get("data") or []]

    async def alist_fine_tune_checkpoints(self, job_id: str) -> list[Checkpoint]:
        body = await self._naive_get(f"/fine-tunes/{job_id}/checkpoints")
        return [Checkpoint.model_validate(c) for c in body.get("data") or []]


class NullHook(TimedHook):
    """
    No HTTP at all: each poll parses a canned job body (running for ``NULL_ROUNDS - 1`` polls, then
    completed). What is left of the CPU per poll is the trigger and the event loop: the floor under ours.
    """

    #: Shared across hooks on purpose: one count per job id, like the server keeps.
    _polls: dict[str, int] = {}

    async def _bench_get_job(self, job_id: str) -> FineTuneJob:
        count = self._polls[job_id] = self._polls.get(job_id, 0) + 1
        await asyncio.sleep(0)  # a real poll yields to the loop at least once
        status = "completed" if count >= NULL_ROUNDS[0] else "running"
        return FineTuneJob.model_validate_json(_null_body(job_id, status, count))

    async def alist_fine_tune_checkpoints(self, job_id: str) -> list[Checkpoint]:
        await asyncio.sleep(0)
        return []


#: Rounds after which a NullHook job reports completed (set by the client from --rounds).
NULL_ROUNDS = [3]


@functools.cache
def _null_body(job_id: str, status: str, n_events: int) -> bytes:
    # Built once per (job, poll): what a server sends is not the client's cost, so its JSON encoding must
    # not count in the floor (the bodies are made before the first poll by ``prebuild_null_bodies``).
    from _fixed_server import _job

    return _job(job_id, status, n_events)


def prebuild_null_bodies(job_ids: list[str], rounds: int) -> None:
    """Encode every body the null hook will return, before the measured window opens."""
    for job_id in job_ids:
        for count in range(1, rounds + 1):
            _null_body(job_id, "completed" if count >= rounds else "running", count)


class _HookSeam(TogetherFineTuneTrigger):
    """
    Swap the trigger's hook for ``hook_class``, whichever seam the trigger uses: ``_hook()`` today, or the
    ``hook`` cached property of the house style should it move there. Nothing else changes.
    """

    hook_class: type[TogetherHook] = TimedHook

    def _hook(self) -> TogetherHook:
        return self.hook_class(together_conn_id=self.together_conn_id)

    @cached_property
    def hook(self) -> TogetherHook:
        return self._hook()


class NullTrigger(_HookSeam):
    """Our trigger with no network: the trigger-side share of the CPU per poll."""

    hook_class = NullHook


class TimedTrigger(_HookSeam):
    """Our trigger; only the hook differs, to time the polls."""

    hook_class = TimedHook


class NaiveTimedTrigger(_HookSeam):
    """Our trigger's logic on the naive client."""

    hook_class = NaiveHook


VARIANTS: dict[str, type[TogetherFineTuneTrigger]] = {
    "ours": TimedTrigger,
    "naive": NaiveTimedTrigger,
    "null": NullTrigger,
}
