"""
The async client's transport: keep-alive HTTP/1.1 over an ``asyncio.Protocol`` (wire format: ``_transport.h1``).

Why not httpx's default (httpcore over anyio)? The triggerer sends every poll of every deferred job
through one ``AsyncClient``, so the cost of one small request is the provider's cost in the triggerer.
httpcore spends ~0.7 ms of CPU per request on a small pool, and more as the pool grows, because it
re-checks every pooled connection on each request through anyio's attribute lookups, and h11 parses
each answer with a general state machine (profile in docs/benchmarks.md). This transport does the
client's part of the same protocol work with none of that bookkeeping, at a fraction of the CPU.

What it does:

* one connection per request in flight, at most ``max_connections``; idle connections are reused
  newest first and closed once idle longer than ``keepalive_expiry`` (5 s, as httpx);
* streamed request bodies with write back-pressure, streamed response bodies with read back-pressure;
  a small ``Content-Length`` body (the API's JSON) is read before the response is returned, so the
  connection is back in the pool at once and httpx has no stream to drive;
* httpx's timeouts (``connect``, ``read`` between bytes, ``write``, ``pool``) and its exception types,
  mapped as httpcore maps them, so the retry rules (``_transport.retry``) read both alike: only a
  failure to *connect* (or a pool wait) means "never sent"; a drop after sending is ambiguous.

What it leaves to httpx: proxies (an ``AsyncClient`` mounts httpx's own proxy transports from
``HTTP(S)_PROXY`` ahead of this one), HTTP/2 (Together serves HTTP/1.1), and the sync client, which
keeps httpx's default. The connection extra ``async_transport: "httpx"`` switches back to httpx's
default for the async client too.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

import httpx

from airflow_provider_together._transport import h1

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator

#: Unread response bytes above which the socket stops reading until the consumer catches up.
READ_HIGH_WATER = 1 << 20
#: Request bytes gathered before a write when a body arrives in small pieces.
WRITE_BATCH = 64 * 1024
#: A ``Content-Length`` body up to this size is read whole before the response is returned.
EAGER_BODY_BYTES = 256 * 1024

_Origin = tuple[str, str, int]


class _Connection(asyncio.Protocol):
    """One socket: the protocol callbacks buffer and wake; the coroutine methods read and write."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.lost: Exception | None = None
        self.waiter: asyncio.Future[bool] | None = None
        self.write_paused = False
        self.reading_paused = False
        self.idle_since = 0.0

    # -- protocol callbacks (run by the loop) --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport: create_connection

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close our side too: HTTP/1.1 never half-closes usefully

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.lost = exc
        self.write_paused = False
        self._wake()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    # -- state ---------------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.transport is None or self.transport.is_closing() or self.eof

    def reusable(self, now: float, expiry: float) -> bool:
        """An idle connection can take a request: open, silent since its last answer, not expired."""
        return not self.closed and not self.buffer and now - self.idle_since < expiry

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        self.reading_paused = False

    # -- I/O -------------------------------------------------------------------------------------------

    async def _wait(self, timeout: float | None) -> bool:
        """Wait for a wake-up (data, EOF, writable); False when ``timeout`` passed first."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self.waiter = waiter
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    async def write(self, pieces: list[bytes], timeout: float | None, request: httpx.Request) -> None:
        if self.closed or self.transport is None:
            raise httpx.WriteError("Connection closed by the server", request=request)
        self.transport.writelines(pieces)
        while self.write_paused and not self.closed:
            if not await self._wait(timeout):
                raise httpx.WriteTimeout("Timed out writing the request", request=request)
        if self.lost is not None:
            raise httpx.WriteError(str(self.lost) or type(self.lost).__name__, request=request)

    async def _more(self, timeout: float | None, request: httpx.Request, waiting_for: str) -> None:
        """Wait for bytes beyond those buffered; the server closing instead is an error."""
        self.resume_reading()
        if not self.eof and not await self._wait(timeout):
            raise httpx.ReadTimeout("Timed out reading the response", request=request)
        if self.eof and self.lost is not None:
            raise httpx.ReadError(str(self.lost) or type(self.lost).__name__, request=request)
        if self.eof and waiting_for:
            raise httpx.RemoteProtocolError(waiting_for, request=request)

    async def read_head(self, timeout: float | None, request: httpx.Request) -> h1.ResponseHead:
        """The next final response head (1xx answers are skipped)."""
        while True:
            end, size = h1.find_head_end(self.buffer)
            if end < 0:
                if len(self.buffer) > h1.MAX_HEAD_BYTES:
                    raise httpx.RemoteProtocolError("Response head too large", request=request)
                # As httpcore words it: the request may or may not have reached the server.
                gone = "Server disconnected without sending a response."
                if self.buffer:
                    gone = "Server disconnected while sending the response head"
                await self._more(timeout, request, gone)
                continue
            block = bytes(self.buffer[:end])
            del self.buffer[: end + size]
            try:
                head = h1.parse_response_head(block)
            except h1.ProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc), request=request) from exc
            if not 100 <= head.status_code < 200 or head.status_code == 101:
                return head

    async def read_body(
        self, decoder: h1.BodyDecoder, timeout: float | None, request: httpx.Request
    ) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive, until ``decoder`` says it ended."""
        try:
            while True:
                pieces = decoder.feed(self.buffer)
                left = len(self.buffer)
                for piece in pieces:
                    yield piece
                if decoder.done:
                    return
                if len(self.buffer) != left:  # more arrived while the consumer held a piece
                    continue
                if self.eof:
                    if self.lost is not None:
                        raise httpx.ReadError(str(self.lost) or type(self.lost).__name__, request=request)
                    decoder.at_eof()
                    return
                await self._more(timeout, request, "")
        except h1.ProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc


