"""
Read an API answer with a cap on its *decoded* size, so that one answer cannot exhaust the process.

The triggerer runs every deferred task of a deployment in one process: a ``Content-Encoding: gzip`` answer
of 1 MiB that inflates to 1 GiB (a broken proxy, or a hostile one) would take all of them down if it were
decoded whole, which is what reading a response into memory does. Here the raw bytes are inflated with
zlib's ``max_length``, never more than the cap plus one byte at a time, and the read stops as soon as the
cap is passed, without reading or inflating the rest. File and checkpoint downloads stream to disk and are
not capped (the drivers never route them here).

Only the codings the hook asks for (``Accept-Encoding: gzip, deflate``) are decoded; anything else is an
unreadable answer.
"""

from __future__ import annotations

import zlib
from typing import Any

__all__ = ["BodyRefused", "CappedBody"]

_GZIP = 16 + zlib.MAX_WBITS
_ZLIB = zlib.MAX_WBITS
_RAW_DEFLATE = -zlib.MAX_WBITS


class BodyRefused(ValueError):
    """The body is larger than the cap once decoded, or not in a coding this client can read."""


class CappedBody:
    """
    Collect a response body from its raw chunks, decoding it, up to ``cap`` decoded bytes.

    :param content_encoding: the answer's ``Content-Encoding`` header ("" when absent).
    :param cap: the most decoded bytes accepted; one byte more raises :class:`BodyRefused`.
    """

    def __init__(self, content_encoding: str, cap: int) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise BodyRefused(f"Content-Encoding {content_encoding!r} is not one this client asked for")
        self._coding = codings[0] if codings else ""
        self._inflate: Any = None  # a zlib decompressor, when the body is compressed
        if self._coding in ("gzip", "x-gzip"):
            self._inflate = zlib.decompressobj(_GZIP)
        elif self._coding == "deflate":
            self._inflate = zlib.decompressobj(_ZLIB)
        self._cap = cap
        self._body = bytearray()
        self._raw_seen = 0

    def feed(self, raw: bytes) -> None:
        """Add the next raw chunk; raise :class:`BodyRefused` once the decoded body passes the cap."""
        if self._inflate is None:
            self._keep(raw)
            return
        if self._coding == "deflate" and self._raw_seen == 0 and raw and (raw[0] & 0x0F) != 8:
            # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate (httpx accepts both).
            self._inflate = zlib.decompressobj(_RAW_DEFLATE)
        self._raw_seen += len(raw)
        data = raw
        try:
            while data:
                self._keep(self._inflate.decompress(data, self._cap - len(self._body) + 1))
                data = self._inflate.unconsumed_tail
        except zlib.error as exc:
            raise BodyRefused(f"not valid {self._coding} data ({exc})") from exc

    def finish(self) -> bytes:
        """Return the whole decoded body (after the last chunk)."""
        if self._inflate is not None:
            try:
                self._keep(self._inflate.flush())
            except zlib.error as exc:
                raise BodyRefused(f"not valid {self._coding} data ({exc})") from exc
            if self._raw_seen and not self._inflate.eof:
                raise BodyRefused(f"the {self._coding} stream is cut short")
        return bytes(self._body)

    def _keep(self, decoded: bytes) -> None:
        if len(self._body) + len(decoded) > self._cap:
            raise BodyRefused(f"larger than {self._cap} bytes once decoded (the cap: extra.max_response_mb)")
        self._body += decoded
