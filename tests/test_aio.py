"""
The async client's stack on the wire: aiohttp behind httpx (``_transport.aio``), and httpx's own transport.

The server (``tests/_raw_server.py``) speaks raw bytes on 127.0.0.1, so each test scripts exactly what a real
or broken server does: refuse, drop, reset, stall, present a self-signed certificate, sit behind a proxy.
What matters most is the line between "never sent" (safe to resend, even a job creation) and "may have been
sent" (a job creation raises ``TogetherAmbiguousSubmitError``): it is decided from aiohttp's own exception.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
import pytest

from airflow_provider_together._transport import client as _client
from airflow_provider_together._transport.aio import AiohttpClient, AiohttpTransport, map_error
from airflow_provider_together._transport.client import ssl_context
from airflow_provider_together._transport.retry import NEVER_SENT, TRANSIENT
from airflow_provider_together._transport.settings import settings_from_connection
from airflow_provider_together.exceptions import (
    TogetherAmbiguousSubmitError,
    TogetherConfigError,
    TogetherTransportError,
)
from airflow_provider_together.hooks import TogetherHook
from tests._hook_support import Sleeps, job, set_conn
from tests._raw_server import Peer, Server, replying, response, self_signed, tunnel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests._raw_server import Recorded, SelfSigned

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

TRANSPORTS = ["aiohttp", "httpx"]
JOB = json.dumps(job("ft-1")).encode()
CREATE = {"model": "m", "training_file": "file-1"}
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    return self_signed(tmp_path_factory.mktemp("tls"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def within(awaitable: Any, seconds: float = 10.0) -> Any:
    """Await with a bound, so a transport that hangs fails the test instead of stalling the suite."""
    return await asyncio.wait_for(awaitable, seconds)


def aiohttp_client(
    *, max_connections: int = 4, ssl: Any = None, read: float = 5.0, trust_env: bool = True
) -> AiohttpClient:
    transport = AiohttpTransport(
        ssl_context=ssl or ssl_context(), max_connections=max_connections, trust_env=trust_env
    )
    return AiohttpClient(transport, timeout=httpx.Timeout(5.0, read=read))


@pytest.fixture
async def hook(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TogetherHook]:
    yield TogetherHook(asleep=Sleeps().asleep)
    await TogetherHook.aclose_async_clients()


def answer_job(request: Recorded) -> bytes:
    return response(200, JOB, headers=[("Content-Type", "application/json")])


# -- the transport on its own ---------------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection_and_caps_the_pool() -> None:
    async with Server(replying(answer_job)) as server:
        async with aiohttp_client(max_connections=2) as client:
            for _ in range(3):
                assert (await within(client.get(f"{server.url}/v1/fine-tunes/ft-1"))).json()["id"] == "ft-1"
            assert server.connections == 1
            answers = await within(
                asyncio.gather(*(client.get(f"{server.url}/v1/fine-tunes/ft-1") for _ in range(20)))
            )
    assert [a.status_code for a in answers] == [200] * 20
    assert server.connections <= 2


async def test_requests_go_out_exactly_as_httpx_built_them() -> None:
    """No header of aiohttp's own (User-Agent, Content-Type, Accept), original casing, bodies framed."""

    async def parts() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"def"

    async with Server(replying(response(200, b"{}"))) as server, aiohttp_client() as client:
        await within(client.post(f"{server.url}/json", json={"a": 1}, headers={"X-Custom-Case": "v"}))
        await within(client.put(f"{server.url}/sized", content=parts(), headers={"Content-Length": "6"}))
        await within(client.put(f"{server.url}/chunked", content=parts()))
    posted, sized, chunked = server.requests
    assert posted.body == b'{"a":1}'
    assert posted.header("content-type") == "application/json"
    assert posted.header("user-agent").startswith("python-httpx/")
    assert (b"X-Custom-Case", b"v") in posted.headers
    assert (sized.body, sized.header("content-length"), sized.header("transfer-encoding")) == (
        b"abcdef",
        "6",
        None,
    )
    assert (chunked.body, chunked.header("transfer-encoding")) == (b"abcdef", "chunked")
    assert all(r.header("content-type") is None for r in (sized, chunked))


