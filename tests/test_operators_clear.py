"""
Clearing or marking a deferred fine-tune: the new try trains a fresh job, whatever the old on_kill does when.

Airflow 3.3 cancels the old try's job from its trigger's ``on_kill``, asynchronously: the new try may start
before, during or after it. These tests play each ordering against the emulator, and check that a retry after
a deferral that *resumed* (worker or API trouble) still reattaches, and that a job cancelled outside Airflow
still fails the task instead of being silently replaced.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _fine_tune_support import (
    FAST,
    FakeTI,
    LogText,
    MemoryStateStore,
    make_context,
    make_operator,
)
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_together._fine_tune.reattach import STATE_KEY
from airflow_provider_together.exceptions import TogetherError, TogetherJobCancelledError
from airflow_provider_together.operators import TogetherFineTuneOperator
from airflow_provider_together.triggers import TogetherFineTuneTrigger

pytestmark = pytest.mark.timeout(120)

CREATE = "POST /v1/fine-tunes"
CANCEL = "POST /v1/fine-tunes/{job_id}/cancel"
STOPPING = ("cancel_requested", "cancelled")


@pytest.fixture
def emu(together_emulator_conn: Any) -> Any:
    together_emulator_conn.admin.update_settings(speed=FAST)
    # The first job (try 1's) stalls in "running" until something stops it; any later job trains normally.
    together_emulator_conn.admin.add_scenario("stall", count=1)
    return together_emulator_conn


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> LogText:
    caplog.set_level("INFO")
    return LogText(caplog, capfd)


def _op(tmp_path: Any, **kwargs: Any) -> TogetherFineTuneOperator:
    return make_operator(tmp_path, **{"deferrable": True, **kwargs})


def _defer_first_try(tmp_path: Any, store: MemoryStateStore, **kwargs: Any) -> TogetherFineTuneTrigger:
    """Try 1 submits and defers; return the trigger Airflow would run for it."""
    with pytest.raises(TaskDeferred) as info:
        _op(tmp_path, **kwargs).execute(make_context(FakeTI(try_number=1), store))
    trigger = info.value.trigger
    assert isinstance(trigger, TogetherFineTuneTrigger)
    return trigger


def _run(coro_fn: Any) -> Any:
    """Run an async step of a trigger in a fresh loop, closing the hook's shared client for that loop."""
    from airflow_provider_together.hooks import TogetherHook

    async def main() -> Any:
        try:
            return await coro_fn()
        finally:
            await TogetherHook.aclose_async_clients()

    return asyncio.run(main())


