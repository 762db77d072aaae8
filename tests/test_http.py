"""The pure core: settings, request building, error mapping, the retry decision and the request flow.

No HTTP mocking here: the core does no I/O, so responses are built by hand and flows are driven by hand.
"""

from __future__ import annotations

import email.utils

import httpx
import pytest

from airflow_provider_together._transport.flow import Context, Send, Sleep, request
from airflow_provider_together._transport.http import (
    FileRegion,
    Retry,
    Spec,
    build_request,
    error_for_response,
    raise_for_response,
    redact,
)
from airflow_provider_together._transport.retry import RetryPolicy
from airflow_provider_together._transport.settings import (
    DEFAULT_BASE_URL,
    TogetherSettings,
    cleartext_safe,
    normalize_base_url,
    settings_from_connection,
)
from airflow_provider_together.exceptions import (
    TogetherAmbiguousSubmitError,
    TogetherAPIError,
    TogetherAuthError,
    TogetherBadRequestError,
    TogetherConfigError,
    TogetherNotFoundError,
    TogetherRateLimitError,
    TogetherServerError,
    TogetherTransportError,
)
from tests.conftest import TEST_API_KEY

GET = Spec("GET", "/fine-tunes/ft-1")
CREATE = Spec("POST", "/fine-tunes", json={"model": "m"}, retry=Retry.SUBMIT)


def settings(**extra: object) -> TogetherSettings:
    return settings_from_connection(host=None, password=TEST_API_KEY, schema=None, port=None, extra=extra)


def response(
    status: int, body: object = None, headers: dict[str, str] | None = None, text: str = ""
) -> httpx.Response:
    request = httpx.Request("GET", "https://api.together.ai/v1/x")
    if body is not None:
        return httpx.Response(status, json=body, headers=headers, request=request)
    return httpx.Response(status, text=text, headers=headers, request=request)


# -- settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        (None, None, None, DEFAULT_BASE_URL),
        ("", None, None, DEFAULT_BASE_URL),
        ("api.together.ai", None, None, "https://api.together.ai/v1"),
        ("api.together.ai/v1", None, None, "https://api.together.ai/v1"),
        ("https://api.together.ai", None, None, "https://api.together.ai/v1"),
        ("https://api.together.ai/v1/", None, None, "https://api.together.ai/v1"),
        ("api.together.ai", "v1", None, "https://api.together.ai/v1"),  # URI form: together://:key@host/v1
        ("127.0.0.1", "v1", 8080, "http://127.0.0.1:8080/v1"),
        ("localhost:9000", None, None, "http://localhost:9000/v1"),
        ("http://127.0.0.1:5000/v1", None, None, "http://127.0.0.1:5000/v1"),
        ("https://proxy.example.com/together", None, None, "https://proxy.example.com/together/v1"),
    ],
)
def test_base_url_normalisation(
    host: str | None, schema: str | None, port: int | None, expected: str
) -> None:
    assert normalize_base_url(host, schema=schema, port=port) == expected


def test_settings_read_extras_and_coerce_uri_strings() -> None:
    s = settings(request_timeout="30", max_retries="4", retry_delay=0.5, max_concurrent_requests=8)
    assert (s.timeout, s.max_retries, s.retry_delay, s.max_in_flight) == (30.0, 4, 0.5, 8)
    assert s.connect_timeout == 5.0
    assert settings(request_timeout=2).connect_timeout == 2.0  # never longer than the whole timeout


def test_settings_report_every_bad_field_at_once() -> None:
    with pytest.raises(TogetherConfigError) as info:
        settings_from_connection(
            host="ftp://x",
            password="",
            schema=None,
            port=None,
            extra={"max_retries": "two", "request_timeout": 0},
        )
    fields = [field for field, _ in info.value.problems]
    assert fields == ["extra.request_timeout", "extra.max_retries", "password", "host"]
    assert "must be an integer" in str(info.value)


def test_settings_repr_hides_the_key() -> None:
    assert TEST_API_KEY not in repr(settings())


@pytest.mark.parametrize(
    "host",
    [
        "http://127.0.0.1:1/v1",
        "http://127.5.6.7:8080",
        "http://localhost:9",
        "http://[::1]:8080/v1",
        "127.0.0.1",
    ],
)
def test_plain_http_is_accepted_for_loopback_hosts(host: str) -> None:
    s = settings_from_connection(host=host, password="k" * 8, schema=None, port=None, extra={})
    assert s.base_url.startswith("http://")


