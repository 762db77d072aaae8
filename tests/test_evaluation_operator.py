"""TogetherEvaluationOperator against the emulator: checks before HTTP, upload, submit once, wait, the gate."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from _fine_tune_support import FAST, FakeTI, MemoryStateStore, make_context
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from airflow_provider_together.exceptions import (
    TogetherEvaluationGateError,
    TogetherJobFailedError,
    TogetherJobUserError,
    TogetherServerError,
)
from airflow_provider_together.operators import TogetherEvaluationOperator

pytestmark = pytest.mark.timeout(120)

JUDGE = {
    "model": "judge/model",
    "model_source": "serverless",
    "system_template": "Which answer to {{prompt}} is better?",
}
COMPARE = {"judge": JUDGE, "model_a": "new_answer", "model_b": "prod_answer"}


def write_rows(path: Path, n: int = 20, **extra: Any) -> Path:
    rows = [
        {"prompt": f"question {i}", "new_answer": f"new {i}", "prod_answer": f"old {i}", **extra}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def emu(together_emulator_conn: Any) -> Any:
    together_emulator_conn.admin.update_settings(speed=FAST)
    return together_emulator_conn


def _op(tmp_path: Path, **kwargs: Any) -> TogetherEvaluationOperator:
    options: dict[str, Any] = {
        "task_id": "evaluate",
        "evaluation_type": "compare",
        "parameters": COMPARE,
        "input_file": str(write_rows(tmp_path / "eval.jsonl")),
        "deferrable": False,
        "poll_interval": 0.05,
    }
    options.update(kwargs)
    return TogetherEvaluationOperator(**options)


def test_every_problem_is_named_before_any_http_call(emu: Any, tmp_path: Path) -> None:
    path = write_rows(
        tmp_path / "with_id.jsonl", id=7
    )  # an unused column: Together would fail late with user_error
    op = _op(
        tmp_path,
        input_file=str(path),
        parameters={**COMPARE, "model_b": "missing_column", "labels": ["a", "b"]},
        min_win_rate=1.5,
        min_mean_score=5,
        poll_interval="soon",
    )
    with pytest.raises(AirflowFailException) as info:
        op.execute(make_context(FakeTI(task_id="evaluate")))
    text = str(info.value)
    for expected in (
        "poll_interval: must be a number",
        "min_win_rate: must be a fraction between 0 and 1",
        "labels: applies to classify evaluations only, not compare",
        "min_mean_score: applies to score evaluations, not compare",
    ):
        assert expected in text
    assert emu.admin.requests() == {}

    op = _op(tmp_path, input_file=str(path), parameters={**COMPARE, "model_b": "missing_column"})
    with pytest.raises(AirflowFailException) as info:
        op.execute(make_context(FakeTI(task_id="evaluate")))
    assert "model_b: names column 'missing_column'" in str(info.value)
    assert "input_file: column 'id' is used by no template" in str(info.value)
    assert emu.admin.requests() == {}


def test_inline_external_token_is_refused_without_echoing_it(emu: Any, tmp_path: Path) -> None:
    judge = {
        **JUDGE,
        "model_source": "external",
        "external_base_url": "https://x/v1",
        "external_api_token": "sk-SECRET",
    }
    with pytest.raises(AirflowFailException) as info:
        _op(tmp_path, parameters={**COMPARE, "judge": judge}).execute(
            make_context(FakeTI(task_id="evaluate"))
        )
    assert "parameters.judge.external_api_token: secrets are not accepted here" in str(info.value)
    assert "sk-SECRET" not in str(info.value)


def test_external_judge_token_comes_from_a_connection(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_JUDGE_API", json.dumps({"conn_type": "generic", "password": "sk-judge-123"})
    )
    judge = {**JUDGE, "model_source": "external", "external_base_url": "https://judge.example/v1"}
    ti = FakeTI(task_id="evaluate")
    result = _op(tmp_path, parameters={**COMPARE, "judge": judge}, external_api_conn_id="judge_api").execute(
        make_context(ti)
    )
    # The emulator answers 400 to an external judge without its token: the evaluation ran, so it was sent.
    assert result["status"] == "completed"
    assert "sk-judge-123" not in json.dumps(ti.xcoms) + json.dumps(result)


def test_gate_passes_returns_figures_pushes_them_and_fills_outlets(emu: Any, tmp_path: Path) -> None:
    from airflow_provider_together.hooks import TogetherHook

    emu.admin.set_evaluation_quality("new_answer", 0.9)
    emu.admin.set_evaluation_quality("prod_answer", 0.2)
    ti = FakeTI(task_id="evaluate")
    extras: dict[str, dict[str, Any]] = {}

    class Accessor:
        def __init__(self, name: str) -> None:
            self.extra = extras.setdefault(name, {})

    context = make_context(ti)
    context["outlet_events"] = {"production": Accessor("production")}
    result = _op(tmp_path, min_win_rate=0.5, outlets=["production"]).execute(context)

    rows = [
        json.loads(line) for line in _result_file(tmp_path, result["evaluation_id"]).read_text().splitlines()
    ]
    a_wins = sum(r["winner"] == "A" for r in rows)
    b_wins = sum(r["winner"] == "B" for r in rows)
    assert (result["a_wins"], result["b_wins"], result["ties"]) == (
        a_wins,
        b_wins,
        len(rows) - a_wins - b_wins,
    )
    assert result["win_rate"] == pytest.approx(a_wins / (a_wins + b_wins))
    assert result["win_rate"] >= 0.5
    assert ti.xcoms["evaluation_id"] == result["evaluation_id"]
    assert (
        ti.xcoms["evaluation_url"] == f"https://api.together.ai/evaluations/result/{result['evaluation_id']}"
    )
    assert ti.xcoms["evaluation_result"] == result
    assert extras["production"] == result
    [uploaded] = [f for f in TogetherHook().list_files() if f.purpose == "eval"]
    assert uploaded.filename == "eval.jsonl"
    assert emu.admin.count("POST /v1/evaluation") == 1


def _result_file(tmp_path: Path, evaluation_id: str) -> Path:
    from airflow_provider_together.hooks import TogetherHook

    return TogetherHook().download_evaluation_results(evaluation_id, tmp_path / "results.jsonl")


def test_gate_refuses_naming_figure_and_threshold_or_skips_with_soft_fail(emu: Any, tmp_path: Path) -> None:
    emu.admin.set_evaluation_quality("new_answer", 0.1)
    emu.admin.set_evaluation_quality("prod_answer", 0.9)
    ti = FakeTI(task_id="evaluate")
    with pytest.raises(TogetherEvaluationGateError) as info:
        _op(tmp_path, min_win_rate=0.5).execute(make_context(ti))
    error = info.value
    assert isinstance(error, AirflowFailException)
    figures = ti.xcoms["evaluation_result"]  # pushed even though the task fails
    assert (error.figure, error.threshold, error.value) == ("win_rate", 0.5, figures["win_rate"])
    assert f"win_rate = {figures['win_rate']:.4g} is below the gate min_win_rate = 0.5" in str(error)
    assert f"ties {figures['ties']}" in str(error)

    with pytest.raises(AirflowSkipException, match="is below the gate min_win_rate"):
        _op(tmp_path, min_win_rate=0.5, soft_fail=True).execute(make_context(FakeTI(task_id="evaluate")))


def test_score_gate_on_mean_and_pass_percentage(emu: Any, tmp_path: Path) -> None:
    path = tmp_path / "score.csv"
    path.write_text("prompt,answer\n" + "".join(f"q{i},a{i}\n" for i in range(30)), encoding="utf-8")
    parameters = {
        "judge": JUDGE,
        "model_to_evaluate": "answer",
        "min_score": 1,
        "max_score": 10,
        "pass_threshold": 6,
    }
    result = _op(tmp_path, evaluation_type="score", parameters=parameters, input_file=str(path)).execute(
        make_context(FakeTI(task_id="evaluate"))
    )
    scores = [
        json.loads(line)["score"]
        for line in _result_file(tmp_path, result["evaluation_id"]).read_text().splitlines()
    ]
    assert result["mean_score"] == pytest.approx(sum(scores) / len(scores), abs=1e-3)
    assert result["pass_percentage"] == pytest.approx(100 * sum(s >= 6 for s in scores) / len(scores))
    above = result["mean_score"] + 0.01
    with pytest.raises(
        TogetherEvaluationGateError, match=f"mean_score = .* is below the gate min_mean_score = {above:g}"
    ):
        _op(
            tmp_path,
            evaluation_type="score",
            parameters=parameters,
            input_file=str(path),
            min_mean_score=above,
        ).execute(make_context(FakeTI(task_id="evaluate")))
    result = _op(
        tmp_path,
        evaluation_type="score",
        parameters=parameters,
        input_file=str(path),
        min_pass_percentage=result["pass_percentage"],
        min_mean_score=result["mean_score"],
    ).execute(make_context(FakeTI(task_id="evaluate")))
    assert result["type"] == "score"


def test_classify_pass_percentage_gate(emu: Any, tmp_path: Path) -> None:
    emu.admin.set_evaluation_quality("new_answer", 1.0)
    parameters = {
        "judge": {
            **JUDGE,
            "system_template": "Is the answer to {{prompt}} correct? Compare with {{prod_answer}}.",
        },
        "model_to_evaluate": "new_answer",
        "labels": ["correct", "wrong"],
        "pass_labels": ["correct"],
    }
    result = _op(tmp_path, evaluation_type="classify", parameters=parameters, min_pass_percentage=99).execute(
        make_context(FakeTI(task_id="evaluate"))
    )
    assert (result["pass_percentage"], result["label_counts"]) == (100.0, {"correct": 20, "wrong": 0})


@pytest.mark.parametrize(
    ("scenario", "error"), [("user_error", TogetherJobUserError), ("error", TogetherJobFailedError)]
)
def test_failed_evaluation_fails_with_togethers_message(
    emu: Any, tmp_path: Path, scenario: str, error: type
) -> None:
    emu.admin.add_scenario(scenario, model=JUDGE["model"], message=f"Together says: {scenario} happened")
    with pytest.raises(error, match=f"ended with status {scenario}: Together says: {scenario} happened"):
        _op(tmp_path, min_win_rate=0.1).execute(make_context(FakeTI(task_id="evaluate")))


def test_input_given_as_a_file_id_is_column_checked_by_reading_it_back(emu: Any, tmp_path: Path) -> None:
    from airflow_provider_together.hooks import TogetherHook

    hook = TogetherHook()
    file_id = hook.upload_file(write_rows(tmp_path / "remote.jsonl", extra_col="x"), purpose="eval").id
    with pytest.raises(AirflowFailException, match="column 'extra_col' is used by no template"):
        _op(tmp_path, input_file=file_id).execute(make_context(FakeTI(task_id="evaluate")))
    assert emu.admin.count("POST /v1/evaluation") == 0

    good = hook.upload_file(write_rows(tmp_path / "good.jsonl"), purpose="eval").id
    result = _op(tmp_path, input_file=None, parameters={**COMPARE, "input_data_file_path": good}).execute(
        make_context(FakeTI(task_id="evaluate"))
    )
    assert emu.admin.evaluations()[0]["input_file"] == good
    assert result["status"] == "completed"


def test_ambiguous_create_is_reconciled_and_a_retry_reuses_the_evaluation(emu: Any, tmp_path: Path) -> None:
    emu.admin.add_fault("POST /v1/evaluation", "ambiguous", count=1)
    store = MemoryStateStore()
    first = _op(tmp_path).execute(make_context(FakeTI(task_id="evaluate"), store))
    second = _op(tmp_path).execute(make_context(FakeTI(task_id="evaluate", try_number=2), store))
    assert first["evaluation_id"] == second["evaluation_id"]
    assert len(emu.admin.evaluations()) == 1
    assert emu.admin.count("POST /v1/evaluation") == 1


def test_an_ambiguous_create_never_adopts_an_identical_evaluation_from_before(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Last run's evaluation of the same request is another verdict: the lookup only takes newer ones."""
    from airflow_provider_together._fine_tune import reattach
    from airflow_provider_together.exceptions import TogetherAmbiguousSubmitError

    monkeypatch.setattr(reattach, "CLOCK_SKEW_S", 0.0)  # the emulator's clock is this machine's
    old = _op(tmp_path).execute(make_context(FakeTI(task_id="evaluate")))
    time.sleep(1.1)  # created_at has one-second resolution
    emu.admin.add_fault("POST /v1/evaluation", "status", status=500, count=1)  # nothing created
    with pytest.raises(TogetherAmbiguousSubmitError):
        _op(tmp_path).execute(make_context(FakeTI(task_id="evaluate", try_number=2)))
    assert [job["id"] for job in emu.admin.evaluations()] == [old["evaluation_id"]]