def _asks_to_close(request: httpx.Request) -> bool:
    value = request.headers.get("connection")
    return value is not None and "close" in value.lower()


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """
    Keep-alive HTTP/1.1 transport for ``httpx.AsyncClient`` (see the module docstring for why).

    :param ssl_context: TLS context for ``https`` origins (the process-wide one, built once).
    :param max_connections: connections open at once, idle or busy; more requests wait (``pool`` timeout).
    :param keepalive_expiry: seconds an idle connection may wait for reuse before it is closed.
    """

    def __init__(
        self, *, ssl_context: ssl.SSLContext, max_connections: int, keepalive_expiry: float = 5.0
    ) -> None:
        self._ssl = ssl_context
        self._slots = asyncio.Semaphore(max_connections)
        self._max = max_connections
        self._busy = 0
        self._expiry = keepalive_expiry
        self._idle: dict[_Origin, deque[_Connection]] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{url.scheme}://'.")
        # raw_host: the ASCII (IDNA) form a resolver needs, without IPv6 brackets.
        origin = (
            url.scheme,
            url.raw_host.decode("ascii"),
            url.port or (443 if url.scheme == "https" else 80),
        )
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read")
        await self._acquire(timeouts.get("pool"), request)
        conn: _Connection | None = None
        try:
            conn = self._take_idle(origin)
            if conn is None:
                self._make_room()
                conn = await self._connect(origin, timeouts.get("connect"), request)
            head, sent = await self._exchange(conn, request, timeouts)
            decoder = h1.body_decoder(head, request.method)
            eager = decoder.done or (
                isinstance(decoder, h1.LengthDecoder) and decoder.remaining <= EAGER_BODY_BYTES
            )
            # The API's JSON: read it now and hand the connection back before httpx even sees it.
            body = (
                b"".join([p async for p in conn.read_body(decoder, read_timeout, request)]) if eager else b""
            )
        except h1.ProtocolError as exc:
            self._abandon(conn)
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except BaseException:
            self._abandon(conn)
            raise
        # An early answer leaves our unsent rest on the socket; a request that said "close" ends the connection.
        reusable = decoder.keep_alive and sent and not _asks_to_close(request)
        extensions = {"http_version": head.http_version, "reason_phrase": head.reason}
        if eager:
            self.release(conn, origin, reusable=reusable)
            return httpx.Response(head.status_code, headers=head.headers, content=body, extensions=extensions)
        stream = _ResponseBody(self, conn, origin, conn.read_body(decoder, read_timeout, request), reusable)
        return httpx.Response(head.status_code, headers=head.headers, stream=stream, extensions=extensions)

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()

    # -- pool ----------------------------------------------------------------------------------------

    async def _acquire(self, timeout: float | None, request: httpx.Request) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free slot: returns without suspending
        else:
            try:
                await asyncio.wait_for(self._slots.acquire(), timeout)
            except asyncio.TimeoutError:
                raise httpx.PoolTimeout("Timed out waiting for a free connection", request=request) from None
        self._busy += 1

    def _take_idle(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = time.monotonic()
        while idle and not idle[0].reusable(now, self._expiry):  # the oldest expire first
            idle.popleft().close()
        while idle:
            conn = idle.pop()  # newest first: keeps few connections warm, lets the rest expire
            if conn.reusable(now, self._expiry):
                return conn
            conn.close()
        return None

    def release(self, conn: _Connection, origin: _Origin, *, reusable: bool) -> None:
        """Called once per response, at the end of its body or when it is closed: pool or close, free the slot."""
        if reusable and not self._closed and not conn.closed and not conn.buffer:
            # An idle socket must read, or it would never see the server close it.
            conn.resume_reading()
            conn.idle_since = time.monotonic()
            self._idle.setdefault(origin, deque()).append(conn)
        else:
            conn.close()
        self._free_slot()

    def _free_slot(self) -> None:
        self._busy -= 1
        self._slots.release()

    def _make_room(self) -> None:
        """Before a new connection: close the oldest idle ones (any origin) so open sockets stay within the limit."""
        busy = self._busy  # requests in flight, this one included
        idle = sorted(
            ((c.idle_since, origin) for origin, conns in self._idle.items() for c in conns), reverse=True
        )
        while idle and busy + len(idle) > self._max:
            _, origin = idle.pop()
            self._idle[origin].popleft().close()

    def _abandon(self, conn: _Connection | None) -> None:
        """A request failed or was cancelled mid-way: its socket is in an unknown state."""
        if conn is not None:
            conn.close()
        self._free_slot()

    async def _connect(self, origin: _Origin, timeout: float | None, request: httpx.Request) -> _Connection:
        scheme, host, port = origin
        conn = _Connection()
        tls = self._ssl if scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: conn, host, port, ssl=tls, server_hostname=host if tls else None
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            conn.close()
            raise httpx.ConnectTimeout(f"Timed out connecting to {host}:{port}", request=request) from None
        except OSError as exc:  # refused, unreachable, DNS (gaierror) and TLS (SSLError) failures alike
            conn.close()
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        except BaseException:  # cancelled: a socket that connected in the meantime must not leak
            conn.close()
            raise
        return conn

    # -- one request ---------------------------------------------------------------------------------

    async def _exchange(
        self, conn: _Connection, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> tuple[h1.ResponseHead, bool]:
        """Send the request (head and body); read up to the response head. Also: was the request all sent?"""
        write_timeout = timeouts.get("write")
        headers = request.headers.raw
        chunked = any(k.lower() == b"transfer-encoding" and b"chunked" in v.lower() for k, v in headers)
        try:
            pieces = [h1.encode_request_head(request.method, request.url.raw_path, headers)]
        except h1.ProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from exc
        declared = request.headers.get("content-length")
        sent = 0
        batch = 0
        try:
            async for chunk in request.stream:  # type: ignore[union-attr]  # httpx gives async streams here
                if not chunk:
                    continue
                sent += len(chunk)
                batch += len(chunk)
                pieces.extend((b"%x\r\n" % len(chunk), chunk, b"\r\n") if chunked else (chunk,))
                if batch >= WRITE_BATCH:
                    await conn.write(pieces, write_timeout, request)
                    pieces, batch = [], 0
            if chunked:
                pieces.append(b"0\r\n\r\n")
            elif declared is not None and sent != int(declared):
                raise httpx.LocalProtocolError(
                    f"Request body was {sent} bytes, its Content-Length says {declared}", request=request
                )
            await conn.write(pieces, write_timeout, request)
            complete = True
        except httpx.WriteError:
            # The server may have answered early (a 413, a 401) and closed: prefer its answer, as httpcore does.
            if not conn.buffer:
                raise
            complete = False
        return await conn.read_head(timeouts.get("read"), request), complete


class _ResponseBody(httpx.AsyncByteStream):
    """A streamed response body (a download, or one of unknown size); gives the connection back at its end."""

    def __init__(
        self,
        transport: KeepAliveTransport,
        conn: _Connection,
        origin: _Origin,
        pieces: AsyncIterator[bytes],
        reusable: bool,
    ) -> None:
        self._transport = transport
        self._conn: _Connection | None = conn
        self._origin = origin
        self._pieces = pieces
        self._reusable = reusable

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._conn is None:
            raise httpx.StreamClosed()
        try:
            async for piece in self._pieces:
                yield piece
        except BaseException:
            self._finish(reusable=False)
            raise
        self._finish(reusable=self._reusable)

    async def aclose(self) -> None:
        # Closed before the end (an error, or a caller that stopped reading): the socket holds the rest of
        # the body, so it cannot serve another request.
        self._finish(reusable=False)
        await self._pieces.aclose()  # type: ignore[attr-defined]  # an async generator

    def _finish(self, *, reusable: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._transport.release(conn, self._origin, reusable=reusable)
