"""Kill or move? cleanup() on 3.1 / 3.2 and on_kill() on 3.3 cancel only when the task left ``deferred``.

The triggerer's answer comes through ``fetch_task_states`` (the Task SDK call, the boundary with Airflow); the
cancel goes to the emulator. ``TRIGGERER_CALLS_ON_KILL`` is forced off so the 3.1 / 3.2 path runs on any
Airflow; the real 3.1 triggerer is exercised by tests/e2e/test_triggerer_restart_vs_kill.py.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from _fine_tune_support import create_job
from airflow.triggers.base import BaseTrigger

from airflow_provider_together import _kill_check
from airflow_provider_together.triggers import TogetherFineTuneTrigger

pytestmark = pytest.mark.timeout(120)

CANCEL_ROUTE = "POST /v1/fine-tunes/{job_id}/cancel"
TI = SimpleNamespace(dag_id="d", run_id="r", task_id="fine_tune", map_index=-1)


@pytest.fixture
def task_states(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Answer the task-state question from ``answer["states"]`` (None: the channel fails); count the asks."""
    answer: dict[str, Any] = {"states": {}, "asked": 0}

    def fetch(dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
        answer["asked"] += 1
        if answer["states"] is None:
            raise RuntimeError("supervisor channel closed")
        return dict(answer["states"])

    monkeypatch.setattr(_kill_check, "fetch_task_states", fetch)
    return answer


@pytest.fixture
def airflow_31(task_states: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Behave as on Airflow 3.1 / 3.2 (cleanup() decides) and answer state questions as ``task_states``."""
    monkeypatch.setattr(_kill_check, "TRIGGERER_CALLS_ON_KILL", False)
    return task_states


@pytest.fixture
def stalled_job(together_emulator_conn: Any, tmp_path: Any) -> str:
    """A job that keeps running at the emulator until someone cancels it."""
    together_emulator_conn.admin.set_default_scenario("stall")
    return create_job(tmp_path)


def cancelled(emu: Any, job_id: str) -> bool:
    """Whether the job was cancelled, checked both ways: one cancel call, and the job's status."""
    calls = emu.admin.count(CANCEL_ROUTE)
    status = emu.admin.job(job_id)["status"]
    assert (calls == 1) is (status in ("cancel_requested", "cancelled")), (calls, status)
    return calls == 1


async def _stop(
    job_id: str, ti: Any = TI, *, how: str = "cleanup", fired: bool = False, cancel_on_kill: bool = True
) -> None:
    """Stop a trigger as the triggerer does: ``cleanup()`` (every version) or ``on_kill()`` (Airflow 3.3)."""
    from airflow_provider_together.hooks import TogetherHook

    trigger = TogetherFineTuneTrigger(job_id=job_id, cancel_on_kill=cancel_on_kill)
    trigger.task_instance = ti
    trigger._fired = fired
    try:
        await (trigger.cleanup() if how == "cleanup" else trigger.on_kill())
    finally:
        await TogetherHook.aclose_async_clients()


def test_flag_follows_the_airflow_version() -> None:
    from airflow import __version__

    major_minor = tuple(int(part) for part in __version__.split(".")[:2])
    assert _kill_check.TRIGGERER_CALLS_ON_KILL is (major_minor >= (3, 3))
    assert _kill_check.TRIGGERER_CALLS_ON_KILL is hasattr(BaseTrigger, "on_kill")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "state", ["failed", "success", "skipped", None, "scheduled", "up_for_retry", "queued"]
)
async def test_task_no_longer_deferred_cancels_the_job(
    together_emulator_conn: Any, stalled_job: str, airflow_31: dict[str, Any], state: str
) -> None:
    airflow_31["states"] = {"r": {"fine_tune": state}}
    await _stop(stalled_job)
    assert cancelled(together_emulator_conn, stalled_job)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("states", "fired", "cancel_on_kill", "ti", "asked"),
    [
        pytest.param({"r": {"fine_tune": "deferred"}}, False, True, TI, 1, id="restart-or-takeover"),
        pytest.param({"r": {"fine_tune": "running"}}, False, True, TI, 1, id="new-try-may-have-reattached"),
        pytest.param(None, False, True, TI, 1, id="no-answer"),
        pytest.param({}, False, True, TI, 1, id="task-instance-gone"),
        pytest.param({"r": {"fine_tune": "scheduled"}}, True, True, TI, 0, id="trigger-fired"),
        pytest.param({"r": {"fine_tune": "failed"}}, False, False, TI, 0, id="cancel-on-kill-off"),
        pytest.param({"r": {"fine_tune": "failed"}}, False, True, None, 0, id="outside-a-triggerer"),
    ],
)
async def test_cleanup_leaves_the_job_alone(
    together_emulator_conn: Any,
    stalled_job: str,
    airflow_31: dict[str, Any],
    states: Any,
    fired: bool,
    cancel_on_kill: bool,
    ti: Any,
    asked: int,
) -> None:
    airflow_31["states"] = states
    await _stop(stalled_job, ti, fired=fired, cancel_on_kill=cancel_on_kill)
    assert not cancelled(together_emulator_conn, stalled_job)
    assert airflow_31["asked"] == asked


