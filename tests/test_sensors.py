"""TogetherFineTuneSensor against the emulator: poke, reschedule, deferrable and start-from-trigger modes."""

from __future__ import annotations

from typing import Any

import pytest
from _fine_tune_support import FAST, FakeTI, create_job, make_context
from airflow.providers.common.compat.sdk import AirflowSkipException, PokeReturnValue

from airflow_provider_together.exceptions import (
    TogetherJobCancelledError,
    TogetherJobFailedError,
    TogetherJobUserError,
)
from airflow_provider_together.sensors import TogetherFineTuneSensor
from airflow_provider_together.triggers import TogetherFineTuneTrigger

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def emu(together_emulator_conn: Any) -> Any:
    together_emulator_conn.admin.update_settings(speed=FAST)
    return together_emulator_conn


def _sensor(job_id: str, **kwargs: Any) -> TogetherFineTuneSensor:
    return TogetherFineTuneSensor(task_id="wait", job_id=job_id, poke_interval=0.05, timeout=60, **kwargs)


def _wait_until_terminal(emu: Any, job_id: str) -> None:
    import time

    for _ in range(600):
        if emu.admin.job(job_id)["status"] in ("completed", "error", "user_error", "cancelled"):
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never ended")


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_poke_modes_return_the_summary(emu: Any, tmp_path: Any, mode: str) -> None:
    job_id = create_job(tmp_path)
    _wait_until_terminal(emu, job_id)
    ti = FakeTI(task_id="wait")
    result = _sensor(job_id, mode=mode, deferrable=False).execute(make_context(ti))
    assert result["job_id"] == job_id
    assert result["status"] == "completed"
    assert result["model_output_name"]
    assert ti.xcoms["job_url"] == f"https://api.together.ai/fine-tuning/{job_id}"


def test_poke_is_false_while_running(emu: Any, tmp_path: Any) -> None:
    emu.admin.set_default_scenario("stall")
    job_id = create_job(tmp_path)
    done = _sensor(job_id).poke(make_context())
    assert isinstance(done, PokeReturnValue)
    assert not done.is_done


@pytest.mark.parametrize(
    ("scenario", "error"), [("error", TogetherJobFailedError), ("user_error", TogetherJobUserError)]
)
def test_failed_job_raises_at_once_with_togethers_message(
    emu: Any, tmp_path: Any, scenario: str, error: type
) -> None:
    emu.admin.set_default_scenario(scenario, message="dataset has no assistant turns")
    job_id = create_job(tmp_path)
    _wait_until_terminal(emu, job_id)
    with pytest.raises(error, match="dataset has no assistant turns"):
        _sensor(job_id, deferrable=False).execute(make_context())


def test_cancelled_job_raises_and_soft_fail_skips(emu: Any, tmp_path: Any) -> None:
    from airflow_provider_together.hooks import TogetherHook

    emu.admin.set_default_scenario("stall")
    job_id = create_job(tmp_path)
    TogetherHook().cancel_fine_tune(job_id)
    _wait_until_terminal(emu, job_id)
    with pytest.raises(TogetherJobCancelledError):
        _sensor(job_id, deferrable=False).execute(make_context())
    with pytest.raises(AirflowSkipException):
        _sensor(job_id, deferrable=False, soft_fail=True).execute(make_context())


def test_deferrable_pokes_once_then_defers_to_the_shared_trigger(emu: Any, tmp_path: Any) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    emu.admin.set_default_scenario("stall")
    job_id = create_job(tmp_path)
    sensor = _sensor(job_id, deferrable=True, cancel_on_kill=True)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(make_context())
    trigger = info.value.trigger
    assert isinstance(trigger, TogetherFineTuneTrigger)
    assert trigger.job_id == job_id
    assert trigger.cancel_on_kill is True
    assert trigger.end_time is not None
    assert info.value.method_name == "execute_complete"


def test_deferrable_returns_without_deferring_when_already_done(emu: Any, tmp_path: Any) -> None:
    job_id = create_job(tmp_path)
    _wait_until_terminal(emu, job_id)
    assert _sensor(job_id, deferrable=True).execute(make_context())["job_id"] == job_id


def test_execute_complete_handles_every_event(emu: Any) -> None:
    sensor = _sensor("ft-1")
    success = {
        "status": "success",
        "job_id": "ft-1",
        "job_status": "completed",
        "message": "ok",
        "result": {"job_id": "ft-1"},
    }
    assert sensor.execute_complete(make_context(), success) == {"job_id": "ft-1"}
    cancelled = {"status": "cancelled", "job_id": "ft-1", "job_status": "cancelled", "message": "gone"}
    with pytest.raises(TogetherJobCancelledError):
        sensor.execute_complete(make_context(), cancelled)
    with pytest.raises(TypeError):
        sensor.execute_complete(make_context(), None)


def test_start_from_trigger_builds_trigger_args_without_io() -> None:
    sensor = TogetherFineTuneSensor(
        task_id="wait",
        job_id="{{ params.job_id }}",
        deferrable=True,
        start_from_trigger=True,
        poke_interval=30,
    )
    assert sensor.start_from_trigger is True
    args = sensor.start_trigger_args
    assert args is not None
    assert args.trigger_cls == "airflow_provider_together.triggers.TogetherFineTuneTrigger"
    assert args.next_method == "execute_complete"
    # job_id is both a trigger kwarg and a trigger attribute, so Airflow 3.3 renders it in the triggerer.
    assert args.trigger_kwargs["job_id"] == "{{ params.job_id }}"
    assert "job_id" in sensor.template_fields
    TogetherFineTuneTrigger(**args.trigger_kwargs)  # the kwargs build a valid trigger
    assert "hook" not in sensor.__dict__
