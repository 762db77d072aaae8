"""TogetherFineTuneTrigger against the emulator on loopback: one event, cursor, deadline, failures, on_kill."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from _fine_tune_support import FAST, LogText, create_job

from airflow_provider_together._fine_tune.progress import EventCursor, as_cursor, later_cursor, new_events
from airflow_provider_together.models import FineTuneEvent
from airflow_provider_together.triggers import TogetherFineTuneTrigger

pytestmark = pytest.mark.timeout(120)


async def _collect(trigger: TogetherFineTuneTrigger) -> list[dict[str, Any]]:
    from airflow_provider_together.hooks import TogetherHook

    try:
        return [event.payload async for event in trigger.run()]
    finally:
        await TogetherHook.aclose_async_clients()


def _import(classpath: str) -> Any:
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _trigger(job_id: str, **kwargs: Any) -> TogetherFineTuneTrigger:
    return TogetherFineTuneTrigger(job_id=job_id, poll_interval=0.05, first_poll_jitter=0, **kwargs)


async def _cancel_after_first_events(trigger: TogetherFineTuneTrigger) -> None:
    """Run ``trigger`` until it has logged some events, then cancel it the way a triggerer restart does."""
    gen = trigger.run()
    waiting = asyncio.ensure_future(anext(gen))
    for _ in range(2000):  # up to 20 s for the first poll to log events
        if trigger.event_cursor is not None:
            break
        await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await gen.aclose()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> LogText:
    caplog.set_level("INFO")
    return LogText(caplog, capfd)


# -- serialization --------------------------------------------------------------------------------------


def test_serialize_round_trips_without_secrets(together_conn: str) -> None:
    api_key = json.loads(os.environ["AIRFLOW_CONN_TOGETHER_DEFAULT"])["password"]
    trigger = TogetherFineTuneTrigger(
        job_id="ft-1",
        poll_interval=7,
        end_time=1_900_000_000.5,
        cancel_on_kill=False,
        event_cursor={"t": 12.0, "keys": ["a"]},
        max_consecutive_failures=3,
        first_poll_jitter=1.5,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_together.triggers.TogetherFineTuneTrigger"
    clone = _import(classpath)(**kwargs)
    assert clone.serialize() == (classpath, kwargs)
    text = json.dumps(kwargs)
    assert api_key not in text
    assert set(kwargs) == {
        "job_id",
        "together_conn_id",
        "poll_interval",
        "end_time",
        "cancel_on_kill",
        "event_cursor",
        "max_consecutive_failures",
        "first_poll_jitter",
    }


# -- the event cursor (pure) ----------------------------------------------------------------------------


def _ev(t: str, msg: str, **kw: Any) -> FineTuneEvent:
    return FineTuneEvent(created_at=t, message=msg, type="training_start", **kw)


def test_cursor_returns_only_new_events_including_same_timestamp() -> None:
    a = _ev("2026-01-01T00:00:00Z", "a")
    b = _ev("2026-01-01T00:00:01Z", "b")
    c = _ev("2026-01-01T00:00:01Z", "c")  # same second as b: a count-free cursor must still see it
    fresh, cursor = new_events([a, b], None)
    assert [e.message for e in fresh] == ["a", "b"]
    fresh, cursor = new_events([a, b, c], cursor)
    assert [e.message for e in fresh] == ["c"]
    fresh, cursor2 = new_events([a, b, c], cursor)
    assert fresh == []
    assert cursor2 == cursor


def test_cursor_uses_hash_when_present_and_survives_json() -> None:
    a = _ev("2026-01-01T00:00:00Z", "same", hash="h1")
    b = _ev("2026-01-01T00:00:00Z", "same", hash="h2")
    _, cursor = new_events([a], None)
    restored = as_cursor(json.loads(json.dumps(cursor)))
    fresh, _ = new_events([a, b], restored)
    assert [e.hash for e in fresh] == ["h2"]


def test_later_cursor_picks_the_further_one() -> None:
    early = EventCursor(t=1.0, keys=["x"])
    late = EventCursor(t=2.0, keys=["y"])
    assert later_cursor(early, late) == late
    assert later_cursor(late, early) == late
    assert later_cursor(None, early) == early
    assert later_cursor(EventCursor(t=2.0, keys=["z"]), late) == EventCursor(t=2.0, keys=["y", "z"])
    assert as_cursor({"t": "bad", "keys": []}) is None


# -- against the emulator -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_success_yields_one_event_with_everything_execute_complete_needs(
    together_emulator_conn: Any, tmp_path: Any, logs: LogText
) -> None:
    emu = together_emulator_conn
    emu.admin.update_settings(speed=FAST)
    job_id = create_job(tmp_path)
    events = await _collect(_trigger(job_id))
    assert len(events) == 1
    (payload,) = events
    assert payload["status"] == "success"
    assert payload["job_id"] == job_id
    assert payload["job_status"] == "completed"
    result = payload["result"]
    assert result["job_id"] == job_id
    assert result["model_output_name"]
    assert result["checkpoint_count"] >= 1
    assert result["total_price_usd"] is not None
    json.dumps(payload)  # plain JSON: it crosses the triggerer -> DB -> worker boundary
    lines = logs.lines("Together event [")
    assert any("job_complete" in line or "model_upload_complete" in line for line in lines)
    assert len(lines) == len(set(lines))


@pytest.mark.anyio
async def test_recreated_trigger_neither_repeats_nor_loses_events(
    together_emulator_conn: Any, tmp_path: Any, logs: LogText
) -> None:
    from airflow_provider_together.hooks import TogetherHook

    emu = together_emulator_conn
    emu.admin.update_settings(speed=5.0)
    job_id = create_job(tmp_path)
    first = _trigger(job_id)
    # A triggerer restart: the running trigger is cancelled mid-job, after it logged some events ...
    await _cancel_after_first_events(first)
    assert emu.admin.job(job_id)["status"] not in ("completed",)
    logged_before = logs.lines("Together event [")
    assert logged_before, "the first trigger should have streamed some events"
    assert first.event_cursor is not None
    # ... and another one is built from the serialized kwargs and runs to the end.
    emu.admin.update_settings(speed=FAST)
    classpath, kwargs = first.serialize()
    events = await _collect(_import(classpath)(**kwargs))
    assert [e["status"] for e in events] == ["success"]

    all_lines = logs.lines("Together event [")
    assert len(all_lines) == len(set(all_lines)), "an event was logged twice"
    server_events = TogetherHook().list_fine_tune_events(job_id)
    assert len(all_lines) == len(server_events), "an event was lost"


@pytest.mark.anyio
async def test_deadline_yields_timeout_event(together_emulator_conn: Any, tmp_path: Any) -> None:
    together_emulator_conn.admin.set_default_scenario("stall")
    job_id = create_job(tmp_path)
    events = await _collect(_trigger(job_id, end_time=time.time() + 0.5))
    assert len(events) == 1
    assert events[0]["status"] == "timeout"
    assert events[0]["job_id"] == job_id


@pytest.mark.anyio
async def test_transient_failures_are_tolerated_then_bounded(
    together_emulator_conn: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = together_emulator_conn
    emu.admin.update_settings(speed=FAST)
    job_id = create_job(tmp_path)
    # No retries inside the hook: every failure reaches the trigger.
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", emu.conn_json(max_retries=0))
    emu.admin.add_fault(f"GET /v1/fine-tunes/{job_id}", status=503, count=2)
    events = await _collect(_trigger(job_id, max_consecutive_failures=3))
    assert [e["status"] for e in events] == ["success"]

    emu.admin.add_fault(f"GET /v1/fine-tunes/{job_id}", status=503, count=50)
    events = await _collect(_trigger(job_id, max_consecutive_failures=3))
    assert [e["status"] for e in events] == ["error"]
    assert "3 failed poll" in events[0]["message"]


@pytest.mark.anyio
async def test_unknown_job_is_an_error_event_not_a_crash(together_emulator_conn: Any) -> None:
    events = await _collect(_trigger("ft-00000000-0000-0000-0000-000000000000"))
    assert [e["status"] for e in events] == ["error"]


@pytest.mark.anyio
@pytest.mark.parametrize(("scenario", "job_status"), [("error", "error"), ("user_error", "user_error")])
async def test_failed_job_carries_togethers_messages(
    together_emulator_conn: Any, tmp_path: Any, scenario: str, job_status: str
) -> None:
    emu = together_emulator_conn
    emu.admin.update_settings(speed=FAST)
    emu.admin.set_default_scenario(scenario)
    job_id = create_job(tmp_path)
    events = await _collect(_trigger(job_id))
    assert len(events) == 1
    assert events[0]["status"] == "error"
    assert events[0]["job_status"] == job_status
    assert events[0]["errors"], "Together's error messages must travel in the event"
    assert events[0]["errors"][-1] in events[0]["message"]


@pytest.mark.anyio
@pytest.mark.parametrize("cancel_on_kill", [True, False])
async def test_on_kill_cancels_only_when_asked(
    together_emulator_conn: Any, tmp_path: Any, cancel_on_kill: bool
) -> None:
    from airflow_provider_together.hooks import TogetherHook

    emu = together_emulator_conn
    emu.admin.set_default_scenario("stall")
    job_id = create_job(tmp_path)
    trigger = _trigger(job_id, cancel_on_kill=cancel_on_kill)
    await trigger.on_kill()
    await trigger.cleanup()  # cleanup runs on every exit and must never cancel
    await TogetherHook.aclose_async_clients()
    status = emu.admin.job(job_id)["status"]
    if cancel_on_kill:
        assert status in ("cancel_requested", "cancelled")
        assert emu.admin.count("POST /v1/fine-tunes/{job_id}/cancel") == 1
    else:
        assert status not in ("cancel_requested", "cancelled")
        assert emu.admin.count("POST /v1/fine-tunes/{job_id}/cancel") == 0


RESTART_SCRIPT = """
import asyncio, json, sys, types
from airflow_provider_together.triggers import TogetherFineTuneTrigger
from airflow_provider_together.hooks import TogetherHook