@pytest.mark.anyio
async def test_mapped_task_instance_is_looked_up_by_its_map_index(airflow_31: dict[str, Any]) -> None:
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="fine_tune", map_index=3)
    airflow_31["states"] = {"r": {"fine_tune_2": "deferred", "fine_tune_3": "failed"}}
    assert await _kill_check.task_state(ti) == "failed"
    ti_unknown = SimpleNamespace(dag_id="d", run_id="r", task_id="fine_tune", map_index=4)
    assert await _kill_check.killed_while_deferred(ti_unknown) is False
    assert await _kill_check.killed_while_deferred(ti) is True


@pytest.mark.anyio
async def test_on_airflow_33_cleanup_never_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_kill_check, "TRIGGERER_CALLS_ON_KILL", True)
    monkeypatch.setattr(_kill_check, "fetch_task_states", pytest.fail)
    assert await _kill_check.killed_while_deferred(TI) is False


@pytest.mark.anyio
@pytest.mark.parametrize("state", ["deferred", "running"])
async def test_on_kill_of_a_trigger_that_moved_to_another_triggerer_keeps_the_job(
    together_emulator_conn: Any, stalled_job: str, task_states: dict[str, Any], state: str
) -> None:
    """Airflow 3.3 runs on_kill on the triggerer a trigger was reassigned away from: the task is still deferred."""
    task_states["states"] = {"r": {"fine_tune": state}}
    await _stop(stalled_job, how="on_kill")
    assert task_states["asked"] == 1
    assert not cancelled(together_emulator_conn, stalled_job)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "states",
    [
        pytest.param({"r": {"fine_tune": "failed"}}, id="marked-failed"),
        pytest.param({"r": {"fine_tune": "success"}}, id="marked-success"),
        pytest.param({"r": {"fine_tune": None}}, id="cleared"),
        pytest.param(None, id="no-answer-trusts-airflow"),
        pytest.param({}, id="task-instance-gone"),
    ],
)
async def test_on_kill_of_a_killed_task_cancels_the_job(
    together_emulator_conn: Any, stalled_job: str, task_states: dict[str, Any], states: Any
) -> None:
    task_states["states"] = states
    await _stop(stalled_job, how="on_kill")
    assert cancelled(together_emulator_conn, stalled_job)


@pytest.mark.anyio
async def test_on_kill_outside_a_triggerer_cancels_without_asking(
    together_emulator_conn: Any, stalled_job: str, task_states: dict[str, Any]
) -> None:
    await _stop(stalled_job, None, how="on_kill")
    assert task_states["asked"] == 0
    assert cancelled(together_emulator_conn, stalled_job)


