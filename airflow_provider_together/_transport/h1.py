"""
HTTP/1.1 on the wire, for the async client's transport (``_transport.keepalive``): pure, no I/O.

Only the client side, only what an API client meets: it writes a request head, reads a response head,
and decodes a body framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the
connection (RFC 9112 section 6.3, in its order of precedence). Anything else is a
:class:`ProtocolError`, which the transport raises as ``httpx.RemoteProtocolError`` (or
``httpx.LocalProtocolError`` for our own request), so a malformed answer fails like any other
transport error instead of being guessed at.

Why not h11, which httpcore uses? h11 is general (both roles, every state of the state machine) and
validates each header with regular expressions: ~45 us of CPU per request here, a fifth of a trigger's
poll. This module does the client's part of the same job in a few microseconds; the transport's tests
run it against uvicorn, the emulator and hand-written malformed answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MAX_HEAD_BYTES",
    "BodyDecoder",
    "LengthDecoder",
    "ProtocolError",
    "ResponseHead",
    "body_decoder",
    "encode_request_head",
    "find_head_end",
    "parse_response_head",
]

#: A response head larger than this is refused (h11's default limit is the same order).
MAX_HEAD_BYTES = 64 * 1024
#: Longest chunk-size or trailer line accepted (h11 allows 16 KiB for any incomplete event).
_MAX_CHUNK_LINE = 16 * 1024
_FORBIDDEN_IN_HEADER = re.compile(rb"[\r\n\x00]")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class ProtocolError(ValueError):
    """The bytes on the wire are not HTTP/1.1 as we can read it; the connection is unusable."""


@dataclass(frozen=True)
class ResponseHead:
    """A parsed status line and header block; ``headers`` keep the server's casing and order."""

    http_version: bytes
    status_code: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]

    def values(self, name: bytes) -> list[bytes]:
        """Every value of header ``name`` (lower-case), comma-separated lists split, lower-cased."""
        out: list[bytes] = []
        for key, value in self.headers:
            if key.lower() == name:
                out.extend(item.strip().lower() for item in value.split(b",") if item.strip())
        return out


