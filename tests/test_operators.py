"""TogetherFineTuneOperator against the emulator on loopback: every execute path and every money guard."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from _fine_tune_support import (
    BASE_MODEL,
    FAST,
    FakeTI,
    LogText,
    MemoryStateStore,
    make_context,
    make_operator,
    write_training_file,
)
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_together.exceptions import (
    TogetherJobCancelledError,
    TogetherJobFailedError,
    TogetherJobTimeoutError,
    TogetherJobUserError,
)
from airflow_provider_together.operators import TogetherFineTuneOperator

pytestmark = pytest.mark.timeout(120)

CREATE = "POST /v1/fine-tunes"


def _op(tmp_path: Any, **kwargs: Any) -> TogetherFineTuneOperator:
    return make_operator(tmp_path, **{"deferrable": False, **kwargs})


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> LogText:
    caplog.set_level("DEBUG")
    return LogText(caplog, capfd)


@pytest.fixture
def emu(together_emulator_conn: Any) -> Any:
    together_emulator_conn.admin.update_settings(speed=FAST)
    return together_emulator_conn


# -- static validation ----------------------------------------------------------------------------------


def test_constructor_only_stores_arguments() -> None:
    op = TogetherFineTuneOperator(
        task_id="t", training_file="file-abc123", model=BASE_MODEL, n_epochs="{{ x }}"
    )
    assert "hook" not in op.__dict__
    assert op.n_epochs == "{{ x }}"
    assert {"training_file", "model", "n_epochs", "lora_r", "config"} <= set(op.template_fields)
    assert op.template_fields_renderers == {"config": "json"}


def test_default_deferrable_is_true_unless_the_deployment_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_together._fine_tune.config import default_deferrable

    assert default_deferrable() is True
    assert (
        TogetherFineTuneOperator(task_id="t", training_file="file-abc123", model=BASE_MODEL).deferrable
        is True
    )
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "false")
    assert default_deferrable() is False


def test_invalid_config_fails_without_retry_before_any_http(emu: Any, tmp_path: Any) -> None:
    op = _op(tmp_path, n_epochs=0, learning_rate=-1.0, suffix="x" * 41)
    with pytest.raises(AirflowFailException) as info:
        op.execute(make_context())
    message = str(info.value)
    assert "n_epochs" in message
    assert "learning_rate" in message
    assert "suffix" in message
    assert emu.admin.requests() == {}


def test_flat_keywords_override_a_config_group_variant() -> None:
    from airflow_provider_together._fine_tune.prepare import build_config
    from airflow_provider_together.models import FineTuneConfig

    base = FineTuneConfig(training_file="file-abc123", model=BASE_MODEL, lora=True, lora_r=8)
    op = TogetherFineTuneOperator(task_id="t", config=base, lora=False, n_epochs=2)
    config = build_config(op)
    assert config.training_type is not None
    assert config.training_type.type == "Full"
    assert config.n_epochs == 2
    as_dict = TogetherFineTuneOperator(
        task_id="t2", config=base.model_dump(mode="json", exclude_none=True), lora=False
    )
    assert build_config(as_dict) == config.model_copy(update={"n_epochs": 1})


def test_secret_in_config_is_refused_without_echoing_it(emu: Any, tmp_path: Any) -> None:
    op = _op(tmp_path, config={"wandb_api_key": "wandb-very-secret-value"})
    with pytest.raises(AirflowFailException) as info:
        op.execute(make_context())
    assert "wandb_conn_id" in str(info.value)
    assert "wandb-very-secret-value" not in str(info.value)
    assert emu.admin.requests() == {}


def test_local_file_failing_the_checker_is_never_uploaded(emu: Any, tmp_path: Any) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    with pytest.raises(AirflowFailException, match="training_file"):
        _op(tmp_path, training_file=str(bad)).execute(make_context())
    assert emu.admin.count("POST /v1/files") == 0


# -- execute paths ----------------------------------------------------------------------------------------


def test_sync_path_submits_once_logs_progress_and_returns_summary(
    emu: Any, tmp_path: Any, logs: LogText
) -> None:
    ti = FakeTI()
    result = _op(tmp_path).execute(make_context(ti, MemoryStateStore()))
    assert result["status"] == "completed"
    assert result["model_output_name"]
    assert result["checkpoint_count"] >= 1
    assert result["total_price_usd"] is not None
    assert ti.xcoms["job_id"] == result["job_id"]
    assert ti.xcoms["job_url"] == f"https://api.together.ai/fine-tuning/{result['job_id']}"
    assert emu.admin.count(CREATE) == 1
    text = logs.text
    assert "Estimated price: $" in text
    assert "Together event [job_complete]" in text
    assert f"https://api.together.ai/fine-tuning/{result['job_id']}" in text


def test_no_wait_returns_right_after_submit(emu: Any, tmp_path: Any) -> None:
    emu.admin.set_default_scenario("stall")
    ti = FakeTI()
    result = _op(tmp_path, wait_for_completion=False).execute(make_context(ti))
    assert result["status"] not in ("completed", "error", "cancelled")
    assert ti.xcoms["job_id"] == result["job_id"]
    assert emu.admin.count(CREATE) == 1


def test_same_bytes_are_uploaded_once(emu: Any, tmp_path: Any) -> None:
    path = str(write_training_file(tmp_path / "same.jsonl"))
    _op(tmp_path, training_file=path, validation_file=path, n_evals=1).execute(make_context())
    assert emu.admin.count("POST /v1/files") == 1


# -- reattach instead of resubmit -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "with_state_store", [True, False], ids=["airflow-3.3-state-store", "airflow-3.1-job-list"]
)
def test_retry_reattaches_to_the_running_job(emu: Any, tmp_path: Any, with_state_store: bool) -> None:
    emu.admin.set_default_scenario("stall")
    store = MemoryStateStore() if with_state_store else None
    first = _op(tmp_path, wait_for_completion=False).execute(make_context(FakeTI(try_number=1), store))
    # The worker died; the retry runs a fresh operator instance for the same task instance.
    second = _op(tmp_path, wait_for_completion=False).execute(make_context(FakeTI(try_number=2), store))
    assert second["job_id"] == first["job_id"]
    assert emu.admin.count(CREATE) == 1
    assert len(emu.admin.jobs()) == 1


def test_changed_config_or_other_task_instance_gets_its_own_job(emu: Any, tmp_path: Any) -> None:
    emu.admin.set_default_scenario("stall")
    first = _op(tmp_path, wait_for_completion=False).execute(make_context(FakeTI()))
    other_run = _op(tmp_path, wait_for_completion=False).execute(make_context(FakeTI(run_id="run-2")))
    changed = _op(tmp_path, wait_for_completion=False, n_epochs=2).execute(make_context(FakeTI()))
    assert len({first["job_id"], other_run["job_id"], changed["job_id"]}) == 3


def test_reuse_existing_job_false_always_submits(emu: Any, tmp_path: Any) -> None:
    emu.admin.set_default_scenario("stall")
    store = MemoryStateStore()
    _op(tmp_path, wait_for_completion=False).execute(make_context(store=store))
    _op(tmp_path, wait_for_completion=False, reuse_existing_job=False).execute(make_context(store=store))
    assert emu.admin.count(CREATE) == 2


def test_failed_job_is_replaced_on_retry(emu: Any, tmp_path: Any) -> None:
    emu.admin.add_scenario("error", count=1, message="CUDA out of memory on node 7")
    store = MemoryStateStore()
    with pytest.raises(TogetherJobFailedError, match="CUDA out of memory on node 7") as info:
        _op(tmp_path).execute(make_context(FakeTI(try_number=1), store))
    assert not isinstance(info.value, AirflowFailException), "a server-side error may be retried"
    result = _op(tmp_path).execute(make_context(FakeTI(try_number=2), store))
    assert result["status"] == "completed"
    assert emu.admin.count(CREATE) == 2


#: Every number the job search compares (reattach.ECHOED) set away from its default, with a user suffix: the
#: job an ambiguous create made must still match its own request, or the next try would pay for a second one.
EVERY_ECHOED = {
    "suffix": "sweep",
    "learning_rate": 3.3e-5,
    "n_epochs": 2,
    "n_checkpoints": 2,
    "n_evals": 0,
    "batch_size": 8,
    "warmup_ratio": 0.07,
    "max_grad_norm": 0.5,
    "weight_decay": 0.01,
    "max_seq_length": 2048,
    "random_seed": 7,
    "lora": True,
    "lora_r": 16,
    "lora_alpha": 24,
    "lora_dropout": 0.05,
}


@pytest.mark.parametrize("config", [{}, EVERY_ECHOED], ids=["defaults", "every-echoed-number"])
def test_ambiguous_submit_leaves_exactly_one_job(emu: Any, tmp_path: Any, config: dict[str, Any]) -> None:
    emu.admin.add_fault(CREATE, kind="ambiguous", count=1)
    result = _op(tmp_path, **config).execute(make_context(FakeTI()))
    assert result["status"] == "completed"
    assert emu.admin.count(CREATE) == 1, "the create call must never be resent"
    assert len(emu.admin.jobs()) == 1
    assert emu.admin.jobs()[0]["id"] == result["job_id"]


# -- money guards and failures -----------------------------------------------------------------------------


def test_price_guard_fails_before_submission(emu: Any, tmp_path: Any) -> None:
    with pytest.raises(AirflowFailException, match=r"exceeds max_price_usd=\$0\.01"):
        _op(tmp_path, max_price_usd=0.01).execute(make_context())
    assert emu.admin.count("POST /v1/fine-tunes/estimate-price") == 1
    assert emu.admin.count(CREATE) == 0


def test_price_over_credit_limit_is_a_warning(
    emu: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    emu.admin.update_settings(credit_limit_usd=0.5)
    caplog.set_level("INFO")
    _op(tmp_path, wait_for_completion=False).execute(make_context())
    assert "may not cover" in caplog.text
    assert emu.admin.count(CREATE) == 1


def test_user_error_raises_togethers_message_and_is_not_retried(emu: Any, tmp_path: Any) -> None:
    emu.admin.set_default_scenario("user_error", message="Training file has 3 samples; at least 16 required")
    with pytest.raises(TogetherJobUserError, match="at least 16 required") as info:
        _op(tmp_path).execute(make_context())
    assert isinstance(info.value, AirflowFailException)
    assert info.value.status == "user_error"


def test_timeout_cancels_the_job(emu: Any, tmp_path: Any) -> None:
    emu.admin.set_default_scenario("stall")
    ti = FakeTI()
    with pytest.raises(TogetherJobTimeoutError):
        _op(tmp_path, timeout=0.5).execute(make_context(ti))
    assert emu.admin.job(ti.xcoms["job_id"])["cancel_requested"] is True


def test_timeout_without_cancel_leaves_the_job(emu: Any, tmp_path: Any) -> None:
    emu.admin.set_default_scenario("stall")
    ti = FakeTI()
    with pytest.raises(TogetherJobTimeoutError):
        _op(tmp_path, timeout=0.3, cancel_on_timeout=False).execute(make_context(ti))
    assert emu.admin.job(ti.xcoms["job_id"])["cancel_requested"] is False


def test_on_kill_cancels_the_job_of_a_sync_wait(emu: Any, tmp_path: Any) -> None:
    emu.admin.set_default_scenario("stall")
    op = _op(tmp_path)
    ti = FakeTI()
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            op.execute(make_context(ti))
        except BaseException as exc:  # the test inspects what the worker thread raised
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while "job_id" not in ti.xcoms and time.monotonic() < deadline:
        time.sleep(0.02)
    op.on_kill()  # what Airflow calls when it kills the task (or on execution_timeout)
    worker.join(30)
    assert isinstance(outcome.get("error"), TogetherJobCancelledError)
    assert emu.admin.job(ti.xcoms["job_id"])["cancel_requested"] is True


# -- execute_complete ------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", [None, {"status": "weird", "job_id": "ft-1"}, {"status": "success"}])
def test_execute_complete_rejects_malformed_events(event: Any) -> None:
    op = TogetherFineTuneOperator(task_id="t", training_file="file-abc123", model=BASE_MODEL)
    with pytest.raises(TypeError):
        op.execute_complete(make_context(), event)


def test_execute_complete_timeout_event_cancels(emu: Any, tmp_path: Any) -> None:
    from _fine_tune_support import create_job

    emu.admin.set_default_scenario("stall")
    job_id = create_job(tmp_path)
    op = TogetherFineTuneOperator(task_id="t", training_file="file-abc123", model=BASE_MODEL)
    event = {"status": "timeout", "job_id": job_id, "job_status": "running", "message": "waited too long"}
    with pytest.raises(TogetherJobTimeoutError):
        op.execute_complete(make_context(), event)
    assert emu.admin.job(job_id)["cancel_requested"] is True


# -- secrets -------------------------------------------------------------------------------------------------


def test_secrets_come_from_connections_and_never_leak(
    emu: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, logs: LogText
) -> None:
    wandb_key = "wandb-key-0123456789abcdef"
    hf_token = "hf_token_0123456789abcdef"
    monkeypatch.setenv("AIRFLOW_CONN_WANDB_TEST", json.dumps({"conn_type": "generic", "password": wandb_key}))
    monkeypatch.setenv("AIRFLOW_CONN_HF_TEST", json.dumps({"conn_type": "generic", "password": hf_token}))
    ti = FakeTI()
    op = _op(tmp_path, wandb_conn_id="wandb_test", hf_conn_id="hf_test", wandb_project_name="weekly")
    result = op.execute(make_context(ti))
    everything = json.dumps([result, ti.xcoms, {f: str(getattr(op, f)) for f in op.template_fields}])
    for secret in (wandb_key, hf_token):
        assert secret not in everything
        assert secret not in logs.text
    assert result["status"] == "completed"


def test_crash_between_create_and_record_is_recovered_from_the_job_list(emu: Any, tmp_path: Any) -> None:
    # Airflow 3.3: the try recorded "submitting" but died before writing the job id.
    emu.admin.set_default_scenario("stall")
    store = MemoryStateStore()
    first = _op(tmp_path, wait_for_completion=False).execute(make_context(FakeTI(try_number=1), store))
    store.data["together_fine_tune_job"]["job_id"] = None
    second = _op(tmp_path, wait_for_completion=False).execute(make_context(FakeTI(try_number=2), store))
    assert second["job_id"] == first["job_id"]
    assert emu.admin.count(CREATE) == 1


def test_ambiguous_submit_without_a_job_is_not_resent_and_the_retry_submits(
    emu: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_together._fine_tune import reattach as _reattach
    from airflow_provider_together.exceptions import TogetherError

    monkeypatch.setattr(_reattach, "RECONCILE_DELAY_S", 0.01)
    # A 500 that Together answered *without* creating anything: the hook cannot know, so it must not resend.
    emu.admin.add_fault(CREATE, status=500, count=1)
    store = MemoryStateStore()
    with pytest.raises(TogetherError, match="not resent"):
        _op(tmp_path).execute(make_context(FakeTI(try_number=1), store))
    assert emu.admin.count(CREATE) == 1
    assert emu.admin.jobs() == []
    result = _op(tmp_path).execute(make_context(FakeTI(try_number=2), store))
    assert result["status"] == "completed"
    assert emu.admin.count(CREATE) == 2
    assert len(emu.admin.jobs()) == 1


@pytest.mark.parametrize(
    ("sibling", "mine"),
    [
        ({"suffix": "sweep-12"}, {"suffix": "sweep-1"}),  # a suffix that is a prefix of a sibling's
        (
            {"suffix": "sweep", "learning_rate": 2e-5},
            {"suffix": "sweep", "learning_rate": 1e-5},
        ),  # one suffix
        (
            {"suffix": "sweep", "lora": True, "lora_r": 8},
            {"suffix": "sweep", "lora": True, "lora_r": 16},
        ),  # a LoRA-rank sweep: a number inside training_type
        (
            {"suffix": "sweep", "warmup_ratio": 0.1},
            {"suffix": "sweep", "warmup_ratio": 0.0},
        ),
    ],
    ids=["prefix-suffix", "shared-suffix", "lora-rank-sweep", "warmup-sweep"],
)
def test_an_ambiguous_submit_never_adopts_a_sibling_tasks_job(
    emu: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, sibling: dict[str, Any], mine: dict[str, Any]
) -> None:
    """
    Mapped tasks of a sweep share the training file and model. When one task's create is ambiguous, the job
    list holds its siblings' jobs: adopting one would report another config's model as this task's result.
    """
    from airflow_provider_together._fine_tune import reattach as _reattach
    from airflow_provider_together.exceptions import TogetherError
    from airflow_provider_together.hooks import TogetherHook

    monkeypatch.setattr(_reattach, "RECONCILE_DELAY_S", 0.01)
    hook = TogetherHook()
    train = hook.upload_file(write_training_file(tmp_path / "shared.jsonl")).id
    hook.wait_for_file_ready(train)
    other = _op(tmp_path, task_id="sibling", training_file=train, **sibling, wait_for_completion=False)
    other_job = other.execute(make_context(FakeTI(task_id="sibling")))["job_id"]

    emu.admin.add_fault(CREATE, status=500, count=1)  # answered without creating anything
    store = MemoryStateStore()
    with pytest.raises(TogetherError, match="not resent"):
        _op(tmp_path, training_file=train, **mine).execute(make_context(FakeTI(try_number=1), store))
    assert [job["id"] for job in emu.admin.jobs()] == [other_job]
    result = _op(tmp_path, training_file=train, **mine).execute(make_context(FakeTI(try_number=2), store))
    assert result["job_id"] != other_job
    assert len(emu.admin.jobs()) == 2


def test_suffix_matching_is_exact_in_the_echo_and_in_the_output_name() -> None:
    from airflow_provider_together._fine_tune.reattach import suffix_matches
    from airflow_provider_together.models import FineTuneJob

    def job(suffix: str | None, name: str) -> FineTuneJob:
        return FineTuneJob(id="ft-1", suffix=suffix, model_output_name=name)

    base = "acct/Meta-Llama-3.1-8B-Instruct-Reference"
    assert suffix_matches("sweep-1", job("sweep-1", f"{base}-sweep-1-0a1b2c3d"))
    assert not suffix_matches("sweep-1", job("sweep-12", f"{base}-sweep-12-0a1b2c3d"))
    assert suffix_matches("sweep-1", job(None, f"{base}-sweep-1-0a1b2c3d"))
    assert suffix_matches("sweep-1", job(None, f"{base}-sweep-1"))
    assert not suffix_matches("sweep-1", job(None, f"{base}-sweep-12-0a1b2c3d"))
    assert not suffix_matches("sweep-1", job(None, f"{base}-sweep-1-x-0a1b2c3d"))
    assert not suffix_matches("eep-1", job(None, f"{base}-sweep-1-0a1b2c3d"))
    assert not suffix_matches("sweep-1", job(None, ""))


def test_job_search_compares_every_echoed_number_and_only_those_both_sides_have() -> None:
    import struct

    from airflow_provider_together._fine_tune.reattach import JobSearch, echoed_numbers
    from airflow_provider_together.models import FineTuneJob

    body = {
        "training_file": "file-1",
        "model": BASE_MODEL,
        "learning_rate": 3.3e-5,
        "batch_size": "max",  # resolved by the server: never compared
        "training_type": {"type": "Lora", "lora_r": 16, "lora_alpha": 32},
        "training_method": {"method": "dpo", "dpo_beta": 0.1, "dpo_reference_free": False},
    }
    wanted = echoed_numbers(body)
    assert wanted == {
        "learning_rate": 3.3e-5,
        "training_type.lora_r": 16.0,
        "training_type.lora_alpha": 32.0,
        "training_method.dpo_beta": 0.1,
    }
    search = JobSearch(training_file="file-1", model=BASE_MODEL, suffix=None, not_before=0.0, echoed=wanted)
    single = struct.unpack("f", struct.pack("f", 3.3e-5))[0]  # what a float32 column gives back

    def job(**fields: Any) -> FineTuneJob:
        base = {"id": "ft-1", "training_file": "file-1", "model": BASE_MODEL, "batch_size": 8}
        return FineTuneJob.model_validate({**base, **fields})

    assert search.matches(job(learning_rate=single, training_type={"type": "Lora", "lora_r": 16}))
    assert search.matches(job())  # a job that echoes none of them is told apart by the other criteria
    assert not search.matches(job(training_type={"type": "Lora", "lora_r": 8}))
    assert not search.matches(job(training_method={"method": "dpo", "dpo_beta": 0.2}))
    assert not search.matches(job(learning_rate=3.4e-5))


def test_deferrable_pushes_the_link_then_defers_with_a_deadline(emu: Any, tmp_path: Any) -> None:
    from datetime import timedelta

    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_together.triggers import CURSOR_XCOM_KEY, TogetherFineTuneTrigger

    emu.admin.set_default_scenario("stall")
    ti = FakeTI()
    op = _op(tmp_path, deferrable=True, execution_timeout=timedelta(hours=2), cancel_on_kill=False)
    started = time.time()
    with pytest.raises(TaskDeferred) as info:
        op.execute(make_context(ti))
    trigger = info.value.trigger
    assert isinstance(trigger, TogetherFineTuneTrigger)
    assert trigger.job_id == ti.xcoms["job_id"]  # pushed before deferring: the link works while deferred
    # The trigger's first cursor read finds a value, so Airflow logs no "XCom not found" error.
    assert ti.xcoms[CURSOR_XCOM_KEY] == {"t": None, "keys": []}
    assert trigger.cancel_on_kill is False
    # execution_timeout does not bound a deferral, so it becomes the trigger's own deadline ...
    assert started + 7200 - 5 <= trigger.end_time <= time.time() + 7200
    # ... and Airflow's backstop fires later than the trigger's clean timeout event.
    assert info.value.timeout > timedelta(hours=2)
    assert info.value.method_name == "execute_complete"
