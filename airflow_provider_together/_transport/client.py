"""
httpx clients: one shared TLS context, and one ``AsyncClient`` per (event loop, connection id).

Building a client costs ~25 ms of CPU, almost all of it loading CA certificates into a new
``ssl.SSLContext``; the triggerer runs hundreds of triggers in one process and one loop, so they share
one client (and one TLS context) per connection instead of building one per poll. An
``asyncio.Semaphore`` sized like the connection pool bounds the requests in flight: a burst of 1,000
polls queues on the semaphore instead of ending in ``httpx.PoolTimeout``.

Triggers count themselves in and out of their loop (:func:`loop_user`); when the last one leaves and no request
is in flight, the loop's clients are closed. A triggerer only pays a new connection for the next trigger after
an idle moment, and a loop that ends with its trigger (``dag.test`` runs each trigger in ``asyncio.run``)
closes its aiohttp session instead of logging "Unclosed client session" when it is collected.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import ssl
import time
import warnings
import weakref
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from airflow_provider_together._transport.http import USER_AGENT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from airflow_provider_together._transport.settings import TogetherSettings

log = logging.getLogger("airflow_provider_together.hooks")

# Connections are re-read this often, so a rotated API key reaches a long-running triggerer.
SETTINGS_TTL = 300.0
# After a failed re-read, keep the known settings this long before trying again.
RETRY_RESOLVE_AFTER = 30.0


@functools.lru_cache(maxsize=8)
def ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """
    The process-wide TLS context of a CA bundle: built once per bundle, ~25 ms each.

    :param ca_bundle: a PEM file of trusted CAs (``extra.ca_bundle``); ``None`` means certifi's roots, as
        httpx's default.
    """
    if ca_bundle is None:
        return httpx.create_ssl_context()
    return ssl.create_default_context(cafile=ca_bundle)


def _limits(settings: TogetherSettings) -> httpx.Limits:
    # As many pooled connections as requests allowed in flight: a permit holder always gets a connection.
    return httpx.Limits(
        max_connections=settings.max_in_flight, max_keepalive_connections=settings.max_in_flight
    )


def new_client(settings: TogetherSettings) -> httpx.Client:
    """A sync client for one hook call (cheap thanks to the shared TLS context; closed after the call)."""
    return httpx.Client(
        headers={"User-Agent": USER_AGENT},
        verify=ssl_context(settings.ca_bundle),
        timeout=settings.httpx_timeout(),
        limits=_limits(settings),
    )


def new_async_client(settings: TogetherSettings) -> httpx.AsyncClient:
    """
    The async client shared by every hook of one connection on one event loop.

    It sends through aiohttp (:class:`~airflow_provider_together._transport.aio.AiohttpClient`: a poll
    costs about half of httpx's default transport, see that module) unless the connection asks for
    httpx's own transport (``extra.async_transport: "httpx"``). Either way, proxies come from
    ``HTTP(S)_PROXY`` / ``NO_PROXY``.
    """
    context = ssl_context(settings.ca_bundle)
    if settings.async_transport == "aiohttp":
        from airflow_provider_together._transport.aio import AiohttpClient, AiohttpTransport

        return AiohttpClient(
            AiohttpTransport(ssl_context=context, max_connections=settings.max_in_flight),
            headers={"User-Agent": USER_AGENT},
            timeout=settings.httpx_timeout(),
        )
    return httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT},
        verify=context,
        timeout=settings.httpx_timeout(),
        limits=_limits(settings),
    )


@dataclass
class AsyncSession:
    """What async calls of one connection share on one loop: settings, client and in-flight gate."""

    settings: TogetherSettings
    client: httpx.AsyncClient
    gate: asyncio.Semaphore
    expires: float
    #: Hook calls running on this session (a client is only closed for being idle when this is 0).
    in_flight: int = 0


@dataclass
class _LoopState:
    sessions: dict[str, AsyncSession] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    closing: set[asyncio.Task[None]] = field(default_factory=set)
    users: int = 0


# Keyed weakly by loop: a loop that is gone must not be handed a client bound to it.
_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()


async def session(
    conn_id: str, resolve: Callable[[], Awaitable[TogetherSettings]], *, ttl: float = SETTINGS_TTL
) -> AsyncSession:
    """
    Return the shared session of ``conn_id`` on the running loop, creating or refreshing it as needed.

    The hot path (a fresh session exists) is two dict lookups and a clock read. Concurrent first calls
    wait on one lock, so a burst of triggers resolves the connection once, not once each.

    :param resolve: fetches and parses the connection (asynchronously: never block the triggerer).
    """
    loop = asyncio.get_running_loop()
    state = _loop_state(loop)
    current = state.sessions.get(conn_id)
    if current is not None and time.monotonic() < current.expires:
        return current
    lock = state.locks.setdefault(conn_id, asyncio.Lock())
    async with lock:
        current = state.sessions.get(conn_id)
        now = time.monotonic()
        if current is not None and now < current.expires:
            return current
        try:
            settings = await resolve()
        except Exception:
            if current is None:
                raise
            log.warning(
                "Could not re-read connection %s; keeping its previous settings", conn_id, exc_info=True
            )
            current.expires = now + RETRY_RESOLVE_AFTER
            return current
        if current is not None and current.settings == settings:
            current.expires = now + ttl
            return current
        # Built in a thread: the first TLS context costs ~25 ms of CPU, too long to hold the triggerer's loop.
        client = await asyncio.to_thread(new_async_client, settings)
        fresh = AsyncSession(settings, client, asyncio.Semaphore(settings.max_in_flight), now + ttl)
        state.sessions[conn_id] = fresh
        if current is not None:
            # The connection changed: later calls use the new client; the old one closes in the background.
            task = loop.create_task(current.client.aclose())
            state.closing.add(task)
            task.add_done_callback(state.closing.discard)
        return fresh


def _loop_state(loop: asyncio.AbstractEventLoop) -> _LoopState:
    """The shared state of ``loop``, created on its first use (which also drops closed loops' state)."""
    state = _LOOPS.get(loop)
    if state is None:
        _forget_closed_loops()
        state = _LOOPS[loop] = _LoopState()
    return state


def _forget_closed_loops() -> None:
    """
    Drop the sessions of loops that were closed without :func:`aclose_sessions` (``asyncio.run`` callers).

    Their clients can no longer be closed (that needs their loop), and they keep the loop alive through
    their sockets; collect them now, quietly, instead of letting "unclosed transport" warnings fire at some
    random later moment. Runs only when a new loop appears, which a triggerer never does.
    """
    dead = [loop for loop in list(_LOOPS) if loop.is_closed()]
    if not dead:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        # Popped in here too: an aiohttp session with no reference cycle is freed (and warns) at once.
        for loop in dead:
            _LOOPS.pop(loop, None)
        gc.collect()


@asynccontextmanager
async def loop_user() -> AsyncIterator[None]:
    """
    Count a long-lived user of the running loop's clients (a trigger, for as long as it runs).

    When the last one leaves and none of the loop's clients has a call in flight, they are closed. A hook
    used outside a trigger is not counted and never closed under a call: its clients stay until then.
    """
    loop = asyncio.get_running_loop()
    state = _loop_state(loop)
    state.users += 1
    try:
        yield
    finally:
        state.users -= 1
        if state.users == 0 and _LOOPS.get(loop) is state:
            if all(s.in_flight == 0 for s in state.sessions.values()):
                await aclose_sessions()


async def aclose_sessions() -> None:
    """Close every shared client of the running loop (tests, or a loop about to end)."""
    state = _LOOPS.pop(asyncio.get_running_loop(), None)
    if state is None:
        return
    await asyncio.gather(
        *(s.client.aclose() for s in state.sessions.values()), *state.closing, return_exceptions=True
    )
