"""
Hostile answers for the ``body``, ``truncate``, ``slow``, ``gzip_bomb`` and ``redirect`` faults.

What a corporate proxy, a load balancer in trouble or a buggy API release sends: so that users can test
their own DAGs against the answers the provider's hostile-server suite (``tests/test_hostile.py``) covers.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import zlib
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from airflow_provider_together.emulator.faults import FaultRule

__all__ = ["mangled", "replacement"]


def raw_body(rule: FaultRule) -> Response:
    """The ``body`` fault: ``status`` with exactly ``body`` (text) or ``body_b64`` (bytes, e.g. bad UTF-8)."""
    content = base64.b64decode(rule.body_b64) if rule.body_b64 else (rule.body or "").encode()
    return Response(content, status_code=rule.status, media_type=rule.content_type)


@functools.lru_cache(maxsize=4)
def _bomb(decoded_bytes: int) -> bytes:
    # Zeros compress about 1000:1, so 1 GiB decoded is about 1 MiB on the wire; built once per size.
    squeeze = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    whole, rest = divmod(decoded_bytes, len(block))
    parts = [squeeze.compress(block) for _ in range(whole)]
    parts.append(squeeze.compress(bytes(rest)))
    return b"".join(parts) + squeeze.flush()


def gzip_bomb(rule: FaultRule) -> Response:
    """The ``gzip_bomb`` fault: a small gzip body that inflates to ``size_mb`` MiB of zeros."""
    body = _bomb(int(rule.size_mb * (1 << 20)))
    return Response(
        body,
        status_code=rule.status,
        media_type="application/json",
        headers={"Content-Encoding": "gzip"},
    )


def redirect_loop(path: str) -> Response:
    """The ``redirect`` fault: a 302 back to the same path, forever."""
    return Response(b"", status_code=302, headers={"Location": path})


class _Truncated(Response):
    """Declare the real body's length plus some, send half of it, then drop the connection."""

    def __init__(self, real: Response, transport: Any) -> None:
        super().__init__(real.body, status_code=real.status_code, media_type=real.media_type)
        self._transport = transport

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytes(self.body)
        headers = [(k, v) for k, v in self.raw_headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body) + 100).encode()))
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        await asyncio.sleep(0.05)  # let the bytes leave before the connection goes
        if self._transport is not None:
            self._transport.abort()


def truncated(real: Response, transport: Any) -> Response:
    """The ``truncate`` fault: the real answer (the work is done), cut short: ``Content-Length`` lies."""
    return _Truncated(real, transport)


class _Slow(Response):
    """Send the real body ``bytes_per_second`` bytes at a time, a second apart."""

    def __init__(self, real: Response, bytes_per_second: float) -> None:
        super().__init__(real.body, status_code=real.status_code, media_type=real.media_type)
        self._step = max(1, int(bytes_per_second))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytes(self.body)
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        for start in range(0, len(body), self._step):
            end = start + self._step
            await send({"type": "http.response.body", "body": body[start:end], "more_body": end < len(body)})
            if end < len(body):
                await asyncio.sleep(1.0)


def slow(real: Response, rule: FaultRule) -> Response:
    """The ``slow`` fault: the real answer, trickling at ``bytes_per_second``."""
    return _Slow(real, rule.bytes_per_second)


def replacement(rule: FaultRule, path: str) -> Response:
    """The answer of a fault that replaces the route's (``body``, ``gzip_bomb``, ``redirect``)."""
    from airflow_provider_together.emulator.faults import FaultKind

    if rule.kind is FaultKind.GZIP_BOMB:
        return gzip_bomb(rule)
    if rule.kind is FaultKind.REDIRECT:
        return redirect_loop(path)
    return raw_body(rule)


def mangled(rule: FaultRule, real: Response, transport: Any) -> Response:
    """The route's real answer, broken as a ``truncate`` or ``slow`` fault says."""
    from airflow_provider_together.emulator.faults import FaultKind

    if not hasattr(real, "body"):  # a streamed download: served as it is
        return real
    if rule.kind is FaultKind.TRUNCATE:
        return truncated(real, transport)
    return slow(real, rule)
