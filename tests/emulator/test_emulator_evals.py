"""The emulator's Evaluations API: lifecycle, results computed from the input file, failures, faults, the SDK."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _emu_helpers import upload, wait_for

from airflow_provider_together.emulator import Emulator

JUDGE = {
    "model": "judge/model",
    "model_source": "serverless",
    "system_template": "Judge the answer to {{prompt}}",
}


def eval_rows(n: int = 20) -> bytes:
    rows = [
        {"prompt": f"question {i}", "response_a": f"answer A{i}", "response_b": f"answer B{i}"}
        for i in range(n)
    ]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def eval_file(api: httpx.Client, data: bytes | None = None, name: str = "eval.jsonl") -> str:
    file_id = upload(api, data or eval_rows(), name, purpose="eval")
    wait_for(lambda: api.get(f"/files/{file_id}").json()["processing_status"] == "COMPLETED")
    return file_id


def create(api: httpx.Client, kind: str, **parameters: Any) -> str:
    answer = api.post("/evaluation", json={"type": kind, "parameters": {"judge": JUDGE, **parameters}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "pending"
    return str(body["workflow_id"])


def finished(api: httpx.Client, eval_id: str, timeout: float = 20.0) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job = api.get(f"/evaluation/{eval_id}").json()
        return job if job["status"] in {"completed", "error", "user_error"} else None

    result: dict[str, Any] = wait_for(check, timeout)
    return result


def result_rows(api: httpx.Client, job: dict[str, Any]) -> list[dict[str, Any]]:
    content = api.get(f"/files/{job['results']['result_file_id']}/content").content
    return [json.loads(line) for line in content.splitlines()]


def test_compare_goes_through_every_status_and_counts_the_result_file(api, together_emulator) -> None:
    file_id = eval_file(api)
    eval_id = create(api, "compare", model_a="response_a", model_b="response_b", input_data_file_path=file_id)
    job = finished(api, eval_id)
    assert job["status"] == "completed"
    assert [u["status"] for u in job["status_updates"]] == ["pending", "queued", "running", "completed"]
    assert job["type"] == "compare"
    assert job["parameters"]["model_a"] == "response_a"
    rows = result_rows(api, job)
    assert [r["prompt"] for r in rows] == [f"question {i}" for i in range(20)]
    winners = Counter(r["winner"] for r in rows)
    results = job["results"]
    assert (results["A_wins"], results["B_wins"], results["Ties"]) == (
        winners["A"],
        winners["B"],
        winners["Tie"],
    )
    assert "num_samples" not in results  # removed from the SDK in 2.15.0; the emulator sends what v3 reads
    status = api.get(f"/evaluation/{eval_id}/status").json()
    assert status == {"status": "completed", "results": results}
    assert [s["status"] for s in together_emulator.admin.evaluations()[0]["history"]] == [
        "pending",
        "queued",
        "running",
        "completed",
    ]


def test_the_judge_follows_model_quality_and_is_deterministic(api, together_emulator) -> None:
    file_id = eval_file(api)
    together_emulator.admin.set_evaluation_quality("response_a", 1.0)
    together_emulator.admin.set_evaluation_quality("response_b", 0.0)
    first = create(api, "compare", model_a="response_a", model_b="response_b", input_data_file_path=file_id)
    assert finished(api, first)["results"]["A_wins"] == 20
    together_emulator.admin.clear_evaluation_quality()
    runs = [
        create(api, "compare", model_a="response_a", model_b="response_b", input_data_file_path=file_id)
        for _ in range(2)
    ]
    figures = [{k: v for k, v in finished(api, r)["results"].items() if k != "result_file_id"} for r in runs]
    assert figures[0] == figures[1]
    assert 0 < figures[0]["A_wins"] + figures[0]["B_wins"] + figures[0]["Ties"] == 20


def test_classify_counts_labels_and_pass_percentage_from_its_verdicts(api) -> None:
    file_id = eval_file(
        api,
        b"".join(json.dumps({"prompt": f"p{i}", "response": f"r{i}"}).encode() + b"\n" for i in range(30)),
    )
    eval_id = create(
        api,
        "classify",
        labels=["good", "meh", "bad"],
        pass_labels=["good"],
        model_to_evaluate="response",
        input_data_file_path=file_id,
    )
    job = finished(api, eval_id)
    rows = result_rows(api, job)
    counts = json.loads(job["results"]["label_counts"])  # a JSON string, as the spec types it
    assert counts == {label: sum(1 for r in rows if r["label"] == label) for label in ("good", "meh", "bad")}
    assert job["results"]["pass_percentage"] == pytest.approx(100 * counts["good"] / 30)


def test_score_aggregates_the_scores_of_its_result_file(api) -> None:
    file_id = eval_file(
        api, b"prompt,response\n" + b"".join(f"p{i},r{i}\n".encode() for i in range(25)), "eval.csv"
    )
    model = {
        "model": "my/model",
        "model_source": "serverless",
        "system_template": "Answer briefly.",
        "input_template": "{{prompt}} {{response}}",
        "max_tokens": 64,
        "temperature": 0.1,
    }
    eval_id = create(
        api,
        "score",
        min_score=1,
        max_score=10,
        pass_threshold=7,
        model_to_evaluate=model,
        input_data_file_path=file_id,
    )
    job = finished(api, eval_id)
    scores = [r["score"] for r in result_rows(api, job)]
    aggregated = job["results"]["aggregated_scores"]
    assert aggregated["mean_score"] == pytest.approx(statistics.fmean(scores), abs=1e-3)
    assert aggregated["std_score"] == pytest.approx(statistics.pstdev(scores), abs=1e-3)
    assert aggregated["pass_percentage"] == pytest.approx(100 * sum(s >= 7 for s in scores) / 25)
    assert all(1 <= s <= 10 for s in scores)


def test_an_unused_column_ends_in_user_error_naming_it(api) -> None:
    data = b"".join(
        json.dumps({"id": i, "prompt": f"p{i}", "response_a": "a", "response_b": "b"}).encode() + b"\n"
        for i in range(5)
    )
    eval_id = create(
        api, "compare", model_a="response_a", model_b="response_b", input_data_file_path=eval_file(api, data)
    )
    job = finished(api, eval_id)
    assert job["status"] == "user_error"
    assert "column(s) id are not used" in job["results"]["error"]


def test_error_scenario_by_judge_model(api, together_emulator) -> None:
    together_emulator.admin.add_scenario("error", model=JUDGE["model"], count=1, message="judge exploded")
    file_id = eval_file(api)
    job = finished(
        api, create(api, "compare", model_a="response_a", model_b="response_b", input_data_file_path=file_id)
    )
    assert (job["status"], job["results"]) == ("error", {"error": "judge exploded"})
    assert job["status_updates"][-1]["message"] == "judge exploded"


def test_stall_then_set_scenario_on_a_live_evaluation(api, together_emulator) -> None:
    together_emulator.admin.set_default_scenario("stall")
    file_id = eval_file(api)
    eval_id = create(api, "compare", model_a="response_a", model_b="response_b", input_data_file_path=file_id)
    wait_for(lambda: api.get(f"/evaluation/{eval_id}").json()["status"] == "running")
    together_emulator.admin.set_evaluation_scenario(eval_id, "user_error", message="bad rows")
    assert finished(api, eval_id)["results"] == {"error": "bad rows"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"type": "rank", "parameters": {}}, "type"),
        (
            {"type": "score", "parameters": {"judge": JUDGE, "input_data_file_path": "f"}},
            "parameters.min_score",
        ),
        ({"type": "compare", "parameters": {"judge": {"model": "j"}}}, "parameters.judge.model_source"),
        (
            {"type": "compare", "parameters": {"judge": JUDGE, "input_data_file_path": "file-nope"}},
            "parameters.input_data_file_path",
        ),
        (
            {"type": "compare", "parameters": {"judge": {**JUDGE, "model_source": "external"}}},
            "parameters.judge",
        ),
    ],
)
def test_bad_requests_are_400_naming_the_parameter(api, body, param) -> None:
    answer = api.post("/evaluation", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


def test_unknown_evaluation_is_404_and_list_filters_newest_first(api) -> None:
    assert api.get("/evaluation/eval-nope").status_code == 404
    file_id = eval_file(api)
    ids = [
        create(api, "compare", model_a="response_a", model_b="response_b", input_data_file_path=file_id)
        for _ in range(3)
    ]
    listed = api.get("/evaluation", params={"limit": 2}).json()
    assert [job["workflow_id"] for job in listed] == ids[::-1][:2]
    finished(api, ids[-1])
    assert {
        job["workflow_id"] for job in api.get("/evaluation", params={"status": "completed"}).json()
    } <= set(ids)


def test_the_fine_tuning_faults_apply(api, together_emulator) -> None:
    file_id = eval_file(api)
    together_emulator.admin.add_fault("POST /v1/evaluation", "ambiguous", count=1)
    body = {
        "type": "compare",
        "parameters": {
            "judge": JUDGE,
            "model_a": "response_a",
            "model_b": "response_b",
            "input_data_file_path": file_id,
        },
    }
    assert api.post("/evaluation", json=body).status_code == 500
    assert len(together_emulator.admin.evaluations()) == 1  # created, only the answer was lost
    together_emulator.admin.add_fault(
        "GET /v1/evaluation/{eval_id}", "status", status=429, count=2, retry_after=0
    )
    [created] = together_emulator.admin.evaluations()
    assert api.get(f"/evaluation/{created['id']}").status_code == 429
    assert api.get(f"/evaluation/{created['id']}").status_code == 429
    assert api.get(f"/evaluation/{created['id']}").status_code == 200
    assert together_emulator.admin.count("GET /v1/evaluation/{eval_id}") == 3


# --- the official SDK 3.1.1 ----------------------------------------------------------------------------


@pytest.fixture
def sdk(together_emulator: Emulator) -> Iterator[Any]:
    import together

    client = together.Together(
        api_key=together_emulator.api_key, base_url=together_emulator.root_url, max_retries=0
    )
    yield client
    client.close()


def test_official_sdk_evals_create_retrieve_status_list(sdk, tmp_path) -> None:
    path = tmp_path / "eval.jsonl"
    path.write_bytes(eval_rows(10))
    uploaded = sdk.files.upload(file=path, purpose="eval", check=False)
    wait_for(lambda: sdk.files.retrieve(uploaded.id).processing_status == "COMPLETED")
    created = sdk.evals.create(
        type="compare",
        parameters={
            "judge": JUDGE,
            "model_a": "response_a",
            "model_b": "response_b",
            "input_data_file_path": uploaded.id,
        },
    )
    assert created.status == "pending"
    wait_for(lambda: sdk.evals.status(created.workflow_id).status == "completed")
    job = sdk.evals.retrieve(created.workflow_id)
    assert (job.workflow_id, job.type, job.status) == (created.workflow_id, "compare", "completed")
    assert job.results.a_wins + job.results.b_wins + job.results.ties == 10
    assert [j.workflow_id for j in sdk.evals.list(status="completed")] == [created.workflow_id]
    status = sdk.evals.status(created.workflow_id)
    assert status.results.result_file_id == job.results.result_file_id
    assert sdk.files.content(job.results.result_file_id).read().count(b"\n") == 10
