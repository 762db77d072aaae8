"""
The two shells: drive a flow (``_transport.flow``) with ``httpx.Client`` or with ``httpx.AsyncClient``.

They only send, sleep, stream and run blocking work; every decision (what to send, whether to retry,
what an answer means) is in the flow. The two halves mirror each other line for line; a change to one must
be made to the other. Both send with the client's public ``send``: the async client's own ``send`` is the
short path to aiohttp (``_transport.aio.AiohttpClient``).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import IO, TYPE_CHECKING, Any, TypeVar

import httpx

from airflow_provider_together._transport.body import BodyRefused, CappedBody
from airflow_provider_together._transport.flow import MIB, Gather, Run, Send, Sleep
from airflow_provider_together._transport.http import build_request, unreadable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    from airflow_provider_together._transport.flow import Action, Flow
    from airflow_provider_together._transport.http import FileRegion, Spec
    from airflow_provider_together._transport.settings import TogetherSettings
    from airflow_provider_together.exceptions import TogetherResponseError

T = TypeVar("T")

# 1 MiB upload reads: small chunks cost Python overhead per call and cap throughput well below curl's.
CHUNK = MIB


# -- sync -------------------------------------------------------------------------------------------


def run_flow(
    flow: Flow[T], client: httpx.Client, settings: TogetherSettings, sleep: Callable[[float], Any]
) -> T:
    """Drive ``flow`` to its return value; failures of an action are thrown into the flow at its ``yield``."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            action = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value, error = None, None
        try:
            value = _perform(action, client, settings, sleep)
        except Exception as exc:  # handed to the flow, which re-raises whatever it does not handle
            error = exc


def _perform(
    action: Action, client: httpx.Client, settings: TogetherSettings, sleep: Callable[[float], Any]
) -> Any:
    if isinstance(action, Send):
        return _send(client, action.spec, settings)
    if isinstance(action, Sleep):
        return sleep(action.seconds)
    if isinstance(action, Run):
        return action.fn(*action.args)
    return _gather(action, lambda flow: run_flow(flow, client, settings, sleep))


def _send(client: httpx.Client, spec: Spec, settings: TogetherSettings) -> httpx.Response:
    content = file_chunks(spec.body) if spec.body is not None else None
    request = build_request(spec, settings, content)
    response = client.send(request, follow_redirects=spec.follow_redirects, stream=True)
    try:
        if spec.sink is not None and response.status_code in (200, 206):
            with open_sink(spec, response.status_code) as sink:
                # No chunk_size: bytes hit the disk as they arrive, so a dropped stream keeps them for Range.
                for chunk in response.iter_bytes():
                    sink.write(chunk)
        elif not response.is_stream_consumed:  # (a mock transport hands over a response already read)
            body = CappedRead(response, spec, settings)
            for chunk in response.iter_raw():
                body.feed(chunk)
            return body.response()
    finally:
        response.close()
    return response


def _gather(action: Gather, drive: Callable[[Flow[Any]], Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=max(1, action.limit), thread_name_prefix="together-upload") as pool:
        futures = [pool.submit(drive, flow) for flow in action.flows]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()]
            if failed:
                raise failed[0]  # type: ignore[misc]
            return [f.result() for f in futures]
        finally:
            for future in futures:
                future.cancel()


# -- async ------------------------------------------------------------------------------------------