JOB = sys.argv[1]
TI = types.SimpleNamespace(dag_id="d", run_id="r", task_id="fine_tune", map_index=-1)
ORIGINAL = {"job_id": JOB, "poll_interval": 0.05, "first_poll_jitter": 0}  # what the task deferred with

async def main():
    first = TogetherFineTuneTrigger(**ORIGINAL)
    first.task_instance = TI
    gen = first.run()
    waiting = asyncio.ensure_future(anext(gen))
    for _ in range(2000):
        if first.event_cursor is not None:
            break
        await asyncio.sleep(0.01)
    waiting.cancel()
    try:
        await waiting
    except asyncio.CancelledError:
        pass
    await gen.aclose()
    print("RESTART", flush=True)
    # Airflow re-creates the trigger from the ORIGINAL kwargs (no cursor in them).
    second = TogetherFineTuneTrigger(**ORIGINAL)
    second.task_instance = TI
    events = [e.payload async for e in second.run()]
    await TogetherHook.aclose_async_clients()
    print("EVENTS", json.dumps([e["status"] for e in events]), flush=True)

asyncio.run(main())
"""


def test_trigger_recreated_from_original_kwargs_resumes_from_the_xcom_cursor(
    together_emulator_conn: Any, tmp_path: Any
) -> None:
    import subprocess
    import sys

    from airflow.providers.common.compat.sdk import XCom

    from airflow_provider_together.hooks import TogetherHook

    if not hasattr(XCom, "aset"):
        pytest.skip(
            "the XCom cursor mirror needs the async XCom API (XCom.aset, Airflow 3.3+); the fallback is "
            "test_recreated_trigger_without_an_xcom_cursor_store_repeats_but_never_loses_events"
        )
    emu = together_emulator_conn
    emu.admin.update_settings(speed=5.0)
    job_id = create_job(tmp_path)
    env = {
        **os.environ,
        "AIRFLOW__CORE__XCOM_BACKEND": "_fine_tune_support.MemoryXCom",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
    }
    out = ""
    with subprocess.Popen(
        [sys.executable, "-c", RESTART_SCRIPT, job_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            out += line
            if line.startswith("RESTART"):
                emu.admin.update_settings(speed=FAST)
        assert proc.wait(timeout=120) == 0, out[-3000:]
    assert 'EVENTS ["success"]' in out, out[-3000:]
    logged = [
        line[line.index("Together event [") :].split(" [airflow", 1)[0]
        for line in out.splitlines()
        if "Together event [" in line
    ]
    assert len(logged) == len(set(logged)), "the re-created trigger repeated events"
    assert len(logged) == len(TogetherHook().list_fine_tune_events(job_id)), "an event was lost"


@pytest.mark.anyio
async def test_recreated_trigger_without_an_xcom_cursor_store_repeats_but_never_loses_events(
    together_emulator_conn: Any, tmp_path: Any, logs: LogText
) -> None:
    """
    The fallback of the test above: Airflow 3.1 / 3.2 have no async XCom API (and a process without a
    supervisor channel cannot use it), so a trigger re-created from its ORIGINAL kwargs starts from no
    cursor. It may log events again, but it must lose none and still end the wait with one event.
    """
    import types

    from airflow_provider_together.hooks import TogetherHook

    emu = together_emulator_conn
    emu.admin.update_settings(speed=5.0)
    job_id = create_job(tmp_path)
    ti = types.SimpleNamespace(dag_id="d", run_id="r", task_id="fine_tune", map_index=-1)
    # What the task deferred with: no cursor in it.
    original = {"job_id": job_id, "poll_interval": 0.05, "first_poll_jitter": 0}

    first = TogetherFineTuneTrigger(**original)
    first.task_instance = ti
    await _cancel_after_first_events(first)
    assert emu.admin.job(job_id)["status"] != "completed"
    logged_before = logs.lines("Together event [")
    assert logged_before, "the first trigger should have streamed some events"

    emu.admin.update_settings(speed=FAST)
    second = TogetherFineTuneTrigger(**original)
    second.task_instance = ti
    events = await _collect(second)
    assert [e["status"] for e in events] == ["success"]

    logged = logs.lines("Together event [")
    server_events = TogetherHook().list_fine_tune_events(job_id)
    assert len(set(logged)) == len(server_events), "an event was lost"
    # Without a stored cursor the second trigger starts from the beginning: what the first one logged
    # shows up again (the documented cost of the fallback), and nothing beyond one repeat.
    assert set(logged_before) <= set(logged)
    assert len(logged) == len(server_events) + len(logged_before)


@pytest.mark.parametrize(
    ("poll_interval", "jitter", "low", "high"),
    [
        (60.0, None, 2.0, 30.0),  # production: spread over 2-30 s after a triggerer restart
        (5.0, None, 2.0, 5.0),
        (0.5, None, 0.5, 0.5),  # never longer than one poll interval
        (60.0, 0.0, 0.0, 0.0),  # explicit: no delay
        (60.0, 1.5, 0.0, 1.5),
    ],
)
def test_first_poll_delay_is_spread_but_never_immediate_by_default(
    poll_interval: float, jitter: float | None, low: float, high: float
) -> None:
    from airflow_provider_together.triggers import first_poll_delay

    delays = [first_poll_delay(poll_interval, jitter) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    if high > low:
        assert max(delays) - min(delays) > (high - low) / 4  # actually random, not a constant
