"""
:func:`run_emulator`: the emulator as a real subprocess on a free loopback port, for tests and scripts.

A subprocess rather than a thread, so that tests exercise real sockets, real signals and real restarts, and
the emulator's event loop never competes with the code under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from airflow_provider_together.emulator.admin import AdminClient

__all__ = ["DEFAULT_TEST_API_KEY", "Emulator", "run_emulator"]

DEFAULT_TEST_API_KEY = "emulator-test-key"


@dataclass
class Emulator:
    """
    Handle on a running emulator process.

    :param api_key: the key it accepts.
    :param speed: its ``--speed``.
    :param state: its ``--state`` file, if any.
    :param extra_args: more CLI arguments (faults, scenario, limits).
    :param host: the interface it binds.
    :param port: the port (0 until started; kept across :meth:`restart`).
    :param startup_timeout: seconds to wait for the base URL line.
    """

    api_key: str = DEFAULT_TEST_API_KEY
    speed: float = 1.0
    state: Path | None = None
    extra_args: Sequence[str] = ()
    host: str = "127.0.0.1"
    port: int = 0
    startup_timeout: float = 30.0
    root_url: str = ""
    process: subprocess.Popen[str] | None = field(default=None, repr=False)
    _stderr: IO[str] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        """The API base URL, with ``/v1`` (what a Together connection's host should be)."""
        return f"{self.root_url}/v1"

    @property
    def pid(self) -> int:
        """The process id."""
        if self.process is None:
            raise RuntimeError("the emulator is not running")
        return self.process.pid

    def __str__(self) -> str:
        return self.base_url

    def conn_json(self, **extra: Any) -> str:
        """JSON for ``AIRFLOW_CONN_TOGETHER_DEFAULT`` pointing at this emulator."""
        options = {"request_timeout": 30, "max_retries": 2, **extra}
        return json.dumps(
            {"conn_type": "together", "password": self.api_key, "host": self.base_url, "extra": options}
        )

    @cached_property
    def admin(self) -> AdminClient:
        """A client of the admin API."""
        from airflow_provider_together.emulator.admin import AdminClient

        return AdminClient(self.root_url)

    def start(self) -> Emulator:
        """Start the process and wait until it prints its base URL (no-op if it is already running)."""
        if self.process is not None and self.process.poll() is None:
            return self
        command = [
            sys.executable,
            "-m",
            "airflow_provider_together.emulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        command += ["--speed", repr(self.speed), *self.extra_args]
        if self.state is not None:
            command += ["--state", str(self.state)]
        # The key goes through the environment, not argv, so it never shows in `ps`.
        env = {**os.environ, "TOGETHER_EMULATOR_API_KEY": self.api_key, "PYTHONUNBUFFERED": "1"}
        self._stderr = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL, text=True, env=env
        )
        line = self._first_line()
        if not line.startswith("http"):
            self.stop()
            raise RuntimeError(f"the emulator did not start: {self._stderr_tail()}")
        self.root_url = line.strip()
        self.port = int(self.root_url.rsplit(":", 1)[1])
        return self

    def _first_line(self) -> str:
        assert self.process is not None
        assert self.process.stdout is not None
        result: list[str] = []
        stdout = self.process.stdout
        got_line = threading.Event()

        def read() -> None:
            result.append(stdout.readline())
            got_line.set()
            # Keep draining so a chatty child can never block on a full pipe.
            with contextlib.suppress(ValueError, OSError):
                for _ in stdout:
                    pass

        threading.Thread(target=read, daemon=True).start()
        got_line.wait(self.startup_timeout)
        return result[0] if result else ""

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-4000:]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process with SIGTERM (SIGKILL after ``timeout``); idempotent."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        if "admin" in self.__dict__:
            self.admin.close()
            del self.__dict__["admin"]
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def restart(self) -> Emulator:
        """Stop and start again on the same port with the same state file."""
        self.stop()
        return self.start()


@contextlib.contextmanager
def run_emulator(
    api_key: str = DEFAULT_TEST_API_KEY,
    speed: float = 1.0,
    state: str | os.PathLike[str] | None = None,
    extra_args: Sequence[str] = (),
    *,
    host: str = "127.0.0.1",
    startup_timeout: float = 30.0,
) -> Iterator[Emulator]:
    """
    Run the emulator as a subprocess on a free loopback port for the duration of the block.

    .. code-block:: python

        with run_emulator(speed=100) as emu:
            os.environ["AIRFLOW_CONN_TOGETHER_DEFAULT"] = emu.conn_json()
            ...
            assert emu.admin.count("POST /v1/fine-tunes") == 1

    :param api_key: the key the emulator accepts.
    :param speed: virtual seconds per second; tests use 50-200 so a job completes in well under a second.
    :param state: a SQLite file to persist to (enables :meth:`Emulator.restart` with state).
    :param extra_args: more CLI arguments, e.g. ``["--fault", "POST /v1/fine-tunes=ambiguous"]``.
    """
    emulator = Emulator(
        api_key=api_key,
        speed=speed,
        state=Path(state) if state is not None else None,
        extra_args=tuple(extra_args),
        host=host,
        startup_timeout=startup_timeout,
    )
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
