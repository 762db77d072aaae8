"""
The pure HTTP core of the hook: settings from a Connection, request specs, and error mapping.

Nothing here sends a request, sleeps or touches a file, so the sync and async shells (``_drivers``)
share every decision, and most of it is tested without any HTTP mocking (the A4/A5 ``BaseClient`` idea).

.. seealso:: https://docs.together.ai/reference/errors
"""

from __future__ import annotations

import ipaddress
import json
import math
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx

from airflow_provider_together import __version__
from airflow_provider_together.exceptions import (
    TogetherAPIError,
    TogetherAuthError,
    TogetherBadRequestError,
    TogetherConfigError,
    TogetherNotFoundError,
    TogetherRateLimitError,
    TogetherServerError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

DEFAULT_BASE_URL = "https://api.together.ai/v1"
USER_AGENT = f"airflow-provider-together/{__version__} httpx/{httpx.__version__}"
# Headers Together (and Cloudflare in front of it) use for a request id; the first one present wins.
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-together-request-id", "cf-ray")
_REDACTED = "***"
_MAX_MESSAGE = 500


class Retry(Enum):
    """How a request may be resent; the retry policy (``_retry``) reads this, nothing else does."""

    IDEMPOTENT = "idempotent"
    """Safe to resend after any transient failure: connect errors, timeouts, 408, 429, 5xx."""
    SUBMIT = "submit"
    """Creates something billable: resent only if the server cannot have acted (connect error, 429)."""


@dataclass(frozen=True)
class TogetherSettings:
    """
    Everything the hook needs from the Airflow connection, resolved once and cached.

    :param base_url: normalised API root, always ending in ``/v1``.
    :param api_key: bearer token; excluded from ``repr`` so it never reaches a log line.
    :param timeout: seconds per read/write/pool wait (``extra.request_timeout``).
    :param connect_timeout: seconds to establish a connection (``extra.connect_timeout``).
    :param max_retries: resends after the first attempt (``extra.max_retries``).
    :param retry_delay: first exponential back-off step in seconds (``extra.retry_delay``).
    :param retry_max_delay: cap of the exponential back-off (``extra.retry_max_delay``).
    :param max_in_flight: async requests in flight per (event loop, connection); more queue
        (``extra.max_concurrent_requests``).
    """

    base_url: str = DEFAULT_BASE_URL
    api_key: str = field(default="", repr=False)
    timeout: float = 60.0
    connect_timeout: float = 5.0
    max_retries: int = 2
    retry_delay: float = 1.0
    retry_max_delay: float = 10.0
    max_in_flight: int = 32

    @property
    def allows_plain_http(self) -> bool:
        """Whether presigned upload URLs may be plain http: only when the API itself is http on loopback."""
        parts = urlsplit(self.base_url)
        return parts.scheme == "http" and _is_loopback(parts.hostname or "")

    def httpx_timeout(self, *, read: float | None = None) -> httpx.Timeout:
        """The httpx timeout for one request; ``read`` overrides the read timeout (uploads wait longer)."""
        return httpx.Timeout(self.timeout, connect=self.connect_timeout, read=read or self.timeout)


# (extra key, settings attribute, type, minimum)
_EXTRAS: tuple[tuple[str, str, type, float], ...] = (
    ("request_timeout", "timeout", float, 1),
    ("connect_timeout", "connect_timeout", float, 0.1),
    ("max_retries", "max_retries", int, 0),
    ("retry_delay", "retry_delay", float, 0),
    ("retry_max_delay", "retry_max_delay", float, 0),
    ("max_concurrent_requests", "max_in_flight", int, 1),
)


def settings_from_connection(
    *, host: str | None, password: str | None, schema: str | None, port: int | None, extra: Mapping[str, Any]
) -> TogetherSettings:
    """
    Build settings from a connection's fields, checking every extra at once.

    URI-form connections deliver extras as strings (``?max_retries=3``), so numbers are coerced here
    rather than trusted. Problems raise :class:`TogetherConfigError` naming the field, before any HTTP call.
    """
    problems: list[tuple[str, str]] = []
    values: dict[str, Any] = {}
    for key, attr, kind, minimum in _EXTRAS:
        raw = extra.get(key)
        if raw is None or raw == "":
            continue
        number = _coerce(raw, kind)
        if number is None:
            problems.append((f"extra.{key}", f"must be {'an integer' if kind is int else 'a number'}"))
            continue
        if number < minimum:
            problems.append((f"extra.{key}", f"must be >= {minimum}"))
            continue
        values[attr] = number
    if not password:
        problems.append(("password", "the API key is empty: set it as the connection's password"))
    try:
        base_url = normalize_base_url(host, schema=schema, port=port)
    except ValueError as exc:
        problems.append(("host", str(exc)))
        base_url = DEFAULT_BASE_URL
    if problems:
        raise TogetherConfigError(problems, heading="Invalid Together connection")
    settings = TogetherSettings(base_url=base_url, api_key=password or "", **values)
    if settings.connect_timeout > settings.timeout:
        settings = replace(settings, connect_timeout=settings.timeout)
    return settings


def _coerce(raw: Any, kind: type) -> float | int | None:
    if isinstance(raw, bool):
        return None
    try:
        number = float(raw)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    if kind is int:
        return int(number) if number.is_integer() else None
    return number


def normalize_base_url(host: str | None, *, schema: str | None = None, port: int | None = None) -> str:
    """
    Turn whatever users type as the connection host into ``scheme://host[:port]/.../v1``.

    Accepted: empty (the default), ``api.together.ai``, ``https://api.together.ai``, either with ``/v1``,
    and the URI form (``host`` plus ``schema="v1"``). A bare loopback host defaults to http, because the
    local emulator is the only plain-http Together there is.
    """
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        bare = urlsplit(f"//{host}").hostname or ""
        host = f"{'http' if _is_loopback(bare) else 'https'}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{host!r} is not an http(s) URL")
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if schema and not path.endswith("/" + schema.strip("/")):
        path = f"{path}/{schema.strip('/')}"
    if not path.endswith("/v1"):
        path = f"{path}/v1"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


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
    follow_redirects: bool = True
    body: FileRegion | None = None
    sink: Path | None = None
    resume_from: int = 0
    read_timeout: float | None = None

    def describe(self) -> str:
        """``METHOD url`` without the query string: presigned URLs carry signatures in it."""
        target = urlsplit(self.url)._replace(query="", fragment="").geturl() if self.external else self.url
        return f"{self.method} {target}"


