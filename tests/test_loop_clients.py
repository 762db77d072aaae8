"""The shared async clients of a loop are closed when its last trigger stops (and never under a call).

``dag.test`` runs each trigger as ``asyncio.run(anext(trigger.run()))``: the loop ends with the trigger. Before
the clients were counted, its aiohttp session outlived the loop and aiohttp logged "Unclosed client session"
(at ERROR, through asyncio's exception handler) when it was collected.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest
from _fine_tune_support import FAST, create_job

from airflow_provider_together._transport import client as _client
from airflow_provider_together.hooks import TogetherHook
from airflow_provider_together.triggers import TogetherFineTuneTrigger

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def emu(together_emulator_conn: Any) -> Any:
    together_emulator_conn.admin.update_settings(speed=FAST)
    return together_emulator_conn


def test_a_trigger_run_as_dag_test_runs_it_closes_its_session(
    emu: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = create_job(tmp_path)
    trigger = TogetherFineTuneTrigger(job_id=job_id, poll_interval=0.05, first_poll_jitter=0)
    seen: dict[str, Any] = {}

    async def first_event() -> Any:
        event = await anext(trigger.run(), None)
        state = _client._LOOPS.get(asyncio.get_running_loop())
        seen["client"] = next(iter(state.sessions.values())).client if state and state.sessions else None
        return event

    caplog.set_level(logging.ERROR, logger="asyncio")
    event = asyncio.run(first_event())  # exactly what InProcessTestSupervisor.run_trigger_in_process does
    gc.collect()

    assert event is not None
    assert event.payload["status"] == "success"
    assert seen["client"] is not None  # the session existed while the trigger ran ...
    assert seen["client"].is_closed  # ... and was closed when the generator was finalized with the loop
    assert "Unclosed client session" not in caplog.text


@pytest.mark.anyio
async def test_clients_stay_while_another_trigger_or_a_call_still_uses_them(emu: Any, tmp_path: Any) -> None:
    loop = asyncio.get_running_loop()
    hook = TogetherHook()
    try:
        async with _client.loop_user():
            async with _client.loop_user():
                await hook.aget_fine_tune(create_job(tmp_path))
            state = _client._LOOPS[loop]
            assert state.sessions, "one trigger left, one still runs: the client stays"
            session = next(iter(state.sessions.values()))
            session.in_flight += 1  # a hook call outside any trigger, still running
        assert _client._LOOPS.get(loop) is state, "a call in flight: nothing is closed under it"
        assert not session.client.is_closed
        session.in_flight -= 1
        async with _client.loop_user():
            pass
        assert _client._LOOPS.get(loop) is None
        assert session.client.is_closed
    finally:
        await TogetherHook.aclose_async_clients()