@pytest.mark.anyio
async def test_a_kill_cancels_the_job_even_when_the_triggerer_cancels_the_trigger_again_and_again(
    together_emulator_conn: Any,
    stalled_job: str,
    task_states: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    Airflow's own trigger runner re-sends the cancel of a killed trigger on every loop (about once a second)
    until the trigger has finished, and each re-send interrupts whatever the trigger awaits: on 3.3 its
    ``on_kill()``, on 3.1 / 3.2 its ``cleanup()``. On a loaded machine the kill's state question and cancel call
    take longer than one loop; the cancel must still reach Together. Runs Airflow's real ``run_trigger`` and
    ``cancel_triggers`` on whichever Airflow is installed; the re-sends come ten times faster than Airflow's.
    """
    import time

    from airflow.jobs.triggerer_job_runner import TriggerRunner

    from airflow_provider_together.hooks import TogetherHook

    monkeypatch.setenv("AIRFLOW_DISABLE_GREENBACK_PORTAL", "true")
    slow_answer = _kill_check.fetch_task_states

    def slow_fetch(*args: Any) -> dict[str, Any]:
        time.sleep(0.5)  # a loaded triggerer: the supervisor answers late
        return slow_answer(*args)

    monkeypatch.setattr(_kill_check, "fetch_task_states", slow_fetch)
    task_states["states"] = {"r": {"fine_tune": "failed"}}  # marked failed by a user
    ti = SimpleNamespace(
        id="0", dag_id="d", run_id="r", task_id="fine_tune", map_index=-1, try_number=1, context_carrier=None
    )
    trigger = TogetherFineTuneTrigger(job_id=stalled_job, poll_interval=0.05, first_poll_jitter=0)
    trigger.task_instance = ti
    runner = TriggerRunner()
    runner.triggers[1] = {"task": None, "name": "kill-test", "events": 0, "is_watcher": False}
    task = asyncio.ensure_future(runner.run_trigger(1, trigger))
    runner.triggers[1]["task"] = task
    try:
        for _ in range(2000):  # the trigger is polling: up to 20 s
            if trigger.event_cursor is not None or task.done():
                break
            await asyncio.sleep(0.01)
        assert not task.done(), task.exception()
        assert trigger.event_cursor is not None
        for _ in range(300):  # the triggerer's loop, re-sending the cancel until the trigger is done (30 s)
            if task.done():
                break
            runner.to_cancel.append(1)
            await runner.cancel_triggers()
            await asyncio.sleep(0.1)
        assert task.done()
        emu = together_emulator_conn
        for _ in range(300):  # the cancel may still be on its way when Airflow stopped waiting for it
            if emu.admin.count(CANCEL_ROUTE):
                break
            await asyncio.sleep(0.1)
        assert task_states["asked"] == 1
        assert cancelled(emu, stalled_job)
    finally:
        task.cancel()
        await TogetherHook.aclose_async_clients()


@pytest.mark.anyio
async def test_a_state_question_the_supervisor_never_answers_counts_as_unanswered(
    task_states: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kill's work outlives Airflow's bound on on_kill, so the question carries its own timeout."""
    import time

    def hung(*args: Any) -> dict[str, Any]:
        time.sleep(1.0)
        return {"r": {"fine_tune": "failed"}}

    monkeypatch.setattr(_kill_check, "fetch_task_states", hung)
    monkeypatch.setattr(_kill_check, "STATE_QUESTION_TIMEOUT_S", 0.1)
    assert await _kill_check.task_state(TI) is _kill_check._UNKNOWN
    assert await _kill_check.moved_not_killed(TI) is False  # on_kill: Airflow said "user action"; cancel
    monkeypatch.setattr(_kill_check, "TRIGGERER_CALLS_ON_KILL", False)
    assert await _kill_check.killed_while_deferred(TI) is False  # cleanup: doubt never cancels
