"""
The async client's keep-alive transport (``_transport.keepalive``) against a raw asyncio HTTP server.

The server (``tests/_keepalive_server.py``) speaks raw bytes, so each test scripts exactly what a real or
broken server does: reuse, closes, resets, stalls, odd framings. The transport must behave as httpx's default
transport does (same exception types), since the retry rules read both alike.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import socket
import ssl
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from airflow_provider_together._transport.keepalive import KeepAliveTransport
from airflow_provider_together._transport.settings import settings_from_connection
from airflow_provider_together.exceptions import TogetherConfigError
from tests._keepalive_server import Peer, Server, replying, response, self_signed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests._keepalive_server import SelfSigned

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(20)]

MiB = 1 << 20


@functools.cache
def _default_tls() -> ssl.SSLContext:
    return ssl.create_default_context()


def keepalive(
    *, max_connections: int = 4, keepalive_expiry: float = 5.0, ssl_context: ssl.SSLContext | None = None
) -> KeepAliveTransport:
    return KeepAliveTransport(
        ssl_context=ssl_context or _default_tls(),
        max_connections=max_connections,
        keepalive_expiry=keepalive_expiry,
    )


def client_for(
    server: Server, *, timeout: httpx.Timeout | float = 2.0, **transport: Any
) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, transport=keepalive(**transport), timeout=timeout)


async def within(awaitable: Any, seconds: float = 2.0) -> Any:
    """Await with a bound, so a transport that hangs fails the test instead of stalling the suite."""
    return await asyncio.wait_for(awaitable, seconds)


ok = replying(response())


# -- reuse and the pool --------------------------------------------------------------------------------------


async def test_sequential_requests_reuse_one_connection() -> None:
    """Keep-alive is the point of the transport: three requests in a row share one socket."""
    async with Server(ok) as server, client_for(server) as client:
        for path in ("/a", "/b?x=1&y=%20", "/c"):
            r = await client.get(path)
            assert r.status_code == 200
            assert r.content == b"ok"
            assert r.http_version == "HTTP/1.1"
            assert r.reason_phrase == "OK"
    assert server.connections == 1
    assert [req.target for req in server.requests] == ["/a", "/b?x=1&y=%20", "/c"]
    assert {req.conn for req in server.requests} == {0}


async def test_direct_use_of_handle_async_request() -> None:
    """
    Without an AsyncClient: a streamed response holds its connection (and pool slot) until it is read or
    closed, then gives it back for reuse.
    """
    big = os.urandom(MiB)
    timeouts = {"connect": 1.0, "read": 1.0, "write": 1.0, "pool": 0.05}

    def get(path: str) -> httpx.Request:
        return httpx.Request("GET", f"{server.url}{path}", extensions={"timeout": timeouts})

    transport = keepalive(max_connections=1)
    async with Server(
        replying(lambda request: response(body=big if request.target == "/big" else b"ok"))
    ) as server:
        try:
            first = await within(transport.handle_async_request(get("/big")))
            assert first.status_code == 200
            with pytest.raises(httpx.PoolTimeout):  # the unread body still holds the only connection
                await within(transport.handle_async_request(get("/small")))
            assert await within(first.aread()) == big
            await first.aclose()
            second = await within(transport.handle_async_request(get("/big")))
            await second.aclose()  # closed unread: that socket is dropped, the slot comes back
            third = await within(transport.handle_async_request(get("/small")))
            assert await within(third.aread()) == b"ok"
            await third.aclose()
        finally:
            await transport.aclose()
    assert [r.conn for r in server.requests] == [0, 0, 1]


async def test_idle_connections_are_reused_newest_first() -> None:
    """Newest first keeps few sockets warm and lets the others expire."""
    arrived: list[Peer] = []
    both_in = asyncio.Event()
    answer_b = asyncio.Event()

    async def handle(peer: Peer) -> None:
        request = await peer.read_request()
        assert request is not None
        arrived.append(peer)
        if len(arrived) == 2:
            both_in.set()
        await both_in.wait()
        if request.target == "/b":
            await answer_b.wait()
        await peer.send(response(body=request.target.encode()))
        await ok(peer)

    async with Server(handle) as server, client_for(server) as client:
        a = asyncio.create_task(client.get("/a"))
        b = asyncio.create_task(client.get("/b"))
        assert (await within(a)).text == "/a"  # /a's connection goes idle first ...
        answer_b.set()
        assert (await within(b)).text == "/b"  # ... then /b's: the newest idle one
        await client.get("/c")
    conn_of = {req.target: req.conn for req in server.requests}
    assert server.connections == 2
    assert conn_of["/c"] == conn_of["/b"] != conn_of["/a"]


async def test_concurrent_requests_are_capped_at_max_connections() -> None:
    """Extra requests wait for a connection rather than opening more than ``max_connections``."""
    state = {"active": 0, "peak": 0}

    async def handle(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            await asyncio.sleep(0.03)
            state["active"] -= 1
            await peer.send(response(body=request.target.encode()))

    async with Server(handle) as server, client_for(server, max_connections=2) as client:
        responses = await within(asyncio.gather(*(client.get(f"/{i}") for i in range(6))))
    assert [r.text for r in responses] == [f"/{i}" for i in range(6)]
    assert state["peak"] == 2
    assert server.connections == 2


async def test_pool_timeout_when_every_connection_is_busy() -> None:
    """Waiting past the ``pool`` timeout is a ``PoolTimeout``, which gives back no slot it never had."""
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def handle(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            if request.target == "/slow":
                arrived.set()
                await release.wait()
            await peer.send(response())

    timeout = httpx.Timeout(2.0, pool=0.1)
    async with Server(handle) as server, client_for(server, max_connections=1, timeout=timeout) as client:
        slow = asyncio.create_task(client.get("/slow"))
        await within(arrived.wait())  # the slow request holds the only connection
        with pytest.raises(httpx.PoolTimeout):
            await within(client.get("/waits"))
        release.set()
        assert (await within(slow)).status_code == 200
        # One slot, not zero (leaked) nor two (given back by the request that never had it): two concurrent
        # requests then share the one connection, one after the other.
        after = await within(asyncio.gather(client.get("/after"), client.get("/after")))
        assert [r.status_code for r in after] == [200, 200]
    assert server.connections == 1


async def test_expired_idle_connection_is_closed_and_replaced() -> None:
    """An idle connection older than ``keepalive_expiry`` is closed, and the request goes on a new one."""
    closed = asyncio.Event()

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response())
        if peer.index > 0:
            await ok(peer)
        elif await peer.client_closed():
            closed.set()

    async with Server(handle) as server, client_for(server, keepalive_expiry=0.1) as client:
        await within(client.get("/first"))
        await asyncio.sleep(0.15)
        assert (await within(client.get("/second"))).status_code == 200
        await within(closed.wait())
    assert server.connections == 2


async def test_connection_closed_by_server_while_idle_is_not_reused() -> None:
    """A server may drop an idle keep-alive connection at any time; the next request opens a new one."""

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response())  # no "Connection: close": the client learns of it from the FIN only
        await peer.close()

    async with Server(handle) as server, client_for(server) as client:
        await client.get("/first")
        await asyncio.sleep(0.05)  # the FIN reaches the client's loop
        r = await within(client.get("/second"))
    assert r.status_code == 200
    assert server.connections == 2


async def test_connection_closed_by_server_after_a_paused_read_is_not_reused() -> None:
    """
    The same after a body that arrived faster than it was read: a body one byte over 1 MiB, read only once it
    is all buffered, so the socket's last read paused reading (deterministic: the body ends in that read).
    """

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(body=b"x" * (MiB + 1)))
        await peer.close()

    async with Server(handle) as server, client_for(server) as client:
        async with client.stream("GET", "/download") as r:
            await asyncio.sleep(0.1)  # the whole body arrives while nobody reads
            assert len(await within(r.aread())) == MiB + 1
        await asyncio.sleep(0.05)  # the FIN reaches the client's loop
        r = await within(client.get("/second"))
    assert r.status_code == 200
    assert server.connections == 2


@pytest.mark.parametrize(
    ("reply", "version"),
    [
        pytest.param(response(headers=[("Connection", "close")]), "HTTP/1.1", id="connection-close"),
        pytest.param(response(version="HTTP/1.0"), "HTTP/1.0", id="http-1.0"),
    ],
)
async def test_response_that_ends_the_connection_is_not_reused(reply: bytes, version: str) -> None:
    """``Connection: close`` and HTTP/1.0 answers work, and their connection is not pooled."""

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(reply)
        await peer.client_closed()  # the server leaves closing to the client, which must not reuse it

    async with Server(handle) as server, client_for(server) as client:
        for _ in range(2):
            r = await within(client.get("/"))
            assert (r.status_code, r.content, r.http_version) == (200, b"ok", version)
    assert server.connections == 2


async def test_aclose_closes_idle_connections() -> None:
    """Closing the client (and so the transport) closes its pooled sockets, not leaving them to the GC."""
    closed = asyncio.Event()

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response())
        if await peer.client_closed():
            closed.set()

    async with Server(handle) as server:
        transport = keepalive()
        async with httpx.AsyncClient(base_url=server.url, transport=transport) as client:
            await client.get("/")
            await asyncio.sleep(0.05)
            assert not closed.is_set()  # idle in the pool, still open
        await within(closed.wait())


async def test_max_connections_counts_idle_connections_of_other_origins() -> None:
    """``max_connections`` is "connections open at once, idle or busy" (the docstring), across origins too."""
    closed = asyncio.Event()

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response())
        if await peer.client_closed():
            closed.set()

    async with Server(handle) as a, Server(ok) as b:
        async with httpx.AsyncClient(transport=keepalive(max_connections=1), timeout=2.0) as client:
            await within(client.get(a.url))  # a's connection is now idle in the pool
            await within(client.get(b.url))  # a second origin: a's idle socket must make room
            await asyncio.wait_for(closed.wait(), 0.3)


async def test_request_with_connection_close_is_not_reused() -> None:
    """A client that said ``Connection: close`` must not send another request on that connection."""
    async with Server(ok) as server, client_for(server) as client:
        await within(client.get("/", headers={"Connection": "close"}))
        await within(client.get("/"))
    assert server.connections == 2


# -- timeouts ------------------------------------------------------------------------------------------------


async def test_connect_timeout_and_the_slot_is_freed() -> None:
    """A server that never accepts (full backlog) gives ``ConnectTimeout``, and the pool slot comes back."""
    listener = socket.socket()
    fillers = [socket.socket() for _ in range(3)]
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepted: once the queue is full, the kernel drops further SYNs
        port = listener.getsockname()[1]
        for filler in fillers:
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
        transport = keepalive(max_connections=1)
        try:
            timeout = httpx.Timeout(2.0, connect=0.2)
            async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
                with pytest.raises(httpx.ConnectTimeout):
                    await within(client.get(f"http://127.0.0.1:{port}/"))
                async with Server(ok) as server:
                    assert (await within(client.get(server.url))).status_code == 200
        finally:
            await transport.aclose()
    finally:
        for sock in (*fillers, listener):
            sock.close()


async def test_read_timeout_waiting_for_the_response() -> None:
    """
    A server that takes the request and says nothing: ``ReadTimeout`` after the ``read`` timeout; that
    socket is closed (its answer may still come) and the slot serves the next request on a new one.
    """
    gone = asyncio.Event()

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        if peer.index > 0:
            await peer.send(response())
            await ok(peer)
        elif await peer.client_closed(5):
            gone.set()

    timeout = httpx.Timeout(2.0, read=0.1, pool=0.5)
    async with Server(handle) as server, client_for(server, timeout=timeout, max_connections=1) as client:
        with pytest.raises(httpx.ReadTimeout):
            await within(client.get("/"))
        await within(gone.wait())
        assert (await within(client.get("/next"))).status_code == 200
    assert server.connections == 2


async def test_read_timeout_between_body_bytes() -> None:
    """The ``read`` timeout applies between bytes: a body that stalls halfway times out too."""

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(body=b"x" * 100)[:-50])
        await peer.client_closed(5)

    timeout = httpx.Timeout(2.0, read=0.1)
    async with Server(handle) as server, client_for(server, timeout=timeout) as client:
        with pytest.raises(httpx.ReadTimeout):
            await within(client.get("/"))


async def test_slow_but_steady_body_does_not_time_out() -> None:
    """The ``read`` timeout is per wait, not per body: 5 pieces 60 ms apart beat a 100 ms timeout."""

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(body=b"x" * 5, length=True)[:-5])
        for _ in range(5):
            await asyncio.sleep(0.06)
            await peer.send(b"x")
        await ok(peer)

    timeout = httpx.Timeout(2.0, read=0.1)
    async with Server(handle) as server, client_for(server, timeout=timeout) as client:
        r = await within(client.get("/"))
    assert r.content == b"xxxxx"


async def test_write_timeout_when_the_server_stops_reading() -> None:
    """An upload to a server that stops reading: ``WriteTimeout`` once the socket buffers are full."""

    async def handle(peer: Peer) -> None:
        await peer.read_head()
        await asyncio.sleep(5)  # reads nothing more

    async def endless() -> AsyncIterator[bytes]:
        piece = b"x" * MiB
        for _ in range(1024):
            yield piece

    timeout = httpx.Timeout(2.0, write=0.2)
    async with Server(handle) as server, client_for(server, timeout=timeout) as client:
        with pytest.raises(httpx.WriteTimeout):
            await within(client.post("/upload", content=endless()), 4)


# -- errors --------------------------------------------------------------------------------------------------


async def test_connection_refused_is_connect_error() -> None:
    """Nothing listening: ``ConnectError`` (read as "never sent"); each failure gives its slot back."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    timeout = httpx.Timeout(2.0, pool=0.1)
    async with httpx.AsyncClient(transport=keepalive(max_connections=1), timeout=timeout) as client:
        for _ in range(2):  # a leaked slot would make the second a PoolTimeout
            with pytest.raises(httpx.ConnectError):
                await within(client.get(f"http://127.0.0.1:{port}/"))


