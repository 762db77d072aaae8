"""Throwaway PostgreSQL 15 and Redis servers on 127.0.0.1, for the distributed Airflow of ``dev/cluster.py``.

Both run in the foreground as children of this process, each in its own process group, with every file (data
directory, sockets, logs) under one folder the caller owns. Nothing goes through systemd, ``pg_ctlcluster`` or
``/etc``: stopping the process and removing the folder leaves no trace. Debian's ``postgresql`` and
``redis-server`` provide the binaries (``dev/install_cluster_deps.sh`` installs them when missing).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

PG_BIN = Path(os.environ.get("TOGETHER_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} while starting; see {log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s; see {log}")


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    """Send ``sig`` to the server, wait (bounded), then SIGKILL whatever is left of its process group."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


class Postgres:
    """A PostgreSQL 15 cluster in ``root``, owned by the ``postgres`` user when running as root.

    :param root: folder for the data directory, the Unix socket and the server log (created; must be traversable
        by ``postgres``, which the caller ensures by making it 0755).
    :param port: TCP port on 127.0.0.1.
    """

    user = "airflow"
    database = "airflow"

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.data = root / "data"
        self.log_path = root / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        # initdb refuses to run as root; the server files then belong to Debian's postgres user.
        self._as = {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}

    @property
    def url(self) -> str:
        """Return the SQLAlchemy URL of the Airflow database (trust auth: loopback and a throwaway cluster)."""
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> None:
        with self.log_path.open("ab") as log:
            result = subprocess.run(
                args, stdout=log, stderr=subprocess.STDOUT, timeout=120, check=False, **self._as
            )
        if result.returncode:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{Path(args[0]).name} exited with {result.returncode}:\n{tail}")

    def init(self) -> None:
        """Create the cluster (superuser ``airflow``, trust auth) in ``root/data``."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
            "--locale=C.UTF-8",
        )  # fmt: skip

    def start(self, timeout: float = 60.0) -> None:
        """Start the server in the foreground (its own process group) and wait until it accepts connections."""
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                "-c", "max_connections=300", "-c", "fsync=off", "-c", "synchronous_commit=off",
            ],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            **self._as,
        )  # fmt: skip
        assert self.proc is not None
        _wait_port(self.port, self.proc, self.log_path, timeout)
        deadline = time.monotonic() + timeout
        # The port opens before recovery ends; pg_isready says when sessions are accepted.
        while subprocess.run(
            [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)], check=False
        ).returncode:
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL not ready after {timeout:.0f}s; see {self.log_path}")
            time.sleep(0.2)

    def create_database(self) -> None:
        """Create the Airflow database."""
        self._run(
            str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: disconnect clients, checkpoint, exit), bounded, then SIGKILL of leftovers."""
        _stop(self.proc, signal.SIGINT, timeout)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """Stop and start the same cluster: every client connection breaks, as in a database failover."""
        self.stop()
        self.start()


class Redis:
    """A Redis server with no persistence, its log and pid under ``root``.

    :param root: folder for the log (created).
    :param port: TCP port on 127.0.0.1.
    """

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.log_path = root / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the Celery broker URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> None:
        """Start ``redis-server`` in the foreground (its own process group) and wait for its port."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                "redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.root),
                "--save", "", "--appendonly", "no", "--protected-mode", "yes",
            ],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        _wait_port(self.port, self.proc, self.log_path, timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (no save configured, so it exits at once), bounded, then SIGKILL of leftovers."""
        _stop(self.proc, signal.SIGTERM, timeout)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