@pytest.mark.parametrize(
    "host",
    ["http://api.together.ai/v1", "http://10.0.0.5:8080", "http://[fe80::1]/v1", "http://localhost.evil.com"],
)
def test_plain_http_to_a_remote_host_is_refused_before_any_socket(host: str) -> None:
    with pytest.raises(TogetherConfigError) as info:
        settings_from_connection(host=host, password="k" * 8, schema=None, port=None, extra={})
    assert [field for field, _ in info.value.problems] == ["host"]
    assert "https" in str(info.value)
    assert "clear text" in str(info.value)


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://uploads.example.com/k?sig=1", True),
        ("http://127.0.0.1:9/_upload/1", True),
        ("http://localhost/_upload/1", True),
        ("http://uploads.example.com/k", False),
        ("ftp://127.0.0.1/k", False),
        ("", False),
    ],
)
def test_one_cleartext_rule_for_keys_and_upload_urls(url: str, safe: bool) -> None:
    assert cleartext_safe(url) is safe


# -- request building -------------------------------------------------------------------------------


def test_build_request_api_call_carries_auth_and_user_agent() -> None:
    req = build_request(Spec("GET", "/files", params={"a": 1}), settings())
    assert str(req.url) == "https://api.together.ai/v1/files?a=1"
    assert req.headers["authorization"] == f"Bearer {TEST_API_KEY}"
    assert req.headers["user-agent"].startswith("airflow-provider-together/0.1.0 httpx/")


def test_build_request_presigned_put_has_no_key_and_a_content_length(tmp_path) -> None:
    region = FileRegion(tmp_path / "f", 0, 11)
    spec = Spec("PUT", "https://s3.example.com/up?sig=abc", body=region, external=True)
    req = build_request(spec, settings(), iter([b"hello world"]))
    assert "authorization" not in req.headers
    assert req.headers["content-length"] == "11"
    assert "transfer-encoding" not in req.headers
    assert spec.describe() == "PUT https://s3.example.com/up"  # the signature never reaches a message


def test_build_request_text_only_multipart_form() -> None:
    spec = Spec("POST", "/files", form={"purpose": "fine-tune", "file_name": "a.jsonl"})
    req = build_request(spec, settings())
    body = req.read().decode()
    assert req.headers["content-type"].startswith("multipart/form-data")
    assert 'name="purpose"\r\n\r\nfine-tune' in body
    assert "filename=" not in body


# -- error mapping ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, TogetherBadRequestError),
        (401, TogetherAuthError),
        (402, TogetherBadRequestError),
        (403, TogetherAuthError),
        (404, TogetherNotFoundError),
        (409, TogetherBadRequestError),
        (422, TogetherBadRequestError),
        (429, TogetherRateLimitError),
        (500, TogetherServerError),
        (503, TogetherServerError),
        (418, TogetherAPIError),
    ],
)
def test_error_mapping_table(status: int, cls: type[TogetherAPIError]) -> None:
    body = {"error": {"message": "nope", "type": "invalid_request_error", "param": "n_epochs", "code": "bad"}}
    exc = error_for_response(response(status, body, {"x-request-id": "req-1"}), context="GET /x")
    assert type(exc) is cls
    assert (exc.status_code, exc.api_message, exc.param, exc.code, exc.request_id) == (
        status,
        "GET /x: nope",
        "n_epochs",
        "bad",
        "req-1",
    )
    assert "param: n_epochs" in str(exc)
    assert "request id: req-1" in str(exc)


def test_error_mapping_other_body_shapes() -> None:
    limits_404 = error_for_response(response(404, {"message": "model not supported"}, {"cf-ray": "ray-9"}))
    assert limits_404.api_message == "model not supported"
    assert limits_404.request_id == "ray-9"
    html = error_for_response(response(502, text="<html>" + "x" * 5000))
    assert isinstance(html, TogetherServerError)
    assert len(html.api_message) <= 500
    empty = error_for_response(response(503))
    assert empty.api_message == "Service Unavailable"
    raise_for_response(response(200, {}))  # success does not raise
    with pytest.raises(TogetherNotFoundError):
        raise_for_response(response(404, {}))


def test_error_never_carries_the_key_even_when_the_body_echoes_it() -> None:
    body = {"error": {"message": f"bad header Bearer {TEST_API_KEY}"}, "echo": TEST_API_KEY}
    exc = error_for_response(response(401, body), secret=TEST_API_KEY)
    assert TEST_API_KEY not in str(exc)
    assert TEST_API_KEY not in repr(exc.body)
    assert redact(f"x{TEST_API_KEY}y", TEST_API_KEY) == "x***y"


# -- retry decision ---------------------------------------------------------------------------------

