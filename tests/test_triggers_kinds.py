"""One trigger for every kind of Together job: the fine-tune form keeps its kwargs, evaluations use the same wait."""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from _fine_tune_support import FAST

from airflow_provider_together.triggers import TogetherFineTuneTrigger, TogetherJobTrigger

pytestmark = pytest.mark.timeout(120)

#: The kwargs TogetherFineTuneTrigger serialized before it became the fine-tune form of TogetherJobTrigger:
#: triggers stored with them in users' metadata databases must keep deserialising.
OLD_KWARGS = {
    "job_id": "ft-1",
    "together_conn_id": "together_default",
    "poll_interval": 60.0,
    "end_time": None,
    "cancel_on_kill": True,
    "event_cursor": None,
    "max_consecutive_failures": 5,
    "first_poll_jitter": None,
}
JUDGE = {"model": "judge/model", "model_source": "serverless", "system_template": "Judge {{prompt}}"}


def _revive(trigger: TogetherJobTrigger) -> TogetherJobTrigger:
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    revived: TogetherJobTrigger = getattr(importlib.import_module(module), name)(**kwargs)
    return revived


def test_fine_tune_trigger_serializes_exactly_its_old_kwargs() -> None:
    trigger = TogetherFineTuneTrigger(**OLD_KWARGS)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_together.triggers.TogetherFineTuneTrigger"
    assert kwargs == OLD_KWARGS
    assert _revive(trigger).kind == "fine-tune"


def test_job_trigger_round_trips_its_kind() -> None:
    trigger = TogetherJobTrigger(job_id="eval-1", kind="evaluation", poll_interval=5, cancel_on_kill=False)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_together.triggers.TogetherJobTrigger"
    assert (kwargs["kind"], kwargs["job_id"], kwargs["poll_interval"]) == ("evaluation", "eval-1", 5.0)
    assert _revive(trigger).serialize() == (classpath, kwargs)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown Together job kind 'batch'"):
        TogetherJobTrigger(job_id="x", kind="batch")


def _create_evaluation(tmp_path: Path) -> str:
    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.models import EvaluationConfig

    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}", "a": "x", "b": "y"}) + "\n" for i in range(8)))
    hook = TogetherHook()
    file_id = hook.upload_file(path, purpose="eval").id
    hook.wait_for_file_ready(file_id, timeout=30, poll_interval=0.05)
    config = EvaluationConfig.parse(
        {"type": "compare", "judge": JUDGE, "model_a": "a", "model_b": "b", "input_data_file_path": file_id}
    )
    return hook.create_evaluation(config.to_request()).id


async def _collect(trigger: TogetherJobTrigger) -> list[dict[str, Any]]:
    from airflow_provider_together.hooks import TogetherHook

    try:
        return [event.payload async for event in trigger.run()]
    finally:
        await TogetherHook.aclose_async_clients()


def _evaluation_trigger(eval_id: str, **kwargs: Any) -> TogetherJobTrigger:
    return TogetherJobTrigger(
        job_id=eval_id, kind="evaluation", poll_interval=0.05, first_poll_jitter=0, **kwargs
    )


@pytest.mark.anyio
async def test_evaluation_success_event_carries_the_figures_after_transient_failures(
    together_emulator_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = together_emulator_conn
    emu.admin.update_settings(speed=FAST)
    eval_id = _create_evaluation(tmp_path)
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", emu.conn_json(max_retries=0))
    emu.admin.add_fault(f"GET /v1/evaluation/{eval_id}", status=503, count=2)
    [event] = await _collect(_evaluation_trigger(eval_id, max_consecutive_failures=3))
    assert (event["status"], event["job_id"], event["job_status"]) == ("success", eval_id, "completed")
    result = event["result"]
    assert result["a_wins"] + result["b_wins"] + result["ties"] == 8
    assert emu.admin.count("GET /v1/evaluation/{eval_id}") >= 3


@pytest.mark.anyio
async def test_evaluation_failure_carries_togethers_message(
    together_emulator_conn: Any, tmp_path: Path
) -> None:
    emu = together_emulator_conn
    emu.admin.update_settings(speed=FAST)
    emu.admin.add_scenario("error", model=JUDGE["model"], message="judge endpoint vanished")
    [event] = await _collect(_evaluation_trigger(_create_evaluation(tmp_path)))
    assert (event["status"], event["job_status"]) == ("error", "error")
    assert event["message"].endswith("ended with status error: judge endpoint vanished")
    assert event["errors"] == ["judge endpoint vanished"]


@pytest.mark.anyio
async def test_evaluation_timeout_and_kill_never_try_to_cancel(
    together_emulator_conn: Any, tmp_path: Path
) -> None:
    emu = together_emulator_conn
    emu.admin.set_default_scenario("stall")
    eval_id = _create_evaluation(tmp_path)
    [event] = await _collect(_evaluation_trigger(eval_id, end_time=time.time() + 0.3))
    assert event["status"] == "timeout"
    assert "cannot cancel it" in event["message"]
    before = emu.admin.requests()
    await _evaluation_trigger(eval_id, cancel_on_kill=True).on_kill()
    assert emu.admin.requests() == before  # no request at all: the API has no cancel for evaluations