def build_request(
    client: httpx.Client | httpx.AsyncClient, spec: Spec, settings: TogetherSettings, content: Any = None
) -> httpx.Request:
    """
    Build the ``httpx.Request`` for ``spec``; ``content`` is the driver's (sync or async) body iterator.

    The key goes on each API request rather than on the client, so a presigned upload URL never sees it.
    """
    headers = {"Accept": "application/json"}
    if not spec.external:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    if spec.body is not None:
        headers["Content-Length"] = str(spec.body.length)
    if spec.headers:
        headers.update(spec.headers)
    url = spec.url if spec.external else settings.base_url + spec.url
    # Text-only multipart parts, as the v3 SDK sends them: ``(None, value)`` means "no filename".
    files = {k: (None, v) for k, v in spec.form.items()} if spec.form is not None else None
    return client.build_request(
        spec.method,
        url,
        params=spec.params,
        json=spec.json,
        files=files,
        content=content,
        headers=headers,
        timeout=settings.httpx_timeout(read=spec.read_timeout),
    )


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


def raise_for_response(response: httpx.Response, *, secret: str = "", context: str = "") -> None:
    """Raise the mapped :class:`TogetherAPIError` unless ``response`` is a success (below 400)."""
    if response.status_code >= 400:
        raise error_for_response(response, secret=secret, context=context)


def raise_error(response: httpx.Response, *, secret: str = "", context: str = "") -> NoReturn:
    """Raise the mapped error for a response already known to be an error."""
    raise error_for_response(response, secret=secret, context=context)


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
