"""The trigger's wake-up grid (``_fine_tune.pacing``): polls due close together wake the loop once."""

from __future__ import annotations

import asyncio
import math
import random
import time

import pytest

from airflow_provider_together import triggers
from airflow_provider_together._fine_tune import pacing
from airflow_provider_together._fine_tune.pacing import WAKE_GRID_S, grid_deadline, sleep_on_grid

POLL_INTERVALS = [0.01, 0.3, 0.5, 1.0, 2.5, 3.0, 4.9, 5.0, 7.0, 30.0, 60.0, 3600.0]


def grid_of(poll_interval: float) -> float:
    return min(WAKE_GRID_S, poll_interval / 10)


def is_on_grid(value: float, grid: float) -> bool:
    return math.isclose(value / grid, round(value / grid), rel_tol=0, abs_tol=1e-6)


def cases(count: int = 3000) -> list[tuple[float, float, float]]:
    """(now, seconds, poll_interval) over a loop clock of up to ~11 days, exact and awkward floats alike."""
    rng = random.Random(20240611)
    out = []
    for _ in range(count):
        now = rng.choice([0.0, 12.0, rng.uniform(0, 1e6), round(rng.uniform(0, 1e4), 2)])
        seconds = rng.choice([0.0, 30.0, rng.uniform(0, 120), round(rng.uniform(0, 60), 1)])
        out.append((now, seconds, rng.choice(POLL_INTERVALS)))
    return out


def test_deadline_is_the_nearest_grid_point() -> None:
    """A poll moves at most half a grid step either way, onto the grid that every trigger of the loop shares."""
    for now, seconds, poll_interval in cases():
        grid = grid_of(poll_interval)
        if seconds < grid:
            continue  # not moved: the next test
        deadline = grid_deadline(now, seconds, poll_interval)
        due = now + seconds
        assert abs(deadline - due) <= grid / 2 * (1 + 1e-9), (now, seconds, poll_interval)
        assert is_on_grid(deadline, grid), (now, seconds, poll_interval, deadline / grid)
        assert deadline > now, (now, seconds, poll_interval)


def test_a_wait_with_a_floor_rounds_up_onto_the_grid() -> None:
    """The first poll's delay has a floor (a scheduler race): ``early=False`` never wakes before it."""
    for now, seconds, poll_interval in cases():
        grid = grid_of(poll_interval)
        if seconds < grid:
            continue
        deadline = grid_deadline(now, seconds, poll_interval, early=False)
        due = now + seconds
        assert due - 1e-9 <= deadline <= due + grid * (1 + 1e-9), (now, seconds, poll_interval)
        assert is_on_grid(deadline, grid), (now, seconds, poll_interval, deadline / grid)


def test_sleep_shorter_than_a_grid_step_is_not_moved() -> None:
    """Rounding a nearly due deadline could wake the loop before the poll is due, for nothing."""
    for now, _, poll_interval in cases(300):
        grid = grid_of(poll_interval)
        for seconds in (0.0, grid / 3, grid * 0.999):
            assert grid_deadline(now, seconds, poll_interval) == now + seconds, (now, seconds, poll_interval)


def test_negative_delay_is_due_now_not_in_the_past() -> None:
    """A late caller's negative delay means "now": a deadline in the past would skew the sleep."""
    for poll_interval in POLL_INTERVALS:
        assert grid_deadline(100.1, -5.0, poll_interval) == 100.1


def test_zero_poll_interval_has_no_grid() -> None:
    """``poll_interval=0`` means poll as fast as asked: no rounding at all, not a division by zero."""
    for now, seconds, _ in cases(300):
        assert grid_deadline(now, seconds, 0) == now + seconds


def test_grid_is_capped_and_proportional_to_the_interval() -> None:
    """Long intervals share the coarse grid; short ones get a tenth of theirs, so the shift stays small."""
    assert grid_deadline(0.0, 20.3 * WAKE_GRID_S, 3600.0) == pytest.approx(20 * WAKE_GRID_S)
    fine = min(WAKE_GRID_S, 0.1)
    assert grid_deadline(0.0, 20.3 * fine, 1.0) == pytest.approx(20 * fine)


def test_triggers_due_near_the_same_grid_point_share_a_deadline() -> None:
    """The point of the grid: triggers due within half a step of one point wake in the same loop iteration."""
    rng = random.Random(7)
    for poll_interval in POLL_INTERVALS:
        grid = grid_of(poll_interval)
        for point in (3, 1000, 2_000_003):
            # Due times around ``point`` (clear of the float-fuzzy cell edges), from different now/seconds pairs.
            dues = [(point + rng.uniform(-0.49, 0.49)) * grid for _ in range(20)]
            deadlines = set()
            for due in dues:
                seconds = rng.uniform(grid, min(due, max(grid, poll_interval)))
                deadlines.add(grid_deadline(due - seconds, seconds, poll_interval))
            assert len(deadlines) == 1, (poll_interval, point, deadlines)
            assert deadlines.pop() == pytest.approx(point * grid, rel=1e-12)


@pytest.mark.anyio
async def test_sleep_on_grid_wakes_on_the_loop_clock_grid() -> None:
    """The grid is on ``loop.time()``, the clock every trigger on the loop shares, and the sleep reaches it."""
    loop = asyncio.get_running_loop()
    poll_interval, seconds = 0.5, 0.07
    grid = grid_of(poll_interval)  # 0.05 s
    # asyncio may run a timer up to the clock's resolution early (BaseEventLoop._run_once).
    early = time.get_clock_info("monotonic").resolution
    lateness = []
    for _ in range(3):  # the best of three: one late wake-up on a busy machine is noise, not a bug
        before = loop.time()
        await sleep_on_grid(seconds, poll_interval)
        after = loop.time()
        assert after >= grid_deadline(before, seconds, poll_interval) - early
        assert after - before >= seconds - grid / 2 - early
        assert after - before < 1.0
        lateness.append(after - math.floor(after / grid) * grid)
    assert min(lateness) < 0.005, lateness


def test_first_poll_delay_keeps_its_public_import_path() -> None:
    """Callers import it from ``triggers``; the move to ``_fine_tune.pacing`` must not break that."""
    assert triggers.first_poll_delay is pacing.first_poll_delay
