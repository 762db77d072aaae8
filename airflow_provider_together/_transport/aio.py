"""
The async client's transport: aiohttp behind httpx's public transport interface (``httpx.AsyncBaseTransport``).

aiohttp does the HTTP/1.1 work (its C parser, keep-alive pool, TLS, proxies); httpx keeps the request and
response objects, their body decoding and the exception types the retry rules read (``_transport.retry``).
It is the async client of Airflow's own HTTP provider, and a poll through it costs about half of what one
through httpx's default transport (httpcore) costs, flat as the pool grows (docs/benchmarks.md).

Why not ``httpx-aiohttp``'s ``AiohttpTransport``, which does the same job? Two reasons, both measured:

* its exception map turns every ``aiohttp.ClientConnectionError`` into ``httpx.ConnectTimeout``, and
  ``ServerDisconnectedError`` (the server dropped the connection *after* the request was written) and a
  connection reset mid-answer are among them. ``ConnectTimeout`` means "never sent" to the retry rules, so
  a dropped job creation would be resent and could be paid twice. Here the aiohttp exception itself
  decides (:func:`map_error`): only a failure to connect (DNS, refused, TLS handshake, a pool wait) is
  "never sent"; anything after that is a read or protocol error, i.e. possibly sent;
* it converts headers, timeouts and URLs anew on every request, which cost about a third of the floor of
  a plain GET (0.55-0.8 ms against 0.4-0.5 ms here on the benchmark machine), and the triggerer sends a
  request per poll of every deferred job.

What it does: one ``aiohttp.ClientSession`` per transport (created on first use, inside the running loop),
at most ``max_connections`` connections, idle ones closed after ``keepalive_expiry``; request bodies
streamed from the ``httpx.Request`` (``Content-Length`` honoured, never buffered); response bodies
streamed to httpx undecoded (httpx decodes gzip/deflate, so both async transports decode alike and a body
can be read, capped or dropped chunk by chunk); httpx's ``connect``, ``read`` and ``pool`` timeouts
(aiohttp has no write timeout); proxies from ``HTTP(S)_PROXY`` / ``NO_PROXY`` (read once per transport,
as httpx reads them once per client). It never follows redirects and keeps no cookies: the hook needs
neither (the upload flow follows its own 302). aiohttp itself resends an idempotent request (GET, PUT,
DELETE) once, at once, when the connection drops before the answer (RFC 9112, 9.3.1); never a POST.
"""

from __future__ import annotations

import asyncio
import functools
import urllib.request
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
import yarl

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Mapping

#: Headers aiohttp would add on its own; the ``httpx.Request`` already carries what the hook sends.
_SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")

# The aiohttp exceptions raised before a byte of the request could reach the server: the connection (or
# its TLS handshake, or a proxy tunnel) was never established, or no pooled connection became free.
_NOT_SENT: tuple[type[BaseException], ...] = (aiohttp.ClientConnectorError, aiohttp.ServerFingerprintMismatch)
_CONNECT_TIMEOUT: tuple[type[BaseException], ...] = (aiohttp.ConnectionTimeoutError,)


def map_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """
    The httpx exception for an aiohttp failure, chosen by what the failure says about the request.

    ``ConnectError`` / ``ConnectTimeout``: the request never left (safe to resend, even a job creation).
    ``ReadTimeout``, ``ReadError``, ``RemoteProtocolError``: it may have reached the server.
    """
    message = str(exc) or type(exc).__name__
    if isinstance(exc, _NOT_SENT):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, _CONNECT_TIMEOUT):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's SocketTimeoutError: no byte within the read timeout
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientResponseError):  # an answer aiohttp's parser refused
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):  # a reset or drop once connected
        return httpx.ReadError(message, request=request)
    return httpx.TransportError(message, request=request)


_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float | None, read: float | None, pool: float | None) -> aiohttp.ClientTimeout:
    # aiohttp's ``connect`` covers the pool wait and the connection; ``sock_connect`` the connection alone.
    pool_and_connect = None if pool is None or connect is None else pool + connect
    return aiohttp.ClientTimeout(total=None, connect=pool_and_connect, sock_connect=connect, sock_read=read)


@functools.lru_cache(maxsize=4096)
def _aiohttp_url(url: str) -> yarl.URL:
    # httpx has already percent-encoded the URL; ``encoded=True`` keeps aiohttp from encoding it again.
    return yarl.URL(url, encoded=True)