async def test_dns_failure_is_connect_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that does not resolve is a ``ConnectError`` (the resolver is stubbed: no network in tests)."""

    async def no_such_host(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_such_host)
    async with httpx.AsyncClient(transport=keepalive(), timeout=2.0) as client:
        with pytest.raises(httpx.ConnectError, match="Name or service not known"):
            await within(client.get("http://no-such-host.invalid/"))


async def test_unsupported_scheme() -> None:
    """Only http and https: anything else is ``UnsupportedProtocol`` before any connection."""
    transport = keepalive()
    try:
        with pytest.raises(httpx.UnsupportedProtocol):
            await transport.handle_async_request(httpx.Request("GET", "ftp://127.0.0.1/file"))
    finally:
        await transport.aclose()


async def test_server_closing_without_a_response() -> None:
    """The request was sent, no answer came: ``RemoteProtocolError``, worded as httpcore words it."""

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.close()

    async with Server(handle) as server, client_for(server) as client:
        with pytest.raises(
            httpx.RemoteProtocolError, match=r"^Server disconnected without sending a response\.$"
        ):
            await within(client.get("/"))


async def test_server_reset_without_a_response() -> None:
    """A reset instead of an answer is a transport error too (either kind: "maybe received")."""

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.reset()

    async with Server(handle) as server, client_for(server) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await within(client.get("/"))


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", id="not-http"),
        pytest.param(b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n", id="bad-status"),
        pytest.param(b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n", id="bad-header"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n", id="bad-length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", id="bad-chunk"
        ),
    ],
)
async def test_malformed_response_is_remote_protocol_error(reply: bytes) -> None:
    """Garbage in the head or in the body framing: ``RemoteProtocolError``, and the socket is closed."""
    gone = asyncio.Event()

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(reply)
        if await peer.client_closed():
            gone.set()

    async with Server(handle) as server, client_for(server) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await within(client.get("/"))
        await within(gone.wait())


@pytest.mark.parametrize("how", ["reset", "close"])
@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", id="small-length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n", id="big-length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n186a0\r\n", id="chunked"),
    ],
)
async def test_connection_lost_mid_body(how: str, head: bytes) -> None:
    """A body cut short by a reset or a close is a transport error, and the connection is not pooled."""

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        if peer.index > 0:
            await peer.send(response())
            await ok(peer)
            return
        await peer.send(head + b"x" * 10)
        await asyncio.sleep(0.05)  # the client reads the head and the first bytes (same loop) ...
        await (peer.reset() if how == "reset" else peer.close())  # ... then the socket goes

    async with Server(handle) as server, client_for(server, max_connections=1) as client:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            await within(client.get("/"))
        assert (await within(client.get("/next"))).status_code == 200
    assert server.connections == 2


# -- response bodies -----------------------------------------------------------------------------------------


async def test_chunked_response_with_trailer_then_reuse() -> None:
    """Chunks (one per write: split input) and a trailer; then the connection is reusable."""

    async def handle(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in (b"5\r\nhello\r\n", b"1;ext=1\r\n \r\n", b"5\r\nwor", b"ld\r\n"):
                await peer.send(piece)
                await asyncio.sleep(0.005)
            await peer.send(b"0\r\nX-Checksum: abc\r\n\r\n")

    async with Server(handle) as server, client_for(server) as client:
        for _ in range(2):
            r = await within(client.get("/"))
            assert r.content == b"hello world"
    assert server.connections == 1


async def test_response_dribbled_byte_by_byte() -> None:
    """Every split of a head, a chunk-size line, a chunk and a trailer across reads parses the same."""
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n"
        b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )

    async def handle(peer: Peer) -> None:
        while await peer.read_request() is not None:
            for i in range(len(reply)):
                await peer.send(reply[i : i + 1])
                await asyncio.sleep(0.0005)

    async with Server(handle) as server, client_for(server) as client:
        for _ in range(2):
            r = await within(client.get("/"))
            assert (r.content, r.headers["x-a"]) == (b"hello world", "b")
    assert server.connections == 1


async def test_bytes_after_a_response_discard_the_connection() -> None:
    """Unsolicited bytes after an answer (a stray second response) must not be read as the next answer."""
    stray = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"
    async with Server(replying(response(body=b"fresh") + stray)) as server, client_for(server) as client:
        for _ in range(3):
            assert (await within(client.get("/"))).content == b"fresh"
    assert server.connections == 3


async def test_close_delimited_body_is_read_to_eof_and_not_reused() -> None:
    """No length and no chunking: the body ends when the server closes, so that socket is done."""

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(body=b"part one, ", length=False))
        await asyncio.sleep(0.02)
        await peer.send(b"part two")
        await peer.close()

    async with Server(handle) as server, client_for(server) as client:
        for _ in range(2):
            r = await within(client.get("/"))
            assert r.content == b"part one, part two"
    assert server.connections == 2


@pytest.mark.parametrize(
    ("method", "reply"),
    [
        pytest.param("GET", response(204, b"", reason="No Content", length=False), id="204"),
        pytest.param(
            "GET",
            b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 1234\r\n\r\n',
            id="304-with-length",
        ),
        pytest.param("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", id="HEAD"),
    ],
)
async def test_bodiless_responses_then_reuse(method: str, reply: bytes) -> None:
    """204, 304 and HEAD answers have no body whatever their headers say; the socket is then reused."""
    async with Server(replying(reply)) as server, client_for(server) as client:
        for _ in range(3):
            r = await within(client.request(method, "/"))
            assert r.content == b""
    assert server.connections == 1


async def test_informational_responses_are_skipped() -> None:
    """``100 Continue`` and ``103 Early Hints`` come before the real answer, which is what the caller gets."""
    reply = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        + response(201, b"made", reason="Created")
    )
    async with Server(replying(reply)) as server, client_for(server) as client:
        for _ in range(2):
            r = await within(client.post("/", content=b"body"))
            assert (r.status_code, r.content, r.reason_phrase) == (201, b"made", "Created")
    assert server.connections == 1


async def test_large_body_streams_intact_and_connection_is_reused() -> None:
    """A 16 MiB body arrives in many pieces, byte for byte, and the socket is reusable afterwards."""
    block = os.urandom(MiB)
    blocks = 16
    digest = hashlib.sha256(block * blocks).hexdigest()

    async def handle(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(f"HTTP/1.1 200 OK\r\nContent-Length: {blocks * MiB}\r\n\r\n".encode())
            for _ in range(blocks):
                await peer.send(block)

    async with Server(handle) as server, client_for(server) as client:
        for _ in range(2):
            sha, pieces = hashlib.sha256(), 0
            async with client.stream("GET", "/big") as r:
                async for chunk in r.aiter_raw():
                    sha.update(chunk)
                    pieces += 1
            assert sha.hexdigest() == digest
            assert pieces > 1
    assert server.connections == 1


async def test_unread_body_applies_back_pressure_and_an_early_close_drops_the_connection() -> None:
    """
    A consumer that stops reading stops the socket (the transport does not buffer a huge body), and
    closing the response before its end must not pool a socket that still holds the rest of that body.
    """
    total = 1024 * MiB
    sent = {"bytes": 0}
    gone = asyncio.Event()

    async def handle(peer: Peer) -> None:
        request = await peer.read_request()
        assert request is not None
        if request.target != "/huge":
            await peer.send(response())
            await ok(peer)
            return
        piece = b"x" * MiB
        try:
            await peer.send(f"HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n".encode())
            while sent["bytes"] < total:
                await peer.send(piece)
                sent["bytes"] += len(piece)
        except ConnectionError:
            gone.set()

    async with Server(handle) as server, client_for(server) as client:
        async with client.stream("GET", "/huge") as r:
            chunks = r.aiter_raw()
            assert await within(chunks.__anext__())
            await asyncio.sleep(0.3)  # a client that buffered everything would have taken it all by now
            assert sent["bytes"] < total // 4
            await chunks.aclose()
        await within(gone.wait())  # the half-read socket was closed, not pooled
        r = await within(client.get("/next"))
        assert r.status_code == 200
    assert server.connections == 2


# -- request bodies ------------------------------------------------------------------------------------------


async def _pieces(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece
        await asyncio.sleep(0)


def _stream() -> dict[str, Any]:
    return {"content": _pieces(b"one ", b"", b"two ", b"three")}  # an empty piece must not end the body


@pytest.mark.parametrize(
    ("make", "framing", "expected"),
    [
        pytest.param(lambda: {"content": b"raw bytes"}, "length", b"raw bytes", id="bytes"),
        pytest.param(lambda: {"json": {"a": [1, 2], "b": "\u00e9"}}, "length", None, id="json"),
        pytest.param(
            lambda: {**_stream(), "headers": {"Content-Length": "13"}},
            "length",
            b"one two three",
            id="stream-with-length",
        ),
        pytest.param(_stream, "chunked", b"one two three", id="stream-chunked"),
    ],
)
async def test_request_bodies_are_framed(make: Any, framing: str, expected: bytes | None) -> None:
    """Bytes, JSON and streamed bodies reach the server whole, with the framing httpx chose."""
    async with Server(ok) as server, client_for(server) as client:
        for _ in range(2):  # twice: the first body's framing left the connection clean for the next request
            assert (await within(client.post("/", **make()))).status_code == 200
    assert server.connections == 1
    for request in server.requests:
        if framing == "chunked":
            assert request.header("transfer-encoding") == "chunked"
            assert request.header("content-length") is None
        else:
            assert request.header("transfer-encoding") is None
            assert request.header("content-length") == str(len(request.body))
        if expected is None:
            assert json.loads(request.body) == {"a": [1, 2], "b": "\u00e9"}
            assert request.header("content-type") == "application/json"
        else:
            assert request.body == expected


async def test_big_streamed_upload_to_a_slow_reader_arrives_intact() -> None:
    """32 MiB streamed in 1 MiB pieces to a server that reads slowly: write back-pressure, no byte lost."""
    block = os.urandom(MiB)
    blocks = 32
    received = {}

    async def handle(peer: Peer) -> None:
        request = await peer.read_head()
        assert request is not None
        sha, size = hashlib.sha256(), 0
        async for piece in peer.body_pieces(request, size=256 * 1024):
            sha.update(piece)
            size += len(piece)
            await asyncio.sleep(0.001)
        received.update(sha=sha.hexdigest(), size=size)
        await peer.send(response(body=sha.hexdigest().encode()))

    async def upload() -> AsyncIterator[bytes]:
        for _ in range(blocks):
            yield block

    async with Server(handle) as server, client_for(server, timeout=3.0) as client:
        r = await within(
            client.put("/upload", content=upload(), headers={"Content-Length": str(blocks * MiB)}), 8
        )
    assert r.status_code == 200
    assert received == {"size": blocks * MiB, "sha": hashlib.sha256(block * blocks).hexdigest()}


@pytest.mark.parametrize(
    "rest",
    [pytest.param([b"x" * (64 * 1024)] * 64, id="mid-body"), pytest.param([b"tail"], id="last-write")],
)
async def test_early_response_while_still_uploading_is_returned(rest: list[bytes]) -> None:
    """
    A server may answer (413, 401) before the body is in and close: the caller gets that answer, not a
    write error, whether the failed write is one in the middle of the body or the last one. Deterministic:
    the body waits until the server has answered and half-closed before it goes on.
    """
    answered = asyncio.Event()

    async def handle(peer: Peer) -> None:
        await peer.read_head()
        await peer.send(
            response(413, b"too big", reason="Payload Too Large", headers=[("Connection", "close")])
        )
        peer.writer.write_eof()  # answer and half-close ...
        answered.set()
        await peer.client_closed()  # ... but keep reading (a lingering close), so no reset eats the answer

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * (256 * 1024)  # more than any write batch: the head and this go out now
        await within(answered.wait())
        await asyncio.sleep(0.05)  # the client's loop sees the answer and the FIN
        for piece in rest:
            yield piece

    async with Server(handle) as server, client_for(server) as client:
        r = await within(client.post("/upload", content=body()), 4)
        assert (r.status_code, r.content) == (413, b"too big")
        assert (await within(client.post("/again", content=b"x"))).status_code == 413  # on a new connection
    assert server.connections == 2


# -- headers -------------------------------------------------------------------------------------------------


async def test_header_casing_and_reason_phrase_are_preserved() -> None:
    """Header names keep their case both ways (``headers.raw``), and a custom reason phrase comes through."""
    reply = (
        b"HTTP/1.1 418 I'm A Teapot\r\nX-Request-ID: abc-123\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"Content-Length: 2\r\n\r\nok"
    )
    async with Server(replying(reply)) as server, client_for(server) as client:
        r = await within(client.get("/", headers={"X-Custom-CASE": "v"}))
    assert r.status_code == 418
    assert r.reason_phrase == "I'm A Teapot"
    assert r.http_version == "HTTP/1.1"
    assert (b"X-Request-ID", b"abc-123") in r.headers.raw
    assert [v for k, v in r.headers.raw if k.lower() == b"set-cookie"] == [b"a=1", b"b=2"]
    assert r.headers["x-request-id"] == "abc-123"
    assert (b"X-Custom-CASE", b"v") in server.requests[0].headers


# -- cancellation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stall",
    [
        pytest.param(None, id="no-answer"),
        pytest.param(100, id="small-body-cut"),
        pytest.param(4 * MiB, id="streamed-body-cut"),
    ],
)
async def test_cancelled_request_frees_the_slot_and_closes_the_socket(stall: int | None) -> None:
    """
    A caller that gives up (``wait_for``) must not leak the pool slot nor leave the socket open: before any
    answer, or halfway through a body (read before returning, or streamed).
    """
    gone = asyncio.Event()

    async def handle(peer: Peer) -> None:
        request = await peer.read_request()
        assert request is not None
        if request.target == "/stalls":
            if stall is not None:
                await peer.send(f"HTTP/1.1 200 OK\r\nContent-Length: {stall}\r\n\r\n".encode() + b"x" * 50)
            if await peer.client_closed():
                gone.set()
            return
        await peer.send(response())
        await ok(peer)

    timeout = httpx.Timeout(2.0, pool=1.0)
    async with Server(handle) as server, client_for(server, max_connections=1, timeout=timeout) as client:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.get("/stalls"), 0.1)
        await within(gone.wait())
        assert (await within(client.get("/ok"))).status_code == 200
    assert server.connections == 2


# -- TLS -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    return self_signed(tmp_path_factory.mktemp("tls"))


async def test_https_with_a_trusted_certificate(cert: SelfSigned) -> None:
    """https works (and keeps alive) with a context that trusts the server's certificate."""
    async with (
        Server(ok, ssl_context=cert.server_context()) as server,
        client_for(server, ssl_context=cert.client_context()) as client,
    ):
        for _ in range(2):
            r = await within(client.get("/"))
            assert (r.status_code, r.content) == (200, b"ok")
    assert server.connections == 1


