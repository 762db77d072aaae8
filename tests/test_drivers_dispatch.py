"""
How the drivers send: ``client.send`` on every client, and the aiohttp client's short path.

The sync client and the async client on ``async_transport: httpx`` are plain httpx clients. The default async
client (:class:`~airflow_provider_together._transport.aio.AiohttpClient`) overrides ``send`` to hand each
request straight to aiohttp, skipping httpx's cookie and redirect layers; these tests pin what that keeps
(the response's request, GET redirects when asked) and what it skips on purpose (the cookie jar, resending
anything but a GET).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from airflow_provider_together._transport import http as http_module
from airflow_provider_together._transport.aio import AiohttpClient, AiohttpTransport
from airflow_provider_together._transport.client import ssl_context
from airflow_provider_together._transport.http import Spec, build_request
from airflow_provider_together._transport.settings import TogetherSettings
from tests._raw_server import Recorded, Server, replying, response

pytestmark = pytest.mark.timeout(60)


def redirecting(request: Recorded) -> bytes:
    """``/start`` redirects to ``/final``; ``POST /fine-tunes`` answers 303 to the job."""
    if request.target == "/start":
        return response(302, b"", reason="Found", headers=[("Location", "/final")])
    if request.target == "/fine-tunes":
        return response(303, b"", reason="See Other", headers=[("Location", "/fine-tunes/ft-1")])
    return response(200, b"final", headers=[("Set-Cookie", "session=abc; Path=/")])


@pytest.fixture(params=["aiohttp", "httpx"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    """The two async clients the hook can build, over a real loopback connection."""
    made: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        if request.param == "aiohttp":
            made.append(AiohttpClient(AiohttpTransport(ssl_context=ssl_context(), max_connections=2)))
        else:
            made.append(httpx.AsyncClient())
        return made[-1]

    yield make
    for each in made:
        await each.aclose()


@pytest.mark.anyio
async def test_response_comes_back_with_its_request_and_body(client: Any) -> None:
    """Error mapping and logging read ``response.request``; ``stream=False`` reads the body."""
    async with Server(replying(response(200, b'{"id": "ft-1"}'))) as server:
        request = httpx.Request("GET", f"{server.url}/fine-tunes/ft-1")
        answer = await client().send(request)
    assert answer.request is request
    assert (answer.status_code, answer.json(), answer.reason_phrase) == (200, {"id": "ft-1"}, "OK")


@pytest.mark.anyio
async def test_get_redirect_is_followed_when_asked(client: Any) -> None:
    """Downloads follow a redirect to storage: the final 200 is what the caller gets."""
    async with Server(replying(redirecting)) as server:
        answer = await client().send(httpx.Request("GET", f"{server.url}/start"), follow_redirects=True)
    assert (answer.status_code, answer.text, answer.url.path) == (200, "final", "/final")
    assert [r.target for r in server.requests][-1] == "/final"


@pytest.mark.anyio
async def test_redirect_is_returned_when_not_followed(client: Any) -> None:
    """The upload-URL request reads its 302's Location itself: following it would upload nowhere."""
    async with Server(replying(redirecting)) as server:
        answer = await client().send(httpx.Request("GET", f"{server.url}/start"), follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (302, "/final")
    assert [r.target for r in server.requests] == ["/start"]


@pytest.mark.anyio
async def test_a_redirected_post_is_never_sent_twice(client: Any) -> None:
    """httpx turns a 303 into a GET of the job; the aiohttp client returns the 303 (it would have to resend)."""
    async with Server(replying(redirecting)) as server:
        make = client
        c = make()
        answer = await c.send(
            httpx.Request("POST", f"{server.url}/fine-tunes", json={"model": "m"}), follow_redirects=True
        )
    posts = [r for r in server.requests if r.method == "POST"]
    assert len(posts) == 1
    if isinstance(c, AiohttpClient):
        assert answer.status_code == 303
    else:
        assert (answer.status_code, [r.target for r in server.requests]) == (
            200,
            ["/fine-tunes", "/fine-tunes/ft-1"],
        )


@pytest.mark.anyio
async def test_aiohttp_client_keeps_no_cookies() -> None:
    """Deliberate: the API is stateless (bearer key), and the cookie layer cost a fifth of a poll's CPU."""
    client = AiohttpClient(AiohttpTransport(ssl_context=ssl_context(), max_connections=2))
    try:
        async with Server(replying(redirecting)) as server:
            await client.send(httpx.Request("GET", f"{server.url}/final"))
            await client.get(f"{server.url}/final")
    finally:
        await client.aclose()
    assert dict(client.cookies) == {}
    assert all(r.header("cookie") is None for r in server.requests)


# -- build_request ----------------------------------------------------------------------------------

SETTINGS = TogetherSettings(
    base_url="https://api.test/v1", api_key="tk-key-0123456789", timeout=42.0, connect_timeout=3.0
)


def test_request_carries_the_settings_timeout_per_request() -> None:
    """The client has no timeout of its own: without this extension httpx would wait forever."""
    request = build_request(Spec("GET", "/fine-tunes/ft-1"), SETTINGS)
    timeout = request.extensions["timeout"]
    assert timeout == SETTINGS.httpx_timeout().as_dict()
    assert timeout == {"connect": 3.0, "read": 42.0, "write": 42.0, "pool": 42.0}
    upload = build_request(Spec("PUT", "/x", read_timeout=600.0), SETTINGS)
    assert upload.extensions["timeout"] == {"connect": 3.0, "read": 600.0, "write": 42.0, "pool": 42.0}


def test_request_has_the_headers_a_client_would_add() -> None:
    """Built without ``Client.build_request``, the request must still say who it is and what it accepts."""
    headers = build_request(Spec("GET", "/models"), SETTINGS).headers
    assert headers["User-Agent"] == http_module.USER_AGENT
    assert headers["User-Agent"].startswith("airflow-provider-together/")
    assert headers["Accept"] == "application/json"
    assert headers["Accept-Encoding"] == "gzip, deflate"
    assert headers["Host"] == "api.test"


def test_same_path_is_parsed_once_and_query_params_get_their_own_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """A triggerer polls the same URLs every interval: parse each once, but never share a query string."""
    parses: list[str] = []

    class CountingURL(httpx.URL):
        def __init__(self, url: Any = "", **kwargs: Any) -> None:
            parses.append(str(url))
            super().__init__(url, **kwargs)

    monkeypatch.setattr(httpx, "URL", CountingURL)
    settings = TogetherSettings(base_url="https://url-cache-probe.test/v1", api_key="tk-key-0123456789")
    first = build_request(Spec("GET", "/fine-tunes/ft-cache-probe"), settings)
    second = build_request(Spec("GET", "/fine-tunes/ft-cache-probe"), settings)
    assert parses == ["https://url-cache-probe.test/v1/fine-tunes/ft-cache-probe"]
    assert http_module._parsed_url(parses[0]) is http_module._parsed_url(parses[0])
    assert first.url == second.url == "https://url-cache-probe.test/v1/fine-tunes/ft-cache-probe"

    with_params = build_request(
        Spec("GET", "/fine-tunes/ft-cache-probe", params={"limit": 5, "q": "a b"}), settings
    )
    assert str(with_params.url) == "https://url-cache-probe.test/v1/fine-tunes/ft-cache-probe?limit=5&q=a+b"
    assert str(build_request(Spec("GET", "/fine-tunes/ft-cache-probe"), settings).url) == parses[0]