async def arun_flow(
    flow: Flow[T],
    client: httpx.AsyncClient,
    settings: TogetherSettings,
    sleep: Callable[[float], Awaitable[Any]],
    gate: asyncio.Semaphore,
) -> T:
    """Async twin of :func:`run_flow`; ``gate`` bounds the requests in flight on the shared client."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            action = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value, error = None, None
        try:
            value = await _aperform(action, client, settings, sleep, gate)
        except Exception as exc:  # handed to the flow, which re-raises whatever it does not handle
            error = exc


async def _aperform(
    action: Action,
    client: httpx.AsyncClient,
    settings: TogetherSettings,
    sleep: Callable[[float], Awaitable[Any]],
    gate: asyncio.Semaphore,
) -> Any:
    if isinstance(action, Send):
        async with gate:
            return await _asend(client, action.spec, settings)
    if isinstance(action, Sleep):
        return await sleep(action.seconds)
    if isinstance(action, Run):
        return await asyncio.to_thread(action.fn, *action.args)
    return await _agather(action, lambda flow: arun_flow(flow, client, settings, sleep, gate))


async def _asend(client: httpx.AsyncClient, spec: Spec, settings: TogetherSettings) -> httpx.Response:
    content = afile_chunks(spec.body) if spec.body is not None else None
    request = build_request(spec, settings, content)
    response = await client.send(request, follow_redirects=spec.follow_redirects, stream=True)
    try:
        if spec.sink is not None and response.status_code in (200, 206):
            with open_sink(spec, response.status_code) as sink:
                # No chunk_size: bytes hit the disk as they arrive, so a dropped stream keeps them for Range.
                async for chunk in response.aiter_bytes():
                    sink.write(chunk)
        elif not response.is_stream_consumed:  # (a mock transport hands over a response already read)
            body = CappedRead(response, spec, settings)
            async for chunk in response.aiter_raw():
                body.feed(chunk)
            return body.response()
    finally:
        await response.aclose()
    return response


async def _agather(action: Gather, drive: Callable[[Flow[Any]], Awaitable[Any]]) -> list[Any]:
    limit = asyncio.Semaphore(max(1, action.limit))

    async def bounded(flow: Flow[Any]) -> Any:
        async with limit:
            return await drive(flow)

    tasks = [asyncio.ensure_future(bounded(flow)) for flow in action.flows]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception()]
        if failed:
            raise failed[0]  # type: ignore[misc]
        return [t.result() for t in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- bounded API answers (shared) -------------------------------------------------------------------


class CappedRead:
    """
    Read an API answer's body within the connection's cap on its decoded size (``_transport.body``).

    A refusal (too large, a coding we did not ask for, corrupt gzip) is the flow's unreadable-answer error.
    The whole body must also arrive within ``request_timeout``: the read timeout of both transports is per
    read, so a body trickling in a byte a second would otherwise hold the call (and a triggerer's
    connection) forever. That case is a read timeout, like a silent server.
    """

    def __init__(self, response: httpx.Response, spec: Spec, settings: TogetherSettings) -> None:
        self._response, self._spec, self._settings = response, spec, settings
        self._deadline = time.monotonic() + settings.timeout
        try:
            self._body = CappedBody(response.headers.get("content-encoding", ""), settings.max_response_bytes)
        except BodyRefused as exc:
            raise self._refused(exc) from exc

    def feed(self, chunk: bytes) -> None:
        """Take the next raw chunk."""
        if time.monotonic() > self._deadline:
            raise httpx.ReadTimeout(
                f"the answer's body did not arrive within request_timeout ({self._settings.timeout:g} s)",
                request=self._response.request,
            )
        try:
            self._body.feed(chunk)
        except BodyRefused as exc:
            raise self._refused(exc) from exc

    def response(self) -> httpx.Response:
        """The answer with its body read and decoded (so without ``Content-Encoding``), for the flow."""
        try:
            content = self._body.finish()
        except BodyRefused as exc:
            raise self._refused(exc) from exc
        original = self._response
        headers = [
            (name, value)
            for name, value in original.headers.raw
            if name.lower() not in (b"content-encoding", b"content-length")
        ]
        return httpx.Response(
            original.status_code,
            headers=headers,
            content=content,
            request=original.request,
            extensions=original.extensions,
        )

    def _refused(self, exc: BodyRefused) -> TogetherResponseError:
        return unreadable(self._spec, self._response, str(exc), secret=self._settings.api_key)


# -- local files (shared) ---------------------------------------------------------------------------


def file_chunks(region: FileRegion) -> Iterator[bytes]:
    """Read ``region`` in 1 MiB chunks: constant memory whatever the file size."""
    with open(region.path, "rb") as handle:
        handle.seek(region.offset)
        remaining = region.length
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                raise OSError(f"{region.path} shrank while it was being uploaded")
            remaining -= len(chunk)
            yield chunk


async def afile_chunks(region: FileRegion) -> AsyncIterator[bytes]:
    """
    Async view of :func:`file_chunks`.

    The 1 MiB reads stay on the event loop: a page-cache read is far cheaper than a thread hop per chunk,
    and uploads run in a worker's task, not among the triggerer's polls.
    """
    for chunk in file_chunks(region):
        yield chunk


def open_sink(spec: Spec, status: int) -> IO[bytes]:
    """Open the download target: continue a 206 at ``resume_from``, rewrite from byte 0 on a 200."""
    assert spec.sink is not None
    if status == 206 and spec.resume_from > 0:
        handle = open(spec.sink, "r+b")  # closed by the caller's ``with``
        handle.seek(spec.resume_from)
        handle.truncate()
        return handle
    return open(spec.sink, "wb")