async def test_https_with_an_untrusted_certificate_is_connect_error(cert: SelfSigned) -> None:
    """The default context does not trust a self-signed certificate: ``ConnectError``, never a request."""
    async with Server(ok, ssl_context=cert.server_context()) as server, client_for(server) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await within(client.get("/"))
    assert server.requests == []


# -- through the hook ----------------------------------------------------------------------------------------


def _spy(monkeypatch: pytest.MonkeyPatch, transport: type[httpx.AsyncBaseTransport]) -> list[str]:
    """Record the path of every request ``transport`` handles (its public method, wrapped)."""
    seen: list[str] = []
    original = transport.handle_async_request

    async def handle_async_request(self: Any, request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return await original(self, request)

    monkeypatch.setattr(transport, "handle_async_request", handle_async_request)
    return seen


@pytest.mark.timeout(60)
async def test_hook_polls_through_keepalive_by_default_and_httpx_on_request(
    together_emulator_conn: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The triggerer's poll (``aget_fine_tune``) goes through this transport unless the connection says
    ``async_transport: httpx``, and works either way against the emulator (uvicorn, a real HTTP/1.1 server).
    """
    from airflow_provider_together._transport import client as _client
    from airflow_provider_together.hooks import TogetherHook
    from tests._fine_tune_support import create_job

    job_id = create_job(tmp_path)  # sync hook: httpx's default transport, not under test here
    ours = _spy(monkeypatch, KeepAliveTransport)
    theirs = _spy(monkeypatch, httpx.AsyncHTTPTransport)
    path = f"/v1/fine-tunes/{job_id}"

    hook = TogetherHook()
    try:
        jobs = [await within(hook.aget_fine_tune(job_id), 10) for _ in range(2)]
        session = await _client.session(hook.together_conn_id, hook._aresolve)
        assert type(session.client._transport).__name__ == "KeepAliveTransport"
    finally:
        await TogetherHook.aclose_async_clients()
    assert [job.id for job in jobs] == [job_id, job_id]
    assert (ours, theirs) == ([path, path], [])

    monkeypatch.setenv(
        "AIRFLOW_CONN_TOGETHER_DEFAULT", together_emulator_conn.conn_json(async_transport="httpx")
    )
    hook = TogetherHook()
    try:
        job = await within(hook.aget_fine_tune(job_id), 10)
        session = await _client.session(hook.together_conn_id, hook._aresolve)
        assert type(session.client._transport) is httpx.AsyncHTTPTransport
    finally:
        await TogetherHook.aclose_async_clients()
    assert job.id == job_id
    assert (ours, theirs) == ([path, path], [path])


@pytest.mark.parametrize(
    ("extra", "expected"),
    [({}, "keepalive"), ({"async_transport": ""}, "keepalive"), ({"async_transport": "httpx"}, "httpx")],
)
def test_async_transport_extra_values(extra: dict[str, str], expected: str) -> None:
    """The default is this transport; ``httpx`` is the way back to httpx's own."""
    settings = settings_from_connection(host=None, password="key", schema=None, port=None, extra=extra)
    assert settings.async_transport == expected


def test_unknown_async_transport_is_a_config_error_naming_the_extra() -> None:
    """A typo in the extra fails before any request, naming the field, rather than using a default."""
    with pytest.raises(TogetherConfigError, match="extra.async_transport") as info:
        settings_from_connection(
            host=None, password="key", schema=None, port=None, extra={"async_transport": "curl"}
        )
    assert [field for field, _ in info.value.problems] == ["extra.async_transport"]
