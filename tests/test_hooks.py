"""TogetherHook at the HTTP boundary (respx): every JSON call sync and async, retries, errors, secrets."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from airflow_provider_together.exceptions import (
    TogetherAmbiguousSubmitError,
    TogetherAuthError,
    TogetherBadRequestError,
    TogetherConfigError,
    TogetherNotFoundError,
    TogetherRateLimitError,
    TogetherServerError,
    TogetherTransportError,
)
from airflow_provider_together.hooks import TogetherHook
from airflow_provider_together.models import (
    Checkpoint,
    FileObject,
    FineTuneEvent,
    FineTuneJob,
    JobStatus,
    ModelLimits,
    PriceEstimate,
)
from tests import _hook_support as support
from tests._hook_support import file_obj, job, set_conn
from tests.conftest import TEST_API_KEY

pytestmark = pytest.mark.anyio
# Shared fixtures, assigned rather than imported so that test parameters may reuse the names.
api, call, hook, sleeps = support.api, support.call, support.hook, support.sleeps

# (hook method, args, HTTP method, path, response body, expected result type or value)
CALLS: list[tuple[str, tuple[Any, ...], str, str, Any, Any]] = [
    ("get_file", ("file-1",), "GET", "/files/file-1", file_obj(), FileObject),
    ("list_files", (), "GET", "/files", {"data": [file_obj(), file_obj("file-2")]}, FileObject),
    ("delete_file", ("file-1",), "DELETE", "/files/file-1", {"id": "file-1", "deleted": True}, None),
    ("get_fine_tune", ("ft-1",), "GET", "/fine-tunes/ft-1", job(), FineTuneJob),
    ("list_fine_tunes", (), "GET", "/fine-tunes", {"data": [job(), job("ft-2", "completed")]}, FineTuneJob),
    (
        "cancel_fine_tune",
        ("ft-1",),
        "POST",
        "/fine-tunes/ft-1/cancel",
        job(status="cancel_requested"),
        FineTuneJob,
    ),
    ("delete_fine_tune", ("ft-1",), "DELETE", "/fine-tunes/ft-1", {"message": "deleted"}, None),
    (
        "list_fine_tune_events",
        ("ft-1",),
        "GET",
        "/fine-tunes/ft-1/events",
        {"data": [{"object": "fine-tune-event", "type": "JOB_START", "level": "Info", "message": "go"}]},
        FineTuneEvent,
    ),
    (
        "list_fine_tune_checkpoints",
        ("ft-1",),
        "GET",
        "/fine-tunes/ft-1/checkpoints",
        {"data": [{"step": 10, "path": "s3://x", "checkpoint_type": "Intermediate"}]},
        Checkpoint,
    ),
    (
        "get_fine_tune_metrics",
        ("ft-1",),
        "GET",
        "/fine-tunes/ft-1/metrics",
        {"metrics": [{"train/loss": 1.5, "train/global_step": 1.0}]},
        [{"train/loss": 1.5, "train/global_step": 1.0}],
    ),
    (
        "get_model_limits",
        ("meta-llama/Llama-3-8b",),
        "GET",
        "/fine-tunes/models/limits",
        {"model_name": "meta-llama/Llama-3-8b", "max_num_epochs": 20, "lora_training": {"max_rank": 64}},
        ModelLimits,
    ),
    (
        "estimate_fine_tune_price",
        ({"training_file": "file-1", "model": "m"},),
        "POST",
        "/fine-tunes/estimate-price",
        {"estimated_total_price": 3.5, "allowed_to_proceed": True},
        PriceEstimate,
    ),
    (
        "create_fine_tune",
        ({"training_file": "file-1", "model": "m"},),
        "POST",
        "/fine-tunes",
        job(),
        FineTuneJob,
    ),
]


@pytest.mark.parametrize(
    ("name", "args", "method", "path", "body", "expected"), CALLS, ids=[c[0] for c in CALLS]
)
async def test_every_json_call(call, hook, api, name, args, method, path, body, expected) -> None:
    route = api.route(method=method, path=path).mock(return_value=httpx.Response(200, json=body))
    result = await call(hook, name, *args)
    if isinstance(expected, type):
        items = result if isinstance(result, list) else [result]
        assert items
        assert all(isinstance(item, expected) for item in items)
    else:
        assert result == expected
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {TEST_API_KEY}"
    assert request.headers["user-agent"].startswith("airflow-provider-together/")
    if args and isinstance(args[0], dict):
        assert json.loads(request.content) == args[0]
    if name == "get_model_limits":
        assert request.url.params["model_name"] == "meta-llama/Llama-3-8b"


async def test_responses_tolerate_unknown_fields_and_statuses(call, hook, api) -> None:
    api.get("/fine-tunes/ft-1").respond(json=job(status="warming_up", brand_new_field={"x": 1}))
    result = await call(hook, "get_fine_tune", "ft-1")
    assert result.status is JobStatus.UNKNOWN
    assert result.status_raw == "warming_up"


async def test_ids_are_quoted_and_empty_ids_refused_before_http(call, hook, api) -> None:
    route = api.get(url__regex=r".*/fine-tunes/ft%2F..%2Fx$").respond(json=job("ft/../x"))
    assert (await call(hook, "get_fine_tune", "ft/../x")).id == "ft/../x"
    assert route.call_count == 1
    with pytest.raises(TogetherConfigError, match="job_id"):
        await call(hook, "get_fine_tune", " ")


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("api.together.ai", "https://api.together.ai/v1/fine-tunes/ft-1"),
        ("https://api.together.ai", "https://api.together.ai/v1/fine-tunes/ft-1"),
        ("http://127.0.0.1:8123/v1/", "http://127.0.0.1:8123/v1/fine-tunes/ft-1"),
    ],
)
async def test_base_url_from_the_connection_host(call, monkeypatch, sleeps, api, host, url) -> None:
    set_conn(monkeypatch, host=host)
    route = api.get(url).respond(json=job())
    hook = TogetherHook()
    try:
        await call(hook, "get_fine_tune", "ft-1")
    finally:
        await TogetherHook.aclose_async_clients()
    assert route.called


async def test_connection_uri_form(call, monkeypatch, api) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_TOGETHER_DEFAULT", f"together://:{TEST_API_KEY}@api.together.ai/v1?max_retries=0"
    )
    route = api.get("https://api.together.ai/v1/fine-tunes").mock(return_value=httpx.Response(503))
    hook = TogetherHook()
    try:
        with pytest.raises(TogetherServerError):
            await call(hook, "list_fine_tunes")
    finally:
        await TogetherHook.aclose_async_clients()
    assert route.call_count == 1  # max_retries arrived as the string "0" and was honoured


# -- retries ----------------------------------------------------------------------------------------


async def test_idempotent_call_retries_5xx_with_backoff(call, hook, api, sleeps) -> None:
    route = api.get("/fine-tunes/ft-1").mock(
        side_effect=[httpx.Response(502), httpx.Response(503), httpx.Response(200, json=job())]
    )
    assert (await call(hook, "get_fine_tune", "ft-1")).id == "ft-1"
    assert route.call_count == 3
    assert len(sleeps) == 2
    assert 0.75 <= sleeps[0] <= 1.0
    assert 1.5 <= sleeps[1] <= 2.0


@pytest.mark.parametrize(
    ("headers", "expected"), [({"retry-after": "7"}, 7.0), ({"retry-after-ms": "1250"}, 1.25)]
)
async def test_retry_after_is_honoured(call, hook, api, sleeps, headers, expected) -> None:
    api.get("/files").mock(
        side_effect=[httpx.Response(429, headers=headers), httpx.Response(200, json={"data": []})]
    )
    assert await call(hook, "list_files") == []
    assert sleeps == [expected]


async def test_retry_after_beyond_60_s_falls_back_to_backoff(call, hook, api, sleeps) -> None:
    api.get("/files").mock(
        side_effect=[
            httpx.Response(429, headers={"retry-after": "3600"}),
            httpx.Response(200, json={"data": []}),
        ]
    )
    await call(hook, "list_files")
    assert len(sleeps) == 1
    assert sleeps[0] <= 1.0


@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("eof")]
)
async def test_idempotent_call_retries_transport_errors(call, hook, api, sleeps, error) -> None:
    route = api.get("/fine-tunes/ft-1").mock(side_effect=[error, httpx.Response(200, json=job())])
    assert (await call(hook, "get_fine_tune", "ft-1")).id == "ft-1"
    assert route.call_count == 2


async def test_retries_run_out_with_the_mapped_error_and_request_id(call, hook, api, sleeps) -> None:
    route = api.get("/fine-tunes/ft-1").mock(
        return_value=httpx.Response(503, headers={"x-request-id": "req-42"})
    )
    with pytest.raises(TogetherServerError) as info:
        await call(hook, "get_fine_tune", "ft-1")
    assert route.call_count == 3
    assert len(sleeps) == 2
    assert info.value.request_id == "req-42"
    assert info.value.status_code == 503


async def test_transport_errors_run_out_as_transport_error(call, hook, api) -> None:
    api.get("/fine-tunes").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(TogetherTransportError, match="3 attempt"):
        await call(hook, "list_fine_tunes")


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, TogetherBadRequestError),
        (401, TogetherAuthError),
        (404, TogetherNotFoundError),
        (422, TogetherBadRequestError),
    ],
)
async def test_client_errors_are_not_retried(call, hook, api, sleeps, status, cls) -> None:
    body = {"error": {"message": "n_epochs too high", "type": "invalid_request_error", "param": "n_epochs"}}
    route = api.post("/fine-tunes/estimate-price").mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(cls) as info:
        await call(hook, "estimate_fine_tune_price", {"training_file": "f"})
    assert route.call_count == 1
    assert sleeps == []
    assert info.value.param == "n_epochs"
    assert "n_epochs too high" in str(info.value)


async def test_unsupported_model_limits_404(call, hook, api) -> None:
    api.get("/fine-tunes/models/limits").respond(404, json={"message": "Model not available for fine-tuning"})
    with pytest.raises(TogetherNotFoundError, match="not available for fine-tuning"):
        await call(hook, "get_model_limits", "nope/model")


async def test_rate_limit_exhausted(call, hook, api) -> None:
    api.get("/files").mock(return_value=httpx.Response(429, headers={"retry-after": "1"}))
    with pytest.raises(TogetherRateLimitError):
        await call(hook, "list_files")


# -- create is never resent once the server may have it ---------------------------------------------


@pytest.mark.parametrize(
    "outcome",
    [
        httpx.Response(500),
        httpx.Response(503, headers={"x-should-retry": "true"}),
        httpx.ReadTimeout("slow"),
        httpx.ReadError("reset"),
    ],
    ids=["500", "503-should-retry", "read-timeout", "dropped"],
)
async def test_create_is_never_resent_after_it_may_have_arrived(call, hook, api, sleeps, outcome) -> None:
    route = api.post("/fine-tunes").mock(side_effect=[outcome, httpx.Response(200, json=job())])
    with pytest.raises(TogetherAmbiguousSubmitError, match="may or may not have been created"):
        await call(hook, "create_fine_tune", {"model": "m", "training_file": "file-1"})
    assert route.call_count == 1
    assert sleeps == []


@pytest.mark.parametrize(
    "outcome",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.Response(429, headers={"retry-after": "2"}),
    ],
)
async def test_create_is_resent_when_the_server_cannot_have_acted(call, hook, api, outcome) -> None:
    route = api.post("/fine-tunes").mock(side_effect=[outcome, httpx.Response(200, json=job("ft-new"))])
    assert (await call(hook, "create_fine_tune", {"model": "m"})).id == "ft-new"
    assert route.call_count == 2


# -- secrets ----------------------------------------------------------------------------------------


async def test_api_key_never_in_errors_or_logs(call, hook, api, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    echo = {"error": {"message": f"invalid key Bearer {TEST_API_KEY}"}}
    api.get("/fine-tunes/ft-1").mock(
        side_effect=[httpx.Response(503, json=echo), httpx.Response(401, json=echo)]
    )
    with pytest.raises(TogetherAuthError) as info:
        await call(hook, "get_fine_tune", "ft-1")
    assert caplog.records, "the retry should have been logged"
    for text in (
        str(info.value),
        repr(info.value),
        repr(info.value.body),
        caplog.text,
        repr(await hook.asettings()),
    ):
        assert TEST_API_KEY not in text


async def test_test_connection_reports_success_and_failure_without_raising(hook, api) -> None:
    api.get("/fine-tunes").mock(
        side_effect=[
            httpx.Response(200, json={"data": [job()]}),
            httpx.Response(401, json={"error": {"message": f"bad {TEST_API_KEY}"}}),
        ]
    )
    ok, message = hook.test_connection()
    assert ok
    assert "1 fine-tuning job" in message
    ok, message = hook.test_connection()
    assert not ok
    assert "401" in message
    assert TEST_API_KEY not in message
    api.get("/fine-tunes").mock(return_value=httpx.Response(200, json={"data": []}))
    assert (await hook.atest_connection())[0]
    assert [c.request.method for c in api.calls] == ["GET", "GET", "GET"]  # read-only


async def test_test_connection_with_a_missing_connection(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_TOGETHER_DEFAULT", raising=False)
    ok, message = TogetherHook("no_such_conn").test_connection()
    assert not ok
    assert "no_such_conn" in message


async def test_bad_connection_extras_fail_before_any_http(call, monkeypatch, api) -> None:
    set_conn(monkeypatch, request_timeout="soon")
    with pytest.raises(TogetherConfigError, match="extra.request_timeout"):
        await call(TogetherHook(), "list_files")
    assert not api.calls