class _ResponseBody(httpx.AsyncByteStream):
    """An aiohttp response body as httpx's stream: chunks as they arrive, aiohttp errors mapped."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except _ERRORS as exc:
            raise map_error(exc, self._request) from exc

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end; otherwise aiohttp closes the connection.
        self._response.release()


async def _request_body(stream: httpx.AsyncByteStream) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield chunk


class AiohttpTransport(httpx.AsyncBaseTransport):
    """
    Send ``httpx.Request`` objects with one ``aiohttp.ClientSession``.

    :param ssl_context: TLS settings for every https connection (CA roots, client certificates).
    :param max_connections: connections in the pool, in use or idle.
    :param keepalive_expiry: seconds an idle connection is kept for reuse.
    :param trust_env: route requests through ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY``, except the
        hosts of ``NO_PROXY``.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        max_connections: int,
        keepalive_expiry: float = 5.0,
        trust_env: bool = True,
    ) -> None:
        self._ssl_context = ssl_context
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._proxies: Mapping[str, str] = urllib.request.getproxies() if trust_env else {}
        self._proxy_for_origin: dict[tuple[str, str], tuple[str | None, dict[str, str] | None]] = {}
        self._session: aiohttp.ClientSession | None = None

    def _open_session(self) -> aiohttp.ClientSession:
        # Created here, not in ``__init__``: an aiohttp session belongs to the loop it is created on, and
        # the hook builds its client in a worker thread.
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry,
            ssl=self._ssl_context,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    def _proxy(self, url: httpx.URL) -> tuple[str | None, dict[str, str] | None]:
        """The proxy URL (without credentials) and its auth header for ``url``'s origin, decided once."""
        origin = (url.scheme, url.host)
        known = self._proxy_for_origin.get(origin)
        if known is not None:
            return known
        chosen: tuple[str | None, dict[str, str] | None] = (None, None)
        proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
        if proxy and not urllib.request.proxy_bypass(url.host):
            if "://" not in proxy:
                proxy = f"http://{proxy}"
            proxy_url = yarl.URL(proxy)
            headers = None
            if proxy_url.user is not None:
                auth = aiohttp.BasicAuth(proxy_url.user, proxy_url.password or "")
                headers = {"Proxy-Authorization": auth.encode()}
            chosen = (str(proxy_url.with_user(None)), headers)
        self._proxy_for_origin[origin] = chosen
        return chosen

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return its response as soon as the head has arrived (body streamed)."""
        session = self._session or self._open_session()
        timeout = request.extensions.get("timeout", {})
        data: Any
        try:
            data = request.content or None
        except httpx.RequestNotRead:
            data = _request_body(request.stream)  # type: ignore[arg-type]  # an async client's request
        # Original case, as httpx's own transport sends them; aiohttp frames the body itself.
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.headers.raw
            if k.lower() != b"transfer-encoding"
        ]
        url = request.url
        proxy, proxy_headers = self._proxy(url) if self._proxies else (None, None)
        try:
            response = await session.request(
                request.method,
                _aiohttp_url(str(url)),
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=_client_timeout(timeout.get("connect"), timeout.get("read"), timeout.get("pool")),
                proxy=proxy,
                proxy_headers=proxy_headers,
            )
        except _ERRORS as exc:
            raise map_error(exc, request) from exc
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_ResponseBody(response, request),
            request=request,
            extensions={
                "http_version": f"HTTP/{response.version.major}.{response.version.minor}".encode()
                if response.version
                else b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def aclose(self) -> None:
        """Close the session and its pooled connections."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class AiohttpClient(httpx.AsyncClient):
    """
    An ``httpx.AsyncClient`` whose :meth:`send` hands the request straight to its :class:`AiohttpTransport`.

    httpx's own ``send`` wraps each request in its auth, redirect, event-hook and cookie layers; this
    client has no auth, hooks or cookies to apply, and those layers cost a third of a trigger poll (cookie
    extraction alone builds two ``urllib`` objects per response). Everything else is the plain
    ``AsyncClient``. A redirect is followed, when asked, by httpx's own ``send`` (its rules: 303 becomes
    GET, the API key is dropped for another origin), from the first request again, which is why only a
    GET or HEAD is followed: no other request may be sent twice.

    :param transport: the aiohttp transport every request goes through (proxies are its job, so httpx's
        own proxy routing is off: ``trust_env=False``).
    """

    def __init__(self, transport: AiohttpTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, trust_env=False, **kwargs)
        self.aiohttp_transport = transport

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: httpx.Auth | Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: bool | Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        """Send ``request`` through aiohttp; see the class docstring for what is skipped."""
        if auth is not httpx.USE_CLIENT_DEFAULT:
            return await super().send(request, stream=stream, auth=auth, follow_redirects=follow_redirects)
        response = await self.aiohttp_transport.handle_async_request(request)
        follow = self.follow_redirects if follow_redirects is httpx.USE_CLIENT_DEFAULT else follow_redirects
        if follow and response.is_redirect and request.method in ("GET", "HEAD"):
            await response.aclose()
            return await super().send(request, stream=stream, follow_redirects=True)
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response
