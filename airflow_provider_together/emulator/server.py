"""
Serving the app with uvicorn on a socket we bind ourselves.

Binding first lets ``--port 0`` learn its port before uvicorn starts, so the base URL can be printed as the
first line of stdout exactly when the server is accepting connections (a parent process waits for it). The
HTTP protocol is subclassed only to expose the connection's transport to the fault gate, which needs it to
drop a connection without answering.
"""

from __future__ import annotations

import signal
import socket
import sys
from typing import TYPE_CHECKING, Any

import uvicorn

from airflow_provider_together.emulator.app import TRANSPORT_KEY, create_app

if TYPE_CHECKING:
    import asyncio

    from airflow_provider_together.emulator.state import EmulatorState

__all__ = ["bind", "serve"]


def _protocol_class() -> type[asyncio.Protocol]:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is optional in uvicorn; h11 always works
        from uvicorn.protocols.http.h11_impl import H11Protocol

        class H11WithTransport(H11Protocol):
            def handle_events(self) -> None:
                super().handle_events()
                scope: Any = getattr(self, "scope", None)
                if scope is not None:
                    scope[TRANSPORT_KEY] = self.transport

        return H11WithTransport

    class HttpToolsWithTransport(HttpToolsProtocol):
        def on_message_begin(self) -> None:
            super().on_message_begin()
            scope: Any = self.scope
            scope[TRANSPORT_KEY] = self.transport

    return HttpToolsWithTransport


def bind(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket (``port`` 0 picks a free one); SO_REUSEADDR lets a restart reuse the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def base_url_of(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket (IPv6 hosts bracketed)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints its base URL once it accepts connections."""

    def __init__(self, config: uvicorn.Config, announce: str, state: EmulatorState) -> None:
        super().__init__(config)
        self._announce = announce
        self._state = state

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._state.files.resume_processing()
            sys.stdout.write(self._announce + "\n")
            sys.stdout.flush()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(
    state: EmulatorState, sock: socket.socket, *, log_level: str = "warning", access_log: bool = False
) -> None:
    """
    Serve until SIGTERM/SIGINT (uvicorn's own handlers stop it gracefully), then close the state.

    :param state: the emulator state.
    :param sock: a socket from :func:`bind`.
    """
    config = uvicorn.Config(
        create_app(state),
        log_level=log_level,
        access_log=access_log,
        http=_protocol_class(),
        lifespan="off",
        timeout_graceful_shutdown=3,
        server_header=False,
    )
    server = _AnnouncingServer(config, base_url_of(sock), state)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler it found
    # installed; this one turns it into a normal exit so the state is closed and the temp data dir removed (exit code 0).
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    try:
        server.run(sockets=[sock])
    finally:
        state.close()
        sock.close()