def test_deferrable_defers_on_the_shared_trigger_and_completes_from_its_event(
    emu: Any, tmp_path: Path
) -> None:
    import asyncio
    import importlib

    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.triggers import TogetherJobTrigger

    ti = FakeTI(task_id="evaluate")
    op = _op(tmp_path, deferrable=True, min_win_rate=0.0)
    with pytest.raises(TaskDeferred) as info:
        op.execute(make_context(ti))
    trigger = info.value.trigger
    assert isinstance(trigger, TogetherJobTrigger)
    classpath, kwargs = trigger.serialize()
    assert kwargs["kind"] == "evaluation"
    assert kwargs["job_id"] == ti.xcoms["evaluation_id"]
    module, _, name = classpath.rpartition(".")
    again = getattr(importlib.import_module(module), name)(
        **{**kwargs, "poll_interval": 0.05, "first_poll_jitter": 0}
    )

    async def collect() -> list[dict[str, Any]]:
        try:
            return [event.payload async for event in again.run()]
        finally:
            await TogetherHook.aclose_async_clients()

    [event] = asyncio.run(collect())
    assert event["status"] == "success"
    result = op.execute_complete(make_context(ti), event)
    assert result["evaluation_id"] == ti.xcoms["evaluation_id"]
    assert result["a_wins"] + result["b_wins"] + result["ties"] == 20


