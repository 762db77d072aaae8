"""
Sending through httpx's routing point (``_dispatch``/``_adispatch``) and building requests directly.

Both skip layers of ``httpx.Client`` that cost CPU on every trigger poll; these tests pin what is kept
(the response's request, redirects when asked) and what is skipped on purpose (the cookie jar).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from airflow_provider_together._transport import http as http_module
from airflow_provider_together._transport.drivers import _adispatch, _dispatch
from airflow_provider_together._transport.http import Spec, build_request
from airflow_provider_together._transport.settings import TogetherSettings

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Driver:
    """One client of either kind over ``httpx.MockTransport``, and the matching dispatch function."""

    def __init__(self, kind: str, handler: Handler) -> None:
        self.kind = kind
        transport = httpx.MockTransport(handler)
        self.client: Any = (
            httpx.Client(transport=transport) if kind == "sync" else httpx.AsyncClient(transport=transport)
        )

    async def dispatch(
        self, request: httpx.Request, follow_redirects: bool, client: Any = None
    ) -> httpx.Response:
        client = self.client if client is None else client
        if self.kind == "sync":
            response = _dispatch(client, request, follow_redirects)
            response.read()
            response.close()
        else:
            response = await _adispatch(client, request, follow_redirects)
            await response.aread()
            await response.aclose()
        return response

    async def send(self, request: httpx.Request) -> httpx.Response:
        if self.kind == "sync":
            return self.client.send(request)  # type: ignore[no-any-return]
        return await self.client.send(request)  # type: ignore[no-any-return]

    async def close(self) -> None:
        if self.kind == "sync":
            self.client.close()
        else:
            await self.client.aclose()


class WithoutRoutingPoint:
    """
    A client as an httpx without ``_transport_for_url`` would look to the dispatcher: ``send`` only.

    Deleting the attribute from ``httpx.Client`` cannot simulate it: httpx's own ``send`` calls it.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.sends: list[dict[str, Any]] = []

    def send(self, request: httpx.Request, **kwargs: Any) -> Any:
        self.sends.append(kwargs)
        return self.client.send(request, **kwargs)


def refuse_client_send(monkeypatch: pytest.MonkeyPatch, client: Any) -> None:
    def send(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("client.send was used instead of the client's transport")

    monkeypatch.setattr(client, "send", send)


@pytest.mark.anyio
async def test_response_comes_back_with_its_request(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A transport's response has no request; error mapping and logging read ``response.request``."""
    driver = Driver(kind, lambda request: httpx.Response(200, json={"id": "ft-1"}))
    refuse_client_send(monkeypatch, driver.client)
    request = httpx.Request("GET", "https://api.test/v1/fine-tunes/ft-1")
    try:
        response = await driver.dispatch(request, follow_redirects=True)
    finally:
        await driver.close()
    assert response.request is request
    assert (response.status_code, response.json()) == (200, {"id": "ft-1"})


def redirecting(seen: list[str]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/start":
            return httpx.Response(302, headers={"Location": "/final"})
        return httpx.Response(200, text="final")

    return handler


@pytest.mark.anyio
async def test_redirect_is_followed_when_asked(kind: str) -> None:
    """Downloads follow redirects to storage: the final 200 is what the caller gets."""
    seen: list[str] = []
    driver = Driver(kind, redirecting(seen))
    try:
        response = await driver.dispatch(
            httpx.Request("GET", "https://api.test/start"), follow_redirects=True
        )
    finally:
        await driver.close()
    assert (response.status_code, response.text, str(response.url)) == (
        200,
        "final",
        "https://api.test/final",
    )
    assert seen[-1] == "GET /final"
    assert [r.status_code for r in response.history] == [302]


@pytest.mark.anyio
async def test_redirect_is_returned_when_not_followed(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The upload-URL request reads its 302's Location itself: following it would upload nowhere."""
    seen: list[str] = []
    driver = Driver(kind, redirecting(seen))
    refuse_client_send(monkeypatch, driver.client)
    try:
        response = await driver.dispatch(
            httpx.Request("GET", "https://api.test/start"), follow_redirects=False
        )
    finally:
        await driver.close()
    assert (response.status_code, response.headers["location"], seen) == (302, "/final", ["GET /start"])


@pytest.mark.anyio
async def test_redirected_request_reaches_the_server_once(kind: str) -> None:
    """Following a redirect must not resend the request that was redirected."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/fine-tunes":
            return httpx.Response(303, headers={"Location": "/fine-tunes/ft-1"})
        return httpx.Response(200, json={"id": "ft-1"})

    driver = Driver(kind, handler)
    try:
        response = await driver.dispatch(
            httpx.Request("POST", "https://api.test/fine-tunes", json={"model": "m"}), follow_redirects=True
        )
    finally:
        await driver.close()
    assert response.status_code == 200
    assert seen == ["POST /fine-tunes", "GET /fine-tunes/ft-1"]


@pytest.mark.anyio
async def test_set_cookie_does_not_reach_the_cookie_jar(kind: str) -> None:
    """
    Deliberate: the cookie layer is skipped, since extracting cookies cost a fifth of a poll's CPU.

    The API is stateless (bearer key); the control below shows the same answer through ``client.send`` does
    fill the jar, so an empty jar here means the layer was skipped, not that the cookie was unusable.
    """
    handler: Handler = lambda request: httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"})  # noqa: E731
    driver = Driver(kind, handler)
    try:
        await driver.dispatch(httpx.Request("GET", "https://api.test/v1/models"), follow_redirects=True)
        assert dict(driver.client.cookies) == {}
        await driver.send(httpx.Request("GET", "https://api.test/v1/models"))
        assert dict(driver.client.cookies) == {"session": "abc"}
    finally:
        await driver.close()


@pytest.mark.anyio
@pytest.mark.parametrize("follow_redirects", [True, False])
async def test_without_routing_point_falls_back_to_client_send(kind: str, follow_redirects: bool) -> None:
    """An httpx without ``_transport_for_url`` must still work, through the plain (slower) ``send``."""
    seen: list[str] = []
    driver = Driver(kind, redirecting(seen))
    fallback = WithoutRoutingPoint(driver.client)
    request = httpx.Request("GET", "https://api.test/start")
    try:
        response = await driver.dispatch(request, follow_redirects, client=fallback)
    finally:
        await driver.close()
    assert fallback.sends == [{"follow_redirects": follow_redirects, "stream": True}]
    assert response.status_code == (200 if follow_redirects else 302)
    assert seen == (["GET /start", "GET /final"] if follow_redirects else ["GET /start"])


@pytest.mark.parametrize(
    ("client_class", "transport_class"),
    [(httpx.Client, httpx.BaseTransport), (httpx.AsyncClient, httpx.AsyncBaseTransport)],
)
def test_installed_httpx_still_has_the_routing_point(client_class: Any, transport_class: Any) -> None:
    """An httpx upgrade that drops ``_transport_for_url`` would silently put every poll on the slow path."""
    route = getattr(client_class, "_transport_for_url", None)
    assert callable(route)
    assert list(inspect.signature(route).parameters) == ["self", "url"]
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    client = client_class(transport=transport)
    try:
        chosen = client._transport_for_url(httpx.URL("https://api.test/v1/models"))
    finally:
        if client_class is httpx.Client:
            client.close()
    assert chosen is transport
    assert isinstance(chosen, transport_class)


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