def encode_request_head(method: str, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request line and headers, ready to write; refuses header bytes that would split the message."""
    verb = method.encode("ascii", "replace")
    if not _TOKEN.fullmatch(verb):
        raise ProtocolError(f"Invalid request method {method!r}")
    lines = [verb + b" " + target + b" HTTP/1.1"]
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or _FORBIDDEN_IN_HEADER.search(value):
            raise ProtocolError(f"Invalid request header {name!r}")
        lines.append(name + b": " + value)
    if _FORBIDDEN_IN_HEADER.search(target) or b" " in target:
        raise ProtocolError("Invalid request target")
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def find_head_end(buffer: bytearray) -> tuple[int, int]:
    """
    Where the response head in ``buffer`` ends: (offset of its last line break, bytes to drop), or (-1, 0).

    The head ends at the first empty line: CRLF as RFC 9112 says, or bare LF, which it lets a recipient
    accept (h11 does). The block before the offset may end in CR; ``parse_response_head`` drops it.
    """
    crlf = buffer.find(b"\n\r\n")
    lf = buffer.find(b"\n\n")
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, 2
    return (crlf, 3) if crlf >= 0 else (-1, 0)


def parse_response_head(block: bytes) -> ResponseHead:
    """Parse a head (status line and headers, without the blank line that ends it)."""
    lines = [line.removesuffix(b"\r") for line in block.split(b"\n")]
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or not _is_status(parts[1]):
        raise ProtocolError(f"Invalid status line {lines[0][:100]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):  # also refuses obsolete line folding (leading space)
            raise ProtocolError(f"Invalid header line {line[:100]!r}")
        headers.append((name, value.strip(b" \t")))
    return ResponseHead(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else b"", headers)


def _is_status(raw: bytes) -> bool:
    return len(raw) == 3 and raw.isdigit()


class BodyDecoder:
    """
    Decodes one response body from a buffer the transport fills; ``feed`` consumes what it can.

    ``done`` turns true at the end of the body; ``keep_alive`` says whether the connection can then serve
    another request.
    """

    done = False
    keep_alive = True

    def feed(self, buffer: bytearray) -> list[bytes]:
        """Take body bytes out of ``buffer`` (leaving anything it cannot use yet); return the body pieces."""
        raise NotImplementedError

    def at_eof(self) -> None:
        """The server closed the connection: the end of the body, or a :class:`ProtocolError`."""
        if not self.done:
            raise ProtocolError("Server disconnected before the response body ended")


class _Empty(BodyDecoder):
    done = True

    def feed(self, buffer: bytearray) -> list[bytes]:
        return []


class LengthDecoder(BodyDecoder):
    def __init__(self, length: int) -> None:
        self.remaining = length
        self.done = length == 0

    def feed(self, buffer: bytearray) -> list[bytes]:
        take = min(self.remaining, len(buffer))
        if not take:
            return []
        piece = bytes(buffer) if take == len(buffer) else bytes(buffer[:take])
        del buffer[:take]
        self.remaining -= take
        self.done = self.remaining == 0
        return [piece]


class _UntilClose(BodyDecoder):
    keep_alive = False

    def feed(self, buffer: bytearray) -> list[bytes]:
        if not buffer:
            return []
        piece = bytes(buffer)
        buffer.clear()
        return [piece]

    def at_eof(self) -> None:
        self.done = True


class _Chunked(BodyDecoder):
    """``Transfer-Encoding: chunked``: size lines, data, CRLF, ..., a zero size, trailers (ignored)."""

    def __init__(self) -> None:
        self.remaining = 0  # data bytes left in the current chunk
        self.state = "size"  # size -> data -> crlf -> size ... -> trailer -> done

    def feed(self, buffer: bytearray) -> list[bytes]:
        pieces: list[bytes] = []
        while not self.done:
            if self.state == "data":
                take = min(self.remaining, len(buffer))
                if not take:
                    break
                pieces.append(bytes(buffer[:take]))
                del buffer[:take]
                self.remaining -= take
                if not self.remaining:
                    self.state = "crlf"
                continue
            end = buffer.find(b"\r\n")
            if end > _MAX_CHUNK_LINE or (end < 0 and len(buffer) > _MAX_CHUNK_LINE):
                raise ProtocolError("Chunk size or trailer line too long")
            if end < 0:
                break
            line = bytes(buffer[:end])
            del buffer[: end + 2]
            if self.state == "crlf":
                if line:
                    raise ProtocolError("Missing CRLF after a chunk")
                self.state = "size"
            elif self.state == "size":
                self.remaining = _chunk_size(line)
                self.state = "data" if self.remaining else "trailer"
            elif not line:  # trailer section ends with an empty line
                self.done = True
        return pieces


def _chunk_size(line: bytes) -> int:
    size = line.split(b";", 1)[0].strip()
    if not size or len(size) > 16 or any(c not in b"0123456789abcdefABCDEF" for c in size):
        raise ProtocolError(f"Invalid chunk size {line[:40]!r}")
    return int(size, 16)


def body_decoder(head: ResponseHead, request_method: str) -> BodyDecoder:
    """How the body of ``head`` is framed (RFC 9112 6.3), and whether the connection survives it."""
    status = head.status_code
    connection = head.values(b"connection")
    persistent = head.http_version == b"HTTP/1.1" and b"close" not in connection
    decoder: BodyDecoder
    if request_method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        decoder = _Empty()
    elif codings := head.values(b"transfer-encoding"):
        if codings[-1] != b"chunked":
            decoder = _UntilClose()  # a final coding other than chunked: the body runs to the close
        else:
            decoder = _Chunked()
            # A Content-Length next to chunked is a smuggling vector: read this one, then drop the socket.
            persistent = persistent and not head.values(b"content-length")
    elif any(key.lower() == b"content-length" for key, _ in head.headers):
        # Every item of every Content-Length field, empty ones included: all must be the same number.
        lengths = {
            item.strip()
            for key, value in head.headers
            if key.lower() == b"content-length"
            for item in value.split(b",")
        }
        length = lengths.pop()
        if lengths or not length.isdigit():
            raise ProtocolError("Invalid Content-Length")
        decoder = LengthDecoder(int(length))
    else:
        decoder = _UntilClose()
    if not persistent or status == 101:  # 101: the socket now speaks another protocol
        decoder.keep_alive = False
    return decoder
