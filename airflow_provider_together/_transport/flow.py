"""
Operations as sans-I/O generators: every multi-step API call is written once and driven twice.

A flow *yields* what it needs done (:class:`Send` a request, :class:`Sleep`, :class:`Run` blocking local
work such as hashing, :class:`Gather` sub-flows concurrently) and receives the result, or has the failure
thrown in at the ``yield``. ``_drivers.run_flow`` performs the actions with ``httpx.Client`` and
``time.sleep``; ``_drivers.arun_flow`` with ``httpx.AsyncClient`` and ``asyncio.sleep``. So the upload
protocol, Range resume and the retry loop exist exactly once, and the shells cannot drift apart (the
ollama sync/async drift the style guide warns about).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx

from airflow_provider_together._transport.http import unreadable
from airflow_provider_together.exceptions import TogetherResponseError

if TYPE_CHECKING:
    from airflow_provider_together._transport.http import Spec
    from airflow_provider_together._transport.retry import RetryPolicy
    from airflow_provider_together._transport.settings import TogetherSettings

T = TypeVar("T")

GIB = 1 << 30
MIB = 1 << 20

log = logging.getLogger("airflow_provider_together.hooks")


@dataclass(frozen=True)
class Send:
    """Send ``spec``; the flow receives the ``httpx.Response`` (body read, or streamed to ``spec.sink``)."""

    spec: Spec


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` (through the hook's injectable sleep, so tests run instantly)."""

    seconds: float


@dataclass(frozen=True)
class Run:
    """Call ``fn(*args)`` for blocking local work; the async driver runs it in a worker thread."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Gather:
    """Drive ``flows`` concurrently, at most ``limit`` at a time; the flow receives their results in order."""

    flows: Sequence[Flow[Any]]
    limit: int


Action = Send | Sleep | Run | Gather
Flow = Generator[Action, Any, T]


@dataclass(frozen=True)
class UploadOptions:
    """
    How ``upload_file`` splits big files.

    :param multipart_threshold: files larger than this many bytes use the multipart flow (default 5 GiB,
        as the Together SDKs).
    :param part_size: target bytes per part (default 250 MiB); grown when the file would need more than
        ``max_parts`` parts. Together requires at least 5 MiB for every part but the last.
    :param concurrency: part uploads in flight at once (default 4).
    :param max_parts: upper bound on the number of parts (Together allows 250).
    """

    multipart_threshold: int = 5 * GIB
    part_size: int = 250 * MIB
    concurrency: int = 4
    max_parts: int = 250


@dataclass(frozen=True)
class Context:
    """What a flow may read: resolved settings, the retry policy, a monotonic clock and upload options."""

    settings: TogetherSettings
    policy: RetryPolicy
    clock: Callable[[], float] = time.monotonic
    uploads: UploadOptions = field(default_factory=UploadOptions)


def request(
    ctx: Context, spec: Spec, parse: Callable[[httpx.Response], T] | None = None
) -> Flow[httpx.Response | T]:
    """
    Send ``spec`` until it succeeds, resending as ``ctx.policy`` decides; return the final response.

    A response counts as success when it is 2xx or listed in ``spec.ok`` and, with ``parse``, when it
    parses: an answer that cannot be read (``parse`` raised ``ValueError`` or ``TypeError``, which covers
    JSON and pydantic errors; the driver refused a body over the size cap; a redirect the API never sends)
    is a :class:`TogetherResponseError`, resent for reads and ambiguous for a job creation. Anything else
    ends as the mapped exception once the policy says stop.
    """
    attempt = 0
    while True:
        unread: TogetherResponseError | None = None
        try:
            response: httpx.Response = yield Send(spec)
        except httpx.TransportError as exc:
            delay = ctx.policy.after_error(spec, exc, attempt)
            reason = type(exc).__name__
        except TogetherResponseError as exc:  # the driver would not read the body (over the cap)
            unread = exc
        except httpx.TooManyRedirects as exc:  # a download whose redirects loop
            unread = TogetherResponseError(
                f"{spec.describe()} redirected in a loop ({exc})",
                method=spec.method,
                path=spec.describe().split(" ", 1)[1],
                status_code=0,
            )
        else:
            status = response.status_code
            if 200 <= status < 300 or status in spec.ok:
                if parse is None:
                    return response
                try:
                    return parse(response)
                except (ValueError, TypeError) as exc:
                    unread = unreadable(spec, response, _why(exc), secret=ctx.settings.api_key)
            elif 300 <= status < 400:
                where = response.headers.get("location", "nowhere")
                reason = f"a {status} redirect to {urlsplit(where)._replace(query='').geturl()!r}"
                unread = unreadable(
                    spec,
                    response,
                    f"{reason}; the Together API does not redirect",
                    secret=ctx.settings.api_key,
                )
            else:
                delay = ctx.policy.after_response(spec, response, attempt, secret=ctx.settings.api_key)
                reason = str(status)
        if unread is not None:
            delay = ctx.policy.after_unreadable(spec, unread, attempt)
            reason = unread.message
        attempt += 1
        log.warning(
            "%s failed (%s); retry %d of %d in %.2f s",
            spec.describe(),
            reason,
            attempt,
            ctx.policy.max_retries,
            delay,
        )
        yield Sleep(delay)


def call(ctx: Context, spec: Spec, parse: Callable[[httpx.Response], T]) -> Flow[T]:
    """:func:`request` with ``parse``: the parsed answer, or :class:`TogetherResponseError` once retries ran out."""
    result = yield from request(ctx, spec, parse)
    return result  # type: ignore[return-value]  # with parse, request() returns parse's value


def _why(exc: BaseException) -> str:
    """A short reason for a parse failure: pydantic's first error, or the JSON decoder's message."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
        except (IndexError, TypeError):
            first = None
        if isinstance(first, dict):
            loc = ".".join(str(part) for part in first.get("loc", ())) or "body"
            return f"{loc}: {first.get('msg', 'invalid')}; not the expected shape"
    if isinstance(exc, UnicodeDecodeError):
        return f"not valid UTF-8 at byte {exc.start}"
    return f"{type(exc).__name__}: {exc}"
