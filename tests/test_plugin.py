"""The Together tab's app: Airflow's auth (401 / 403 / 200 for three users), and the page against the emulator."""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_together.hooks import TogetherHook
from airflow_provider_together.models import EvaluationJob
from airflow_provider_together.plugins import data
from airflow_provider_together.plugins.app import create_app, parse_map_index
from tests._fine_tune_support import BASE_MODEL, write_training_file
from tests._plugin_support import Tokens, airflow_db, tokens

__all__ = ["airflow_db", "tokens"]
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

DAG, RUN, TASK = "weekly", "manual__2026-12-01T00:00:00+00:00", "fine_tune"
URL = f"/ti/{DAG}/manual__2026-12-01T00%3A00%3A00%2B00%3A00/{TASK}/%7BMAP_INDEX%7D"


def _client(job: data.JobRef | None, seen: list[data.TaskRef] | None = None, **kwargs: Any) -> Any:
    # Imported here, under this module's filterwarnings mark: starlette warns at import time about httpx.
    from fastapi.testclient import TestClient

    def locate(ref: data.TaskRef) -> data.JobRef | None:
        if seen is not None:
            seen.append(ref)
        return job

    return TestClient(create_app(locate=locate, **kwargs))


def test_the_plugin_is_registered_and_declares_a_task_instance_tab() -> None:
    from airflow_provider_together.plugins.plugin import TogetherPlugin

    points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="airflow.plugins")}
    assert points["together"] == "airflow_provider_together.plugins.plugin:TogetherPlugin"
    (view,) = TogetherPlugin.external_views
    assert view["destination"] == "task_instance"
    assert view["url_route"]  # without it the UI shows no tab
    assert (
        view["href"] == "together/ti/{DAG_ID}/{RUN_ID}/{TASK_ID}/{MAP_INDEX}"
    )  # relative: works under a sub-path
    (mounted,) = TogetherPlugin.fastapi_apps
    assert mounted["url_prefix"] == "/together"


@pytest.mark.parametrize(
    ("raw", "expected"), [("{MAP_INDEX}", -1), ("-1", -1), ("0", 0), ("12", 12), ("x", -1)]
)
def test_map_index_of_an_unmapped_instance_arrives_as_a_literal_placeholder(raw: str, expected: int) -> None:
    assert parse_map_index(raw) == expected


def test_no_token_is_401(tokens: Tokens) -> None:
    assert _client(None).get(URL).status_code == 401


def test_a_forged_token_is_403(tokens: Tokens) -> None:
    answer = _client(None).get(URL, headers={"Authorization": "Bearer not-a-jwt"})
    assert answer.status_code == 403


def test_a_user_without_access_to_the_dag_is_403_and_nothing_is_looked_up(tokens: Tokens) -> None:
    seen: list[data.TaskRef] = []
    answer = _client(None, seen).get(URL, headers=tokens.header("outsider"))
    assert answer.status_code == 403
    assert seen == []


@pytest.mark.parametrize("how", ["header", "cookie"])
def test_a_viewer_reads_the_tab_by_bearer_token_or_by_the_ui_cookie(tokens: Tokens, how: str) -> None:
    seen: list[data.TaskRef] = []
    client = _client(None, seen)
    if how == "cookie":
        client.cookies.update(tokens.cookie("viewer"))
        answer = client.get(URL)
    else:
        answer = client.get(URL, headers=tokens.header("viewer"))
    assert answer.status_code == 200
    assert 'id="no-job"' in answer.text
    assert seen == [data.TaskRef(DAG, RUN, TASK, -1)]


def test_the_app_is_read_only(tokens: Tokens) -> None:
    client = _client(None)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert client.request(method, URL, headers=tokens.header("admin")).status_code == 405


def test_job_ref_reads_the_xcoms_of_either_operator() -> None:
    assert data.job_ref({}, {}) is None
    ft = data.job_ref({"job_id": "ft-1"}, {"together_conn_id": "mine"})
    assert ft == data.JobRef("fine_tune", "ft-1", "mine", {"together_conn_id": "mine"})
    ev = data.job_ref({"evaluation_id": "eval-1", "evaluation_result": {"pass_percentage": 90.0}}, {})
    assert ev is not None
    assert (ev.kind, ev.job_id, ev.conn_id, ev.result) == (
        "evaluation",
        "eval-1",
        "together_default",
        {"pass_percentage": 90.0},
    )