POLICY = RetryPolicy(max_retries=3, delay=1.0, max_delay=10.0, jitter=lambda: 0.0, now=lambda: 1_000_000.0)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": email.utils.formatdate(1_000_012.0, usegmt=True)}, 12.0),
        ({"retry-after": "61"}, None),  # beyond 60 s: ignored, fall back to back-off
        ({"retry-after": "-1"}, None),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], expected: float | None) -> None:
    assert POLICY.retry_after(httpx.Headers(headers)) == expected


def test_backoff_is_exponential_capped_and_jittered_down() -> None:
    assert [POLICY.backoff(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    jittered = RetryPolicy(delay=2.0, jitter=lambda: 0.999)
    assert 1.5 <= jittered.backoff(0) < 2.0


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_idempotent_calls_retry_transient_statuses(status: int) -> None:
    assert POLICY.after_response(GET, response(status, {}), 0, secret="") == 1.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_idempotent_calls_do_not_retry_client_errors(status: int) -> None:
    with pytest.raises(TogetherAPIError):
        POLICY.after_response(GET, response(status, {}), 0, secret="")


def test_server_can_override_with_x_should_retry() -> None:
    with pytest.raises(TogetherServerError):
        POLICY.after_response(GET, response(503, {}, {"x-should-retry": "false"}), 0, secret="")
    assert POLICY.after_response(GET, response(409, {}, {"x-should-retry": "true"}), 0, secret="") == 1.0


def test_retries_stop_after_max_retries_with_the_mapped_error() -> None:
    assert POLICY.after_response(GET, response(503, {}), 2, secret="") == 4.0
    with pytest.raises(TogetherServerError):
        POLICY.after_response(GET, response(503, {}), 3, secret="")


def test_retry_after_header_wins_over_backoff() -> None:
    assert POLICY.after_response(GET, response(429, {}, {"retry-after": "3"}), 2, secret="") == 3.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_create_is_never_resent_after_a_5xx(status: int) -> None:
    headers = {"x-should-retry": "true", "x-request-id": "req-7"}
    with pytest.raises(TogetherAmbiguousSubmitError) as info:
        POLICY.after_response(CREATE, response(status, {}, headers), 0, secret="")
    assert info.value.status_code == status
    assert info.value.request_id == "req-7"
    assert "may or may not have been created" in str(info.value)


def test_create_is_resent_after_429_and_not_after_408() -> None:
    assert POLICY.after_response(CREATE, response(429, {}, {"retry-after": "2"}), 0, secret="") == 2.0
    with pytest.raises(TogetherAPIError):
        POLICY.after_response(CREATE, response(408, {}), 0, secret="")


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("busy")],
)
def test_errors_before_sending_are_retried_for_every_call(exc: httpx.TransportError) -> None:
    assert POLICY.after_error(CREATE, exc, 0) == 1.0
    assert POLICY.after_error(GET, exc, 0) == 1.0


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("slow"),
        httpx.ReadError("reset"),
        httpx.RemoteProtocolError("closed"),
        httpx.WriteError("x"),
    ],
)
def test_errors_after_sending_are_ambiguous_for_create_but_retried_for_reads(
    exc: httpx.TransportError,
) -> None:
    assert POLICY.after_error(GET, exc, 0) == 1.0
    with pytest.raises(TogetherAmbiguousSubmitError) as info:
        POLICY.after_error(CREATE, exc, 0)
    assert info.value.status_code is None
    assert info.value.__cause__ is exc


def test_transport_errors_end_as_transport_error() -> None:
    with pytest.raises(TogetherTransportError, match="after 4 attempt"):
        POLICY.after_error(GET, httpx.ConnectError("refused"), 3)
    with pytest.raises(TogetherTransportError):  # not transient: a bad URL will not fix itself
        POLICY.after_error(GET, httpx.UnsupportedProtocol("ftp"), 0)


# -- the request flow, driven by hand ---------------------------------------------------------------


def test_request_flow_retries_then_returns_the_response() -> None:
    ctx = Context(settings(), POLICY)
    flow = request(ctx, GET)
    assert flow.send(None) == Send(GET)
    assert flow.send(response(503, {}, {"retry-after": "2"})) == Sleep(2.0)
    assert flow.send(None) == Send(GET)
    assert flow.throw(httpx.ReadTimeout("slow")) == Sleep(2.0)
    assert flow.send(None) == Send(GET)
    ok = response(200, {"id": "ft-1"})
    with pytest.raises(StopIteration) as done:
        flow.send(ok)
    assert done.value.value is ok


def test_request_flow_accepts_listed_non_2xx_answers() -> None:
    spec = Spec("POST", "/files", ok=frozenset({302}))
    flow = request(Context(settings(), POLICY), spec)
    flow.send(None)
    with pytest.raises(StopIteration):
        flow.send(response(302, headers={"location": "https://x"}))
