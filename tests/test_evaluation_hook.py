"""The evaluation calls of TogetherHook at the HTTP boundary (respx), sync and async through the same flows."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_together.exceptions import (
    TogetherAmbiguousSubmitError,
    TogetherConfigError,
    TogetherNotFoundError,
)
from airflow_provider_together.models import EvaluationConfig, EvaluationJob, EvaluationStatus
from tests import _hook_support as support

pytestmark = pytest.mark.anyio
api, call, hook, sleeps = support.api, support.call, support.hook, support.sleeps

JUDGE = {"model": "judge-model", "model_source": "serverless", "system_template": "Judge {{prompt}}"}


def _compare_request() -> dict[str, Any]:
    config = EvaluationConfig.parse(
        {
            "type": "compare",
            "judge": JUDGE,
            "model_a": "response_a",
            "model_b": {
                "model": "prod-model",
                "model_source": "serverless",
                "system_template": "Be brief.",
                "input_template": "{{prompt}}",
                "max_tokens": 256,
                "temperature": 0.2,
            },
            "input_data_file_path": "file-123456",
        }
    )
    return config.to_request()


async def test_create_sends_the_sdk_body_once_and_reads_the_workflow_id(api, call, hook) -> None:
    route = api.post("/evaluation").respond(json={"workflow_id": "eval-1234-1", "status": "pending"})
    job = await call(hook, "create_evaluation", _compare_request())
    assert isinstance(job, EvaluationJob)
    assert (job.id, job.status) == ("eval-1234-1", EvaluationStatus.PENDING)
    sent = json.loads(route.calls.last.request.content)
    # What client.evals.create(type=, parameters=) sends: the parameters as given, no nulls.
    assert sent == {
        "type": "compare",
        "parameters": {
            "judge": JUDGE,
            "model_a": "response_a",
            "model_b": {
                "model": "prod-model",
                "model_source": "serverless",
                "system_template": "Be brief.",
                "input_template": "{{prompt}}",
                "max_tokens": 256,
                "temperature": 0.2,
            },
            "input_data_file_path": "file-123456",
        },
    }


async def test_create_is_never_resent_after_a_5xx(api, call, hook) -> None:
    route = api.post("/evaluation").respond(500, json={"error": {"message": "boom"}})
    with pytest.raises(TogetherAmbiguousSubmitError):
        await call(hook, "create_evaluation", _compare_request())
    assert route.call_count == 1


async def test_create_refuses_a_body_without_parameters_before_sending(api, call, hook) -> None:
    route = api.post("/evaluation").respond(json={"workflow_id": "x"})
    with pytest.raises(TogetherConfigError, match="parameters"):
        await call(hook, "create_evaluation", {"type": "score"})
    assert route.call_count == 0


async def test_get_reads_results_by_type_from_raw_keys(api, call, hook) -> None:
    # label_counts as an object: the v3 SDK parses this as *score* results; we read it for the job's type.
    api.get("/evaluation/eval-1").respond(
        json={
            "workflow_id": "eval-1",
            "type": "classify",
            "status": "completed",
            "results": {
                "label_counts": {"good": 3, "bad": 1},
                "pass_percentage": 75,
                "result_file_id": "file-r",
            },
        }
    )
    job = await call(hook, "get_evaluation", "eval-1")
    summary = job.summary()
    assert summary["label_counts"] == {"good": 3, "bad": 1}
    assert summary["pass_percentage"] == 75
    assert summary["result_file_id"] == "file-r"


async def test_status_endpoint_keeps_the_id(api, call, hook) -> None:
    api.get("/evaluation/eval-1/status").respond(json={"status": "running", "results": None})
    job = await call(hook, "get_evaluation_status", "eval-1")
    assert (job.id, job.status) == ("eval-1", EvaluationStatus.RUNNING)


async def test_list_reads_a_bare_array_and_passes_filters(api, call, hook) -> None:
    route = api.get("/evaluation").respond(
        json=[{"workflow_id": "eval-1", "status": "completed"}, {"workflow_id": "eval-2", "status": "queued"}]
    )
    jobs = await call(hook, "list_evaluations", status="completed", limit=50)
    assert [j.id for j in jobs] == ["eval-1", "eval-2"]
    assert dict(route.calls.last.request.url.params) == {"status": "completed", "limit": "50"}


async def test_unknown_evaluation_is_not_found(api, call, hook) -> None:
    api.get("/evaluation/eval-x").respond(404, json={"error": {"message": "Evaluation job not found"}})
    with pytest.raises(TogetherNotFoundError):
        await call(hook, "get_evaluation", "eval-x")


async def test_download_results_streams_the_result_file(api, call, hook, tmp_path) -> None:
    api.get("/evaluation/eval-1").respond(
        json={
            "workflow_id": "eval-1",
            "type": "compare",
            "status": "completed",
            "results": {"A_wins": 1, "B_wins": 0, "Ties": 0, "result_file_id": "file-res"},
        }
    )
    rows = b'{"prompt": "p", "winner": "A"}\n'
    api.get("/files/file-res/content").respond(content=rows)
    path = await call(hook, "download_evaluation_results", "eval-1", tmp_path / "out.jsonl")
    assert path.read_bytes() == rows


async def test_download_results_of_a_failed_evaluation_names_the_status(api, call, hook, tmp_path) -> None:
    api.get("/evaluation/eval-1").respond(
        json={
            "workflow_id": "eval-1",
            "type": "score",
            "status": "error",
            "results": {"error": "judge unreachable"},
        }
    )
    with pytest.raises(TogetherConfigError, match="no result file"):
        await call(hook, "download_evaluation_results", "eval-1", tmp_path / "out.jsonl")