async def test_response_body_streams_in_pieces_and_is_decoded_by_httpx() -> None:
    """A body is handed over as it arrives (so a later cap can stop early), and httpx decodes gzip."""
    big = b"x" * (1 << 20)
    packed = gzip.compress(big)

    async def handle(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            if request.target == "/gzip":
                await peer.send(response(200, packed, headers=[("Content-Encoding", "gzip")]))
                continue
            await peer.send(response(200, b"", length=False, headers=[("Content-Length", str(len(big)))]))
            for start in range(0, len(big), 1 << 16):
                await peer.send(big[start : start + (1 << 16)])
                await asyncio.sleep(0)

    async with Server(handle) as server, aiohttp_client() as client:
        async with client.stream("GET", f"{server.url}/big") as streamed:
            pieces = [piece async for piece in streamed.aiter_raw()]
        decoded = await within(client.get(f"{server.url}/gzip"))
    assert len(pieces) > 1
    assert b"".join(pieces) == big
    assert decoded.content == big


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (
            aiohttp.ClientConnectorError(
                aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None),
                OSError(111, "refused"),
            ),
            httpx.ConnectError,
        ),
        (aiohttp.ConnectionTimeoutError("connect"), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("cut"), httpx.RemoteProtocolError),
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
        (aiohttp.ClientConnectionResetError("closing transport"), httpx.ReadError),
    ],
)
def test_only_a_failure_to_connect_means_never_sent(exc: BaseException, kind: type[Exception]) -> None:
    """``httpx-aiohttp`` maps the last four to ``ConnectTimeout`` ("never sent"): a double submit."""
    mapped = map_error(exc, httpx.Request("POST", "https://api.test/v1/fine-tunes"))
    assert type(mapped) is kind
    assert isinstance(mapped, NEVER_SENT) == (kind in (httpx.ConnectError, httpx.ConnectTimeout))
    assert isinstance(mapped, TRANSIENT)


async def test_wire_failures_map_to_what_they_say_about_the_request() -> None:
    port = free_port()
    async with aiohttp_client(read=0.3) as client:
        with pytest.raises(httpx.ConnectError):
            await within(client.get(f"http://127.0.0.1:{port}/"))

        async def drop(peer: Peer) -> None:
            await peer.read_request()
            await peer.close()

        async with Server(drop) as server:
            with pytest.raises(httpx.RemoteProtocolError):
                await within(client.post(f"{server.url}/", json={}))

        async def silent(peer: Peer) -> None:
            await peer.read_request()
            await asyncio.sleep(5)

        async with Server(silent) as server:
            with pytest.raises(httpx.ReadTimeout):
                await within(client.post(f"{server.url}/", json={}))

        async def reset_mid_body(peer: Peer) -> None:
            await peer.read_request()
            await peer.send(
                response(200, b"", length=False, headers=[("Content-Length", "100")]) + b"partial"
            )
            await peer.reset()

        async with Server(reset_mid_body) as server:
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)) as info:
                await within(client.get(f"{server.url}/"))
            assert not isinstance(info.value, NEVER_SENT)

        async with Server(replying(b"HTTP/1.1 two hundred OK\r\n\r\n")) as server:
            with pytest.raises(httpx.RemoteProtocolError):
                await within(client.post(f"{server.url}/", json={}))


async def test_dns_failure_is_never_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    async with aiohttp_client() as client:
        with pytest.raises(httpx.ConnectError):
            await within(client.get("http://api.together.invalid/v1/models"))


async def test_untrusted_certificate_is_never_sent_and_a_trusted_one_works(cert: SelfSigned) -> None:
    async with Server(replying(answer_job), ssl_context=cert.server_context()) as server:
        async with aiohttp_client() as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await within(client.get(f"{server.url}/"))
        async with aiohttp_client(ssl=cert.client_context()) as client:
            assert (await within(client.get(f"{server.url}/"))).json()["id"] == "ft-1"
    assert len(server.requests) == 1


# -- through the hook, on both async transports ---------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_create_is_resent_after_connection_refused(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused: the request never left, so a job creation is resent (here once the server is up)."""
    port = free_port()
    server = Server(replying(answer_job), listen_port=port)
    sleeps: list[float] = []

    async def start_server_while_waiting(seconds: float) -> None:
        sleeps.append(seconds)
        if server.connections == 0 and not server.requests:
            await server.__aenter__()

    set_conn(monkeypatch, host=f"http://127.0.0.1:{port}/v1", async_transport=transport)
    hook = TogetherHook(asleep=start_server_while_waiting)
    try:
        created = await within(hook.acreate_fine_tune(CREATE))
    finally:
        await TogetherHook.aclose_async_clients()
        await server.__aexit__(None, None, None)
    assert created.id == "ft-1"
    assert len(sleeps) == 1
    assert [(r.method, r.target) for r in server.requests] == [("POST", "/v1/fine-tunes")]