async def _first_event(trigger: TogetherFineTuneTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger yielded no event")


def _other_jobs(emu: Any, job_id: str) -> list[str]:
    return [job["status"] for job in emu.admin.jobs() if job["id"] != job_id]


@pytest.mark.parametrize("order", ["new-try-before-on-kill", "on-kill-before-new-try"])
def test_clearing_a_deferred_task_cancels_the_old_job_and_trains_a_fresh_one(
    emu: Any, tmp_path: Any, logs: LogText, order: str
) -> None:
    store = MemoryStateStore()
    trigger = _defer_first_try(tmp_path, store)
    old_job = trigger.job_id
    assert store.data[STATE_KEY]["deferred_try"] == 1  # written before deferring: before any user action
    if order == "on-kill-before-new-try":
        _run(trigger.on_kill)  # Airflow 3.3, user cleared the deferred task: the old trigger cancels
        assert emu.admin.job(old_job)["status"] in STOPPING

    # The cleared task's new try: a fresh operator instance, try 2, deferring in its turn.
    ti = FakeTI(try_number=2)
    with pytest.raises(TaskDeferred) as info:
        _op(tmp_path).execute(make_context(ti, store))
    new_trigger = info.value.trigger
    assert new_trigger.job_id != old_job, "the new try must not wait on the job Airflow gave up on"

    if order == "new-try-before-on-kill":
        _run(trigger.on_kill)  # the old trigger's on_kill comes late: the job is already stopping
        assert "Could not cancel" not in logs.text
    event = _run(lambda: _first_event(new_trigger))
    result = _op(tmp_path).resume_execution("execute_complete", {"event": event}, make_context(ti, store))
    assert result["status"] == "completed"
    assert result["job_id"] != old_job
    assert emu.admin.job(old_job)["status"] in STOPPING
    assert _other_jobs(emu, old_job) == ["completed"]  # exactly one replacement, and it trained
    assert emu.admin.count(CREATE) == 2
    assert "gave up on that job" in logs.text


def test_a_failed_cancel_of_the_abandoned_job_blocks_a_second_job(emu: Any, tmp_path: Any) -> None:
    store = MemoryStateStore()
    old_job = _defer_first_try(tmp_path, store).job_id
    # On Airflow 3.1 / 3.2 (or when on_kill failed) nothing else stops the old job; a cancel that fails
    # too must not lead to two jobs training for one task instance.
    emu.admin.add_fault(CANCEL, status=400, count=1)
    with pytest.raises(TogetherError, match="not submitting a second job"):
        _op(tmp_path, deferrable=False).execute(make_context(FakeTI(try_number=2), store))
    assert emu.admin.count(CREATE) == 1
    assert emu.admin.job(old_job)["status"] == "running"
    # The next try cancels it and trains.
    result = _op(tmp_path, deferrable=False).execute(make_context(FakeTI(try_number=3), store))
    assert result["status"] == "completed"
    assert emu.admin.job(old_job)["status"] in STOPPING
    assert emu.admin.count(CREATE) == 2


def test_cancel_on_kill_false_reuses_the_job_a_cleared_task_left_running(emu: Any, tmp_path: Any) -> None:
    store = MemoryStateStore()
    trigger = _defer_first_try(tmp_path, store, cancel_on_kill=False)
    _run(trigger.on_kill)  # leaves the job alone
    result = _op(tmp_path, cancel_on_kill=False, wait_for_completion=False).execute(
        make_context(FakeTI(try_number=2), store)
    )
    assert result["job_id"] == trigger.job_id
    assert emu.admin.count(CREATE) == 1
    assert emu.admin.count(CANCEL) == 0


def test_retry_after_a_resumed_deferral_still_reattaches(emu: Any, tmp_path: Any) -> None:
    store = MemoryStateStore()
    trigger = _defer_first_try(tmp_path, store)
    ti = FakeTI(try_number=1)
    # The trigger lost contact with the API: try 1 resumes and fails; the job itself keeps training.
    lost = {"status": "error", "job_id": trigger.job_id, "job_status": "running", "message": "lost track"}
    with pytest.raises(TogetherError, match="lost track"):
        _op(tmp_path, retries=1).resume_execution(
            "execute_complete", {"event": lost}, make_context(ti, store)
        )
    assert store.data[STATE_KEY]["deferred_try"] is None
    result = _op(tmp_path, wait_for_completion=False).execute(make_context(FakeTI(try_number=2), store))
    assert result["job_id"] == trigger.job_id
    assert emu.admin.count(CREATE) == 1
    assert emu.admin.count(CANCEL) == 0


def test_job_cancelled_outside_airflow_fails_the_task_without_resubmitting(emu: Any, tmp_path: Any) -> None:
    from airflow_provider_together.hooks import TogetherHook

    store = MemoryStateStore()
    trigger = _defer_first_try(tmp_path, store)
    TogetherHook().cancel_fine_tune(trigger.job_id)  # someone pressed "cancel" in Together's UI
    event = _run(lambda: _first_event(trigger))
    assert event["status"] == "cancelled"
    with pytest.raises(TogetherJobCancelledError):
        _op(tmp_path).resume_execution(
            "execute_complete", {"event": event}, make_context(FakeTI(try_number=1), store)
        )
    assert emu.admin.count(CREATE) == 1


def test_a_job_being_cancelled_is_replaced_not_reattached(emu: Any, tmp_path: Any) -> None:
    from airflow_provider_together.hooks import TogetherHook

    store = MemoryStateStore()
    ctx = make_context(FakeTI(try_number=1), store)
    first = _op(tmp_path, deferrable=False, wait_for_completion=False).execute(ctx)
    emu.admin.update_settings(speed=0.001)  # hold the job in cancel_requested for the rest of the test
    # The worker of a synchronous try was killed (clear while running): its on_kill asked for a cancel.
    TogetherHook().cancel_fine_tune(first["job_id"])
    assert emu.admin.job(first["job_id"])["status"] == "cancel_requested"
    result = _op(tmp_path, deferrable=False, wait_for_completion=False).execute(
        make_context(FakeTI(try_number=2), store)
    )
    assert result["job_id"] != first["job_id"]  # it can only end cancelled: reattaching would fail the task
    assert emu.admin.job(first["job_id"])["status"] == "cancel_requested"
    assert emu.admin.count(CREATE) == 2


def test_an_earlier_tries_event_does_not_end_this_try(emu: Any, tmp_path: Any) -> None:
    store = MemoryStateStore()
    old_trigger = _defer_first_try(tmp_path, store)
    ti = FakeTI(try_number=2)
    with pytest.raises(TaskDeferred) as info:
        _op(tmp_path).execute(make_context(ti, store))
    new_job = info.value.trigger.job_id
    # The old trigger was never killed (on SQLite the new deferral reused its id) and fired when the new try
    # cancelled its job; Airflow resumed the *new* try with that event.
    stale = _run(lambda: _first_event(old_trigger))
    assert stale["status"] == "cancelled"
    with pytest.raises(TaskDeferred) as again:
        _op(tmp_path).resume_execution("execute_complete", {"event": stale}, make_context(ti, store))
    assert again.value.trigger.job_id == new_job  # still waiting for its own job
    assert store.data[STATE_KEY]["deferred_try"] == 2
    event = _run(lambda: _first_event(again.value.trigger))
    result = _op(tmp_path).resume_execution("execute_complete", {"event": event}, make_context(ti, store))
    assert result["job_id"] == new_job
    assert result["status"] == "completed"
    assert emu.admin.count(CREATE) == 2
