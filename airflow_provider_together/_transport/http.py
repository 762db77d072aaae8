"""
The pure HTTP core of the hook: request specs, request building and error mapping.

Nothing here sends a request, sleeps or touches a file, so the sync and async shells (``_transport.drivers``)
share every decision, and most of it is tested without any HTTP mocking (the A4/A5 ``BaseClient`` idea).

.. seealso:: https://docs.together.ai/reference/errors
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import httpx

from airflow_provider_together import __version__
from airflow_provider_together.exceptions import (
    TogetherAPIError,
    TogetherAuthError,
    TogetherBadRequestError,
    TogetherNotFoundError,
    TogetherRateLimitError,
    TogetherResponseError,
    TogetherServerError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from airflow_provider_together._transport.settings import TogetherSettings

USER_AGENT = f"airflow-provider-together/{__version__} httpx/{httpx.__version__}"
# What an httpx client adds to every request (gzip and deflate decoding are built into httpx), plus JSON.
_DEFAULT_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate",
}
# Headers Together (and Cloudflare in front of it) use for a request id; the first one present wins.
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-together-request-id", "cf-ray")
_REDACTED = "***"
_MAX_MESSAGE = 500


class Retry(Enum):
    """How a request may be resent; the retry policy (``_transport.retry``) reads this, nothing else does."""

    IDEMPOTENT = "idempotent"
    """Safe to resend after any transient failure: connect errors, timeouts, 408, 429, 5xx."""
    SUBMIT = "submit"
    """Creates something billable: resent only if the server cannot have acted (connect error, 429)."""


@dataclass(frozen=True)
class FileRegion:
    """A byte range of a local file to send as a streamed request body (never read whole)."""

    path: Path
    offset: int
    length: int


@dataclass(frozen=True)
class Spec:
    """
    One HTTP request, described without doing it; the drivers turn it into an ``httpx.Request``.

    :param method: HTTP method.
    :param url: a path under the base URL (``/fine-tunes``) or, with ``external=True``, an absolute URL.
    :param retry: how it may be resent (see :class:`Retry`).
    :param ok: extra statuses that are answers, not errors (``302``/``409`` of the upload-URL request).
    :param external: an absolute presigned URL: no ``Authorization`` header is sent to it.
    :param follow_redirects: follow 3xx answers (downloads only: the API itself never redirects, so a
        redirect on an API call is an unreadable answer, not a hop to follow).
    :param body: a file range streamed as the body, with ``Content-Length`` (never chunked).
    :param sink: stream a 200/206 response body into this file instead of memory.
    :param resume_from: where a 206 body starts in ``sink`` (a 200 rewrites the file from byte 0).
    :param read_timeout: override of the read timeout (an upload's answer can take a while).
    """

    method: str
    url: str
    params: Mapping[str, str | int] | None = None
    json: Any = None
    form: Mapping[str, str] | None = None
    headers: Mapping[str, str] | None = None
    retry: Retry = Retry.IDEMPOTENT
    ok: frozenset[int] = frozenset()
    external: bool = False
    follow_redirects: bool = False
    body: FileRegion | None = None
    sink: Path | None = None
    resume_from: int = 0
    read_timeout: float | None = None

    def describe(self) -> str:
        """``METHOD url`` without the query string: presigned URLs carry signatures in it."""
        target = urlsplit(self.url)._replace(query="", fragment="").geturl() if self.external else self.url
        return f"{self.method} {target}"


def build_request(spec: Spec, settings: TogetherSettings, content: Any = None) -> httpx.Request:
    """
    Build the ``httpx.Request`` for ``spec``; ``content`` is the driver's (sync or async) body iterator.

    The key goes on each API request rather than on the client, so a presigned upload URL never sees it.
    Built directly rather than with ``Client.build_request``: the client has nothing to merge (no base URL,
    cookies or auth), and in the triggerer, where every poll builds one, its merging was a sixth of the
    CPU of a poll. The headers are what the client would have added, plus ours.
    """
    headers = dict(_DEFAULT_HEADERS)
    if not spec.external:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    if spec.body is not None:
        headers["Content-Length"] = str(spec.body.length)
    if spec.headers:
        headers.update(spec.headers)
    url = spec.url if spec.external else settings.base_url + spec.url
    # Text-only multipart parts, as the v3 SDK sends them: ``(None, value)`` means "no filename".
    files = {k: (None, v) for k, v in spec.form.items()} if spec.form is not None else None
    return httpx.Request(
        spec.method,
        _parsed_url(url) if not spec.params and not spec.external else url,
        params=spec.params,
        json=spec.json,
        files=files,
        content=content,
        headers=headers,
        extensions={"timeout": settings.httpx_timeout(read=spec.read_timeout).as_dict()},
    )


@functools.lru_cache(maxsize=4096)
def _parsed_url(url: str) -> httpx.URL:
    # A triggerer polls the same few URLs per job every interval: parse each once (httpx.URL is immutable).
    return httpx.URL(url)


def request_id(headers: httpx.Headers) -> str | None:
    """The request id Together (or Cloudflare) attached to a response, if any."""
    for name in REQUEST_ID_HEADERS:
        value: str | None = headers.get(name)
        if value:
            return value
    return None


def redact(text: str, secret: str) -> str:
    """Remove ``secret`` from ``text``: error bodies can echo headers back, and the key must never leak."""
    return text.replace(secret, _REDACTED) if secret and len(secret) >= 4 else text


_STATUS_ERRORS: dict[int, type[TogetherAPIError]] = {
    400: TogetherBadRequestError,
    401: TogetherAuthError,
    402: TogetherBadRequestError,
    403: TogetherAuthError,
    404: TogetherNotFoundError,
    409: TogetherBadRequestError,
    422: TogetherBadRequestError,
    429: TogetherRateLimitError,
}


def error_for_response(response: httpx.Response, *, secret: str = "", context: str = "") -> TogetherAPIError:
    """
    Map an error response to the exception tree, with the API's own message, ``param`` and ``code``.

    Handles the ``{"error": {...}}`` shape, the bare ``{"message": ...}`` of the limits endpoint, and
    non-JSON bodies (a proxy's HTML page is summarised, not dumped).

    :param secret: the API key, scrubbed from every string that ends up in the exception.
    :param context: ``METHOD path`` of the request, prefixed to the message.
    """
    status = response.status_code
    body: Any = None
    message = ""
    param = code = None
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        message = response.text.strip()[:_MAX_MESSAGE]
    if isinstance(body, dict):
        err = body.get("error")
        details = err if isinstance(err, dict) else body
        message = str(details.get("message") or (err if isinstance(err, str) else "") or "")
        param = _text(details.get("param"))
        code = _text(details.get("code")) or _text(details.get("type"))
    if not message:
        message = response.reason_phrase or "error"
    if context:
        message = f"{context}: {message}"
    if status >= 500:
        cls: type[TogetherAPIError] = TogetherServerError
    else:
        cls = _STATUS_ERRORS.get(status, TogetherAPIError)
    body = json.loads(redact(json.dumps(body), secret)) if secret and body is not None else body
    return cls(
        redact(message[:_MAX_MESSAGE], secret),
        status_code=status,
        request_id=request_id(response.headers),
        param=param,
        code=code,
        body=body,
    )


#: How much of an unreadable body an error message quotes.
BODY_START = 200


def unreadable(
    spec: Spec, response: httpx.Response, reason: str, *, secret: str = ""
) -> TogetherResponseError:
    """
    The error for an answer that cannot be read as ``spec`` expects, quoting its first bytes (scrubbed).

    :param reason: what is wrong, in a few words ("not JSON", "cut short", the validation error...).
    """
    try:
        start = response.content[:BODY_START].decode("utf-8", "replace")
    except httpx.ResponseNotRead:  # refused before the body was read (too large)
        start = ""
    start = redact(start, secret)
    reason = redact(reason, secret)
    status = response.status_code
    quoted = f"; the body starts {start!r}" if start else ""
    return TogetherResponseError(
        f"{spec.describe()} answered {status} with an unreadable body ({reason[:_MAX_MESSAGE]}){quoted}",
        method=spec.method,
        path=spec.describe().split(" ", 1)[1],
        status_code=status,
        body_start=start,
        request_id=request_id(response.headers),
    )


def raise_for_response(response: httpx.Response, *, secret: str = "", context: str = "") -> None:
    """Raise the mapped :class:`TogetherAPIError` unless ``response`` is a success (below 400)."""
    if response.status_code >= 400:
        raise error_for_response(response, secret=secret, context=context)


def raise_error(response: httpx.Response, *, secret: str = "", context: str = "") -> NoReturn:
    """Raise the mapped error for a response already known to be an error."""
    raise error_for_response(response, secret=secret, context=context)


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