def test_job_ref_carries_the_estimate_the_operator_pushed() -> None:
    ref = data.job_ref({"job_id": "ft-1", "estimated_price_usd": 12.5}, {})
    assert ref is not None
    assert ref.estimated_usd == 12.5
    for unusable in (None, True, -1.0, "12.5", {"usd": 1}):
        ref = data.job_ref({"job_id": "ft-1", "estimated_price_usd": unusable}, {})
        assert ref is not None
        assert ref.estimated_usd is None, unusable


def test_loss_points_split_training_and_evaluation() -> None:
    rows = [
        {"train/loss": 2.0, "train/global_step": 1.0},
        {"train/loss": 1.5, "train/global_step": 2.0, "eval/loss": 1.6},
        {"train/learning_rate": 1e-5},
    ]
    assert data.loss_points(rows) == ([(1.0, 2.0), (2.0, 1.5)], [(2.0, 1.6)])


# --- against the emulator ---------------------------------------------------------------------------------------


def _submit(tmp_path: Path, *, evals: bool) -> str:
    hook = TogetherHook()
    train = hook.upload_file(write_training_file(tmp_path / "train.jsonl", 40)).id
    request: dict[str, Any] = {"training_file": train, "model": BASE_MODEL, "n_epochs": 2, "n_checkpoints": 2}
    if evals:
        valid = hook.upload_file(write_training_file(tmp_path / "valid.jsonl", 12)).id
        request.update(validation_file=valid, n_evals=2)
    for file_id in filter(None, (train, request.get("validation_file"))):
        hook.wait_for_file_ready(file_id)
    return hook.create_fine_tune(request).id


def _wait(job_id: str, statuses: set[str], timeout: float = 60.0) -> None:
    hook = TogetherHook()
    deadline = time.monotonic() + timeout
    while (status := hook.get_fine_tune(job_id).status.value) not in statuses:
        assert time.monotonic() < deadline, f"{job_id} still {status}"
        time.sleep(0.2)


def test_finished_job_shows_everything_and_stops_refreshing(
    tokens: Tokens, together_emulator_conn: Any, tmp_path: Path
) -> None:
    job_id = _submit(tmp_path, evals=True)
    _wait(job_id, {"completed"})
    answer = _client(data.JobRef("fine_tune", job_id)).get(URL, headers=tokens.header("viewer"))
    assert answer.status_code == 200
    page = answer.text
    job = TogetherHook().get_fine_tune(job_id)
    assert job_id in page
    assert 'id="job-status">completed<' in page
    assert f"https://api.together.ai/fine-tuning/{job_id}" in page
    assert BASE_MODEL in page
    assert job.model_output_name is not None
    assert job.model_output_name in page
    assert f"final ${job.total_price / 1e9:,.2f}" in page  # type: ignore[operator]
    assert "estimated $" in page
    assert f"{job.token_count:,}" in page
    assert f"{job.total_steps} / {job.total_steps}" in page
    assert 'class="train-loss"' in page
    assert 'class="eval-loss"' in page  # the validation file and n_evals=2 give an evaluation loss
    assert '<table id="checkpoints">' in page
    assert "[job_complete]" in page
    assert 'http-equiv="refresh"' not in page
    assert answer.headers["cache-control"] == "no-store"
    assert (
        "script-src" not in answer.headers["content-security-policy"]
    )  # default-src 'none': no script at all
    assert together_emulator_conn.api_key not in page
    assert together_emulator_conn.api_key not in str(answer.headers)


def test_running_job_refreshes_and_shows_progress(
    tokens: Tokens, together_emulator_conn: Any, tmp_path: Path
) -> None:
    job_id = _submit(tmp_path, evals=False)
    together_emulator_conn.admin.set_job_scenario(job_id, "stall")
    _wait(job_id, {"running"})
    page = _client(data.JobRef("fine_tune", job_id)).get(URL, headers=tokens.header("viewer")).text
    assert 'id="job-status">running<' in page
    assert 'http-equiv="refresh"' in page
    assert "so far $" in page
    assert "[job_pending]" in page
    assert together_emulator_conn.api_key not in page


