"""
Settings of the ``together`` connection: base-URL normalisation, typed extras, defaults.

Pure: it reads the connection's fields, never the network, so a wrong connection fails with every problem
named (``TogetherConfigError``) before the first request.
"""

from __future__ import annotations

import ipaddress
import math
import os
import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from airflow_provider_together.exceptions import TogetherConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_BASE_URL = "https://api.together.ai/v1"


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
    :param async_transport: what the async client sends with (``extra.async_transport``): ``aiohttp``
        (``_transport.aio``), or ``httpx``, httpx's own transport.
    :param ca_bundle: a PEM file of the CAs to trust instead of certifi's (``extra.ca_bundle``), for both
        clients.
    :param max_response_mb: the most MiB of *decoded* body an API answer may have (``extra.max_response_mb``,
        default 32); past it the call fails without reading or inflating the rest. Downloads are not capped.
    """

    base_url: str = DEFAULT_BASE_URL
    api_key: str = field(default="", repr=False)
    timeout: float = 60.0
    connect_timeout: float = 5.0
    max_retries: int = 2
    retry_delay: float = 1.0
    retry_max_delay: float = 10.0
    max_in_flight: int = 8
    async_transport: str = "aiohttp"
    ca_bundle: str | None = None
    max_response_mb: float = 32.0

    @property
    def max_response_bytes(self) -> int:
        """:attr:`max_response_mb` in bytes."""
        return int(self.max_response_mb * (1 << 20))

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
    ("max_response_mb", "max_response_mb", float, 1e-6),
)
ASYNC_TRANSPORTS = ("aiohttp", "httpx")
# Accepted for one release: 0.1.0's own HTTP/1.1 transport, replaced by aiohttp.
_DEPRECATED_TRANSPORTS = {"keepalive": "aiohttp"}


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
    transport = extra.get("async_transport")
    if isinstance(transport, str) and transport in _DEPRECATED_TRANSPORTS:
        warnings.warn(
            f"extra.async_transport {transport!r} is deprecated and now means "
            f"{_DEPRECATED_TRANSPORTS[transport]!r}; set it to 'aiohttp' or remove it",
            DeprecationWarning,
            stacklevel=2,
        )
        transport = _DEPRECATED_TRANSPORTS[transport]
    if transport not in (None, ""):
        if transport in ASYNC_TRANSPORTS:
            values["async_transport"] = transport
        else:
            problems.append(("extra.async_transport", f"must be one of {', '.join(ASYNC_TRANSPORTS)}"))
    ca_bundle = extra.get("ca_bundle")
    if ca_bundle not in (None, ""):
        if isinstance(ca_bundle, str) and os.path.isfile(ca_bundle):
            values["ca_bundle"] = ca_bundle
        else:
            problems.append(("extra.ca_bundle", "must be the path of a readable PEM file of CA certificates"))
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

    :raises ValueError: not an http(s) URL, or plain http to a host that is not loopback: the API key
        would cross a network in clear text.
    """
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        bare = urlsplit(f"//{host}").hostname or ""
        host = f"{'http' if is_loopback(bare) else 'https'}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{host!r} is not an http(s) URL")
    if not cleartext_safe(host):
        raise ValueError(
            f"{parts.scheme}://{parts.hostname} would send the API key in clear text: use https "
            "(plain http is accepted only for loopback hosts: 127.0.0.0/8, ::1, localhost)"
        )
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if schema and not path.endswith("/" + schema.strip("/")):
        path = f"{path}/{schema.strip('/')}"
    if not path.endswith("/v1"):
        path = f"{path}/v1"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def cleartext_safe(url: str) -> bool:
    """
    Whether ``url`` may carry a secret or training data: https anywhere, plain http only on loopback.

    The one rule for the connection's base URL (the API key) and for presigned upload URLs (the training
    data), so that neither can be talked into clear text over a network.
    """
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and is_loopback(parts.hostname or "")


def is_loopback(hostname: str) -> bool:
    """Whether ``hostname`` is ``localhost`` or a loopback address (127.0.0.0/8, ``::1``)."""
    if hostname.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
