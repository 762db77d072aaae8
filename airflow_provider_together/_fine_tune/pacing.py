"""
When the trigger polls: the random first-poll delay and the wake-up grid that later polls sleep on.

Both exist for the triggerer, where hundreds of triggers share one process and one event loop:

* The first poll is delayed at random, so a restarted triggerer does not send a thousand polls in the same
  second.
* Every wake-up is moved to the nearest point of a grid on the loop's clock (``WAKE_GRID_S``, half a
  second at most). Waking a sleeping process is what a lone poll costs most: on the benchmark machine an
  idle event loop spends ~0.25 ms of CPU per wake-up before any work, as much as the whole HTTP round
  trip, and a poll spread out on its own pays it once for its timer and again for its answer, on cold
  caches. Triggers due in the same half second now wake in one loop iteration and send their polls
  together, so a thousand triggers at a 30 s interval share ~60 wake-ups per interval instead of paying
  ~2,000 (figures: docs/benchmarks.md). The price is a poll up to a quarter second early or late, nothing
  against a 30 s interval; a short interval gets a proportionally finer grid (a tenth of it), and an
  interval of 0 none.
"""

from __future__ import annotations

import asyncio
import math
import random

__all__ = [
    "MAX_FIRST_POLL_JITTER_S",
    "MIN_FIRST_POLL_DELAY_S",
    "WAKE_GRID_S",
    "first_poll_delay",
    "sleep_on_grid",
]

#: Lower bound of the first poll's delay: an event fired within about a second of the deferral can race the
#: scheduler's handling of the worker's exit, which then fails the try as "changed externally" (seen with real
#: Airflow 3.3 and a job that ended at once). A real fine-tune never ends that fast, so waiting costs nothing.
MIN_FIRST_POLL_DELAY_S = 2.0
#: Upper bound of the first poll's random delay: after a triggerer restart a thousand triggers must not
#: all hit the API in the same second.
MAX_FIRST_POLL_JITTER_S = 30.0
#: Coarsest wake-up grid (seconds); the grid of a poll interval is the smaller of this and a tenth of it.
#: Half a second keeps every poll within a quarter second of its time (the benchmark's lateness target is 1 s).
WAKE_GRID_S = 0.5


def first_poll_delay(poll_interval: float, first_poll_jitter: float | None = None) -> float:
    """
    Seconds to wait before a trigger's first poll.

    Random, so that a restarted triggerer does not send a thousand polls in the same second; at least
    ``min(poll_interval, MIN_FIRST_POLL_DELAY_S)`` unless ``first_poll_jitter`` is given explicitly.
    """
    if first_poll_jitter is not None:
        return random.uniform(0.0, first_poll_jitter) if first_poll_jitter > 0 else 0.0
    floor = min(poll_interval, MIN_FIRST_POLL_DELAY_S)
    return random.uniform(floor, max(floor, min(poll_interval, MAX_FIRST_POLL_JITTER_S)))


def grid_deadline(now: float, seconds: float, poll_interval: float, *, early: bool = True) -> float:
    """
    ``now + seconds`` moved to the nearest point of the wake-up grid of ``poll_interval``.

    Nearest, not next: rounding up would add almost a whole grid step to every poll once the triggers are in
    step with the grid. ``early=False`` rounds up instead, for a wait with a floor (the first poll's). A
    sleep shorter than one step (a deadline about to pass) is not moved at all, so a wake-up never comes
    before it could do anything.
    """
    grid = min(WAKE_GRID_S, poll_interval / 10)
    target = now + max(0.0, seconds)
    if grid <= 0 or seconds < grid:
        return target
    return (math.floor(target / grid + 0.5) if early else math.ceil(target / grid)) * grid


async def sleep_on_grid(seconds: float, poll_interval: float, *, early: bool = True) -> None:
    """
    Sleep about ``seconds`` (half a grid step either way; with ``early=False`` at least ``seconds``), waking
    on the grid shared by this loop's triggers.
    """
    loop = asyncio.get_running_loop()
    now = loop.time()
    await asyncio.sleep(grid_deadline(now, seconds, poll_interval, early=early) - now)