def test_refreshing_a_running_job_never_asks_for_a_new_estimate(
    tokens: Tokens, together_emulator_conn: Any, tmp_path: Path
) -> None:
    """The tab refreshes every few seconds: the estimate comes from XCom, else one call per job and process."""
    admin = together_emulator_conn.admin
    estimate = "POST /v1/fine-tunes/estimate-price"
    job_id = _submit(tmp_path, evals=False)
    admin.set_job_scenario(job_id, "stall")
    _wait(job_id, {"running"})
    admin.reset_counts()
    recorded = _client(data.JobRef("fine_tune", job_id, estimated_usd=7.25))
    for _ in range(3):
        page = recorded.get(URL, headers=tokens.header("viewer")).text
        assert "estimated $7.25" in page
    assert admin.count(estimate) == 0

    # A job with no estimate in XCom (a reattaching try, an older provider): estimated once, then remembered.
    data._estimates.pop(job_id, None)
    unrecorded = _client(data.JobRef("fine_tune", job_id))
    pages = [unrecorded.get(URL, headers=tokens.header("viewer")).text for _ in range(3)]
    assert admin.count(estimate) == 1
    assert all("estimated $" in page for page in pages)
    assert admin.count("GET /v1/fine-tunes/{job_id}") >= 6  # the job itself is read on every view


def test_a_failed_fallback_estimate_is_named_and_tried_again_on_the_next_view(
    tokens: Tokens, together_emulator_conn: Any, tmp_path: Path
) -> None:
    admin = together_emulator_conn.admin
    job_id = _submit(tmp_path, evals=False)
    data._estimates.pop(job_id, None)
    admin.add_fault("POST /v1/fine-tunes/estimate-price", "status", status=400, count=1)
    client = _client(data.JobRef("fine_tune", job_id))
    first = client.get(URL, headers=tokens.header("viewer")).text
    assert "price estimate: TogetherBadRequestError" in first
    second = client.get(URL, headers=tokens.header("viewer")).text
    assert "price estimate:" not in second
    assert "estimated $" in second


def test_an_unreachable_together_is_shown_not_raised(tokens: Tokens, together_emulator_conn: Any) -> None:
    together_emulator_conn.admin.add_fault("GET /v1/fine-tunes/{job_id}", "status", status=401)
    answer = _client(data.JobRef("fine_tune", "ft-missing")).get(URL, headers=tokens.header("viewer"))
    assert answer.status_code == 200
    assert "Could not read ft-missing from Together" in answer.text
    assert together_emulator_conn.api_key not in answer.text


class _EvaluationHook:
    """A hook stand-in answering one evaluation (the public method the view uses, nothing else)."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job

    def get_evaluation(self, evaluation_id: str) -> EvaluationJob:
        return EvaluationJob.model_validate({**self.job, "workflow_id": evaluation_id})


def test_evaluation_shows_each_figure_against_the_gate(tokens: Tokens) -> None:
    hook = _EvaluationHook(
        {
            "type": "score",
            "status": "completed",
            "results": {"aggregated_scores": {"mean_score": 7.5, "pass_percentage": 62.0}},
        }
    )
    ref = data.JobRef("evaluation", "eval-42", rendered={"min_pass_percentage": "80", "min_mean_score": 7})
    client = _client(ref, hook_factory=lambda conn_id: hook)  # type: ignore[arg-type,return-value]
    page = client.get(URL, headers=tokens.header("viewer")).text
    assert "eval-42" in page
    assert "https://api.together.ai/evaluations/result/eval-42" in page
    assert "<td>pass_percentage</td><td>62</td><td>≥ 80</td>" in page
    assert "below the gate" in page
    assert "<td>mean_score</td><td>7.5</td><td>≥ 7</td>" in page
    assert 'http-equiv="refresh"' not in page