async def _drop_first_then(peer: Peer, *, reset: bool, state: dict[str, int]) -> None:
    while (request := await peer.read_request()) is not None:
        state["seen"] += 1
        if state["seen"] == 1:
            if reset:  # a head and part of the body, then RST
                await peer.send(
                    response(200, b"", length=False, headers=[("Content-Length", "500")]) + b'{"id"'
                )
                await peer.reset()
            else:  # the whole request was read; the server goes away without a word
                await peer.close()
            return
        await peer.send(answer_job(request))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_drop_after_the_body_was_read_makes_a_create_ambiguous(
    transport: str, monkeypatch: pytest.MonkeyPatch, hook: TogetherHook
) -> None:
    state = {"seen": 0}
    async with Server(lambda peer: _drop_first_then(peer, reset=False, state=state)) as server:
        set_conn(monkeypatch, host=f"{server.url}/v1", async_transport=transport)
        with pytest.raises(TogetherAmbiguousSubmitError):
            await within(hook.acreate_fine_tune(CREATE))
    assert [(r.method, json.loads(r.body)) for r in server.requests] == [("POST", CREATE)]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("reset", [False, True], ids=["drop-after-request", "reset-mid-body"])
async def test_a_get_is_resent_after_a_drop_and_succeeds(
    transport: str, reset: bool, monkeypatch: pytest.MonkeyPatch, hook: TogetherHook
) -> None:
    state = {"seen": 0}
    async with Server(lambda peer: _drop_first_then(peer, reset=reset, state=state)) as server:
        set_conn(monkeypatch, host=f"{server.url}/v1", async_transport=transport)
        assert (await within(hook.aget_fine_tune("ft-1"))).id == "ft-1"
    assert [r.target for r in server.requests] == ["/v1/fine-tunes/ft-1"] * 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_create_reset_mid_answer_is_ambiguous(
    transport: str, monkeypatch: pytest.MonkeyPatch, hook: TogetherHook
) -> None:
    state = {"seen": 0}
    async with Server(lambda peer: _drop_first_then(peer, reset=True, state=state)) as server:
        set_conn(monkeypatch, host=f"{server.url}/v1", async_transport=transport)
        with pytest.raises(TogetherAmbiguousSubmitError):
            await within(hook.acreate_fine_tune(CREATE))
    assert len(server.requests) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_headers_that_never_come_are_a_read_timeout(
    transport: str, monkeypatch: pytest.MonkeyPatch, hook: TogetherHook
) -> None:
    async def silent(peer: Peer) -> None:
        while await peer.read_request() is not None:
            pass

    async with Server(silent) as server:
        set_conn(monkeypatch, host=f"{server.url}/v1", async_transport=transport, request_timeout=1)
        with pytest.raises(TogetherAmbiguousSubmitError, match="ReadTimeout"):
            await within(hook.acreate_fine_tune(CREATE))
    assert len(server.requests) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_self_signed_certificate_fails_clearly_and_a_ca_bundle_works(
    transport: str, cert: SelfSigned, monkeypatch: pytest.MonkeyPatch, hook: TogetherHook
) -> None:
    async with Server(replying(answer_job), ssl_context=cert.server_context()) as server:
        set_conn(monkeypatch, host=f"{server.url}/v1", async_transport=transport, max_retries=0)
        with pytest.raises(TogetherTransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await within(hook.aget_fine_tune("ft-1"))
        await TogetherHook.aclose_async_clients()
        set_conn(
            monkeypatch, host=f"{server.url}/v1", async_transport=transport, ca_bundle=str(cert.cert_file)
        )
        assert (await within(hook.aget_fine_tune("ft-1"))).id == "ft-1"
        # Closed before the server: its TLS shutdown waits for the client's close_notify.
        await TogetherHook.aclose_async_clients()
    assert len(server.requests) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("bypass", [False, True], ids=["HTTPS_PROXY", "NO_PROXY"])
async def test_https_proxy_and_no_proxy_from_the_environment(
    transport: str, bypass: bool, cert: SelfSigned, monkeypatch: pytest.MonkeyPatch, hook: TogetherHook
) -> None:
    async with (
        Server(replying(answer_job), ssl_context=cert.server_context()) as server,
        Server(tunnel) as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        if bypass:
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        set_conn(
            monkeypatch, host=f"{server.url}/v1", async_transport=transport, ca_bundle=str(cert.cert_file)
        )
        assert (await within(hook.aget_fine_tune("ft-1"))).id == "ft-1"
        # Closed before the server: its TLS shutdown waits for the client's close_notify.
        await TogetherHook.aclose_async_clients()
        target = f"127.0.0.1:{server.port}"
    assert [r.target for r in proxy.requests] == ([] if bypass else [target])
    assert [r.target for r in server.requests] == ["/v1/fine-tunes/ft-1"]


# -- the connection extras ------------------------------------------------------------------------------------


def settings(**extra: Any) -> Any:
    return settings_from_connection(host=None, password="key", schema=None, port=None, extra=extra)


@pytest.mark.parametrize(
    ("extra", "expected", "client_class"),
    [
        ({}, "aiohttp", AiohttpClient),
        ({"async_transport": ""}, "aiohttp", AiohttpClient),
        ({"async_transport": "aiohttp"}, "aiohttp", AiohttpClient),
        ({"async_transport": "httpx"}, "httpx", httpx.AsyncClient),
    ],
)
async def test_async_transport_extra_values(extra: dict[str, str], expected: str, client_class: type) -> None:
    chosen = settings(**extra)
    assert chosen.async_transport == expected
    client = _client.new_async_client(chosen)
    try:
        assert type(client) is client_class
    finally:
        await client.aclose()


def test_keepalive_is_a_deprecated_alias_of_aiohttp() -> None:
    """0.1.0's value keeps working for one release, with a warning that says what to write instead."""
    with pytest.warns(DeprecationWarning, match="set it to 'aiohttp'"):
        assert settings(async_transport="keepalive").async_transport == "aiohttp"


@pytest.mark.parametrize("value", ["curl", "KEEPALIVE", 1, ["aiohttp"]])
def test_unknown_async_transport_is_a_config_error_naming_the_extra(value: Any) -> None:
    with pytest.raises(TogetherConfigError, match="extra.async_transport") as info:
        settings(async_transport=value)
    assert [field for field, _ in info.value.problems] == ["extra.async_transport"]


def test_ca_bundle_must_be_a_file(tmp_path: Any, cert: SelfSigned) -> None:
    assert settings(ca_bundle=str(cert.cert_file)).ca_bundle == str(cert.cert_file)
    assert settings(ca_bundle="").ca_bundle is None
    for wrong in (str(tmp_path / "missing.pem"), str(tmp_path), 5):
        with pytest.raises(TogetherConfigError, match="extra.ca_bundle"):
            settings(ca_bundle=wrong)


def test_the_sync_client_trusts_the_ca_bundle_too(cert: SelfSigned) -> None:
    """Workers (sync) and the triggerer (async) read the same bundle; the sync client keeps httpx's transport."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(JOB)))
            self.end_headers()
            self.wfile.write(JOB)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = cert.server_context().wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{httpd.server_address[1]}/v1/fine-tunes/ft-1"
        with _client.new_client(settings(ca_bundle=str(cert.cert_file))) as client:
            assert client.get(url).json()["id"] == "ft-1"
        with _client.new_client(settings()) as client, pytest.raises(httpx.ConnectError):
            client.get(url)
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- against the emulator (uvicorn, a real HTTP/1.1 server) ---------------------------------------------------


@pytest.mark.timeout(60)
async def test_hook_polls_through_aiohttp_by_default_and_httpx_on_request(
    together_emulator_conn: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The triggerer's poll (``aget_fine_tune``) goes through aiohttp unless the connection says ``httpx``."""
    from tests._fine_tune_support import create_job

    job_id = create_job(tmp_path)  # sync hook: httpx's default transport, not under test here
    seen: list[str] = []
    original = AiohttpTransport.handle_async_request

    async def spy(self: AiohttpTransport, request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return await original(self, request)

    monkeypatch.setattr(AiohttpTransport, "handle_async_request", spy)
    path = f"/v1/fine-tunes/{job_id}"
    for transport, expected in (("aiohttp", [path, path]), ("httpx", [])):
        seen.clear()
        monkeypatch.setenv(
            "AIRFLOW_CONN_TOGETHER_DEFAULT", together_emulator_conn.conn_json(async_transport=transport)
        )
        hook = TogetherHook()
        try:
            jobs = [await within(hook.aget_fine_tune(job_id)) for _ in range(2)]
            session = await _client.session(hook.together_conn_id, hook._aresolve)
            assert isinstance(session.client, AiohttpClient) == (transport == "aiohttp")
        finally:
            await TogetherHook.aclose_async_clients()
        assert [j.id for j in jobs] == [job_id, job_id]
        assert seen == expected


@pytest.mark.timeout(60)
def test_a_loop_ended_without_closing_its_client_is_dropped_quietly(
    together_emulator_conn: Any, tmp_path: Any
) -> None:
    """
    ``asyncio.run(hook.aget_fine_tune(...))`` never closes the shared client; the next loop drops it.

    An aiohttp session warns (``ResourceWarning``) when it is freed unclosed; it must be freed where
    that warning is expected and silenced, not in whichever test or task happens to run next.
    """
    from tests._fine_tune_support import create_job

    job_id = create_job(tmp_path)

    async def poll(close: bool) -> str:
        try:
            return (await TogetherHook().aget_fine_tune(job_id)).id
        finally:
            if close:
                await TogetherHook.aclose_async_clients()

    assert asyncio.run(poll(close=False)) == job_id
    assert asyncio.run(poll(close=True)) == job_id
