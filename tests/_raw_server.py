"""
A scriptable raw-asyncio HTTP/1.1 server for the async transports' tests (``tests/test_aio.py``).

Each test gives it a handler coroutine that talks to one accepted connection (a :class:`Peer`) in raw bytes,
so it can answer well or badly: split chunks, close early, reset, stall. The server records every request it
parsed and how many connections it accepted, so tests can assert reuse. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
    from pathlib import Path

# What a handler may die of when the client goes away; anything else is a bug in the test and is re-raised.
_PEER_GONE = (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError)


@dataclass
class Recorded:
    """One request as the server parsed it."""

    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    conn: int  # index (0-based) of the connection it came on
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower().encode()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None


def response(
    status: int = 200,
    body: bytes = b"ok",
    *,
    reason: str = "OK",
    headers: Iterable[tuple[str, str]] = (),
    length: bool = True,
    version: str = "HTTP/1.1",
) -> bytes:
    """Raw response bytes; ``length=False`` leaves Content-Length out (close-delimited or no body)."""
    lines = [f"{version} {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Peer:
    """One accepted connection, as a handler sees it."""

    def __init__(
        self, server: Server, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        self.server = server
        self.index = index
        self.reader = reader
        self.writer = writer

    async def read_head(self) -> Recorded | None:
        """Read a request head (not its body); None when the client closed the connection first."""
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return None
        line, *lines = raw[:-4].split(b"\r\n")
        method, target, _version = line.decode("latin-1").split(" ", 2)
        headers = []
        for header in lines:
            name, _, value = header.partition(b":")
            headers.append((name, value.strip()))
        request = Recorded(method, target, headers, self.index)
        self.server.requests.append(request)
        return request

    async def body_pieces(self, request: Recorded, size: int = 1 << 16) -> AsyncIterator[bytes]:
        """The request body in pieces of at most ``size`` bytes, unframed (Content-Length or chunked)."""
        if (request.header("transfer-encoding") or "").lower() == "chunked":
            while True:
                chunk_size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if chunk_size == 0:
                    while await self.reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                        pass
                    return
                remaining = chunk_size
                while remaining:
                    piece = await self.reader.readexactly(min(remaining, size))
                    remaining -= len(piece)
                    yield piece
                if await self.reader.readexactly(2) != b"\r\n":
                    raise AssertionError("a chunk does not end with CRLF")
        remaining = int(request.header("content-length") or 0)
        while remaining:
            piece = await self.reader.read(min(remaining, size))
            if not piece:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(piece)
            yield piece

    async def read_request(self) -> Recorded | None:
        """Read a whole request (head and body, recorded); None when the client closed first."""
        request = await self.read_head()
        if request is not None:
            request.body = b"".join([piece async for piece in self.body_pieces(request)])
        return request

    async def send(self, data: bytes) -> None:
        """Write raw bytes and wait until they are handed to the kernel."""
        self.writer.write(data)
        await self.writer.drain()

    async def client_closed(self, timeout: float = 2.0) -> bool:
        """Whether the client closes (EOF or reset) within ``timeout``, discarding what it still sends."""

        async def drain() -> None:
            with contextlib.suppress(ConnectionError):
                while await self.reader.read(1 << 16):
                    pass

        try:
            await asyncio.wait_for(drain(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Close the connection cleanly (FIN)."""
        self.writer.close()
        with contextlib.suppress(*_PEER_GONE):
            await self.writer.wait_closed()

    async def reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), as a crashed server or a middlebox would."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()
        with contextlib.suppress(*_PEER_GONE):
            await self.writer.wait_closed()


def replying(reply: bytes | Callable[[Recorded], bytes]) -> Callable[[Peer], Awaitable[None]]:
    """A keep-alive handler: reads requests one after another and answers each with ``reply``."""

    async def handle(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            await peer.send(reply(request) if callable(reply) else reply)

    return handle


@dataclass
class Server:
    """``async with Server(handler) as server``: listens on 127.0.0.1, one handler task per connection."""

    handler: Callable[[Peer], Awaitable[None]]
    ssl_context: ssl.SSLContext | None = None
    listen_port: int = 0
    requests: list[Recorded] = field(default_factory=list)
    connections: int = 0
    errors: list[BaseException] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.listen_port, ssl=self.ssl_context
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        for writer in self._writers:
            with contextlib.suppress(*_PEER_GONE):
                await writer.wait_closed()
        await self._server.wait_closed()
        if self.errors and exc_info[0] is None:
            raise self.errors[0]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        index = self.connections
        self.connections += 1
        try:
            await self.handler(Peer(self, index, reader, writer))
        except (*_PEER_GONE, asyncio.CancelledError):  # cancelled: the server is shutting down
            pass
        except Exception as exc:  # a broken handler: fail the test rather than log and hang
            self.errors.append(exc)
        finally:
            writer.close()


async def tunnel(peer: Peer) -> None:
    """An HTTP proxy that only tunnels (``CONNECT host:port``), as an https proxy does; records the CONNECT."""
    request = await peer.read_head()
    if request is None or request.method != "CONNECT":
        await peer.send(response(405, b"", reason="Method Not Allowed"))
        return
    host, _, port = request.target.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    await peer.send(b"HTTP/1.1 200 Connection established\r\n\r\n")

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(*_PEER_GONE):
            while data := await source.read(1 << 16):
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(*_PEER_GONE, OSError):
            sink.write_eof()

    try:
        await asyncio.gather(pipe(peer.reader, writer), pipe(reader, peer.writer))
    finally:
        writer.close()


@dataclass(frozen=True)
class SelfSigned:
    """A self-signed certificate for 127.0.0.1 and localhost, as PEM files and text."""

    cert_pem: str
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate (and nothing else)."""
        return ssl.create_default_context(cadata=self.cert_pem)


def self_signed(directory: Path) -> SelfSigned:
    """Make a self-signed EC certificate with ``cryptography`` (already an Airflow dependency)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "raw-server-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return SelfSigned(cert_pem.decode(), cert_file, key_file)