def test_airflow_renders_parameters_but_not_togethers_own_templates() -> None:
    from jinja2 import Environment

    op = TogetherEvaluationOperator(
        task_id="evaluate",
        evaluation_type="compare",
        parameters={
            "judge": {**JUDGE, "model": "{{ params.judge }}"},
            "model_a": {
                "model": "{{ params.new }}",
                "input_template": "{{ prompt }}",
                "system_template": "Hi {{x}}",
            },
            "model_b": "{{ params.column }}",
        },
        input_file="{{ params.path }}",
    )
    context: Any = {
        "params": {"judge": "j/1", "new": "ft/2", "column": "prod_answer", "path": "/data/e.jsonl"}
    }
    env = Environment()
    rendered = op.render_template(op.parameters, context, env)
    assert rendered == {
        "judge": {**JUDGE, "model": "j/1"},
        "model_a": {"model": "ft/2", "input_template": "{{ prompt }}", "system_template": "Hi {{x}}"},
        "model_b": "prod_answer",
    }
    assert op.render_template(op.input_file, context, env) == "/data/e.jsonl"


def test_the_workers_wait_outlives_transient_poll_failures(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", emu.conn_json(max_retries=0))
    emu.admin.add_fault("GET /v1/evaluation/{eval_id}", status=503, count=3)
    result = _op(tmp_path).execute(make_context(FakeTI(task_id="evaluate")))
    assert result["status"] == "completed"
    assert emu.admin.faults()[0]["hits"] == 3

    emu.admin.add_fault("GET /v1/evaluation/{eval_id}", status=503)
    with pytest.raises(TogetherServerError):
        _op(tmp_path).execute(make_context(FakeTI(task_id="evaluate", try_number=2)))
