"""Run a real local Airflow 3 (api-server, scheduler, dag-processor, triggerer) on loopback, next to the emulator.

Used three ways: ``make airflow`` (``python dev/local_airflow.py``: start, print the URL, wait for Ctrl-C), the e2e
suite's session fixture (``LocalAirflow`` as a context manager) and anyone debugging the provider by hand.

Why separate processes instead of ``airflow standalone``: the e2e scenarios SIGKILL and restart one component (the
triggerer, a task's worker process), and per-component logs make a failure readable. Every component runs in its own
process group so that it is stopped by its own pid together with the children it forked (LocalExecutor workers,
task supervisors), and never by name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

# dev/ is on sys.path both as a script (``python dev/local_airflow.py``) and from tests/e2e (e2e_support).
from airflow_rest import AirflowREST

if TYPE_CHECKING:
    from collections.abc import Mapping

REPO = Path(__file__).resolve().parent.parent
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# The scheduler's and triggerer's log servers bind every interface (not configurable); the api-server reads task
# and trigger logs straight from the shared local log folder, so those servers are not needed at all.
_SKIP_LOG_SERVER = ("scheduler", "triggerer")


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _airflow_bin() -> str:
    # The venv's own airflow, so the components import this checkout's provider (installed editable).
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


@dataclass
class Component:
    """One Airflow component process and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        """Return the component's pid (also its process-group id: it leads its own session)."""
        return self.proc.pid

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.proc.poll() is None


def stop_process_groups(procs: list[subprocess.Popen[bytes]], *, timeout: float = 20.0) -> None:
    """Stop each process and its whole process group: SIGTERM to all, one bounded wait, then SIGKILL.

    Signalling every group first lets the components shut down in parallel (each takes a few seconds).
    """
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    for proc in procs:
        # Children of a component (task processes, server workers) may outlive their leader's exit.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


class LocalAirflow:
    """A throwaway Airflow deployment: fresh AIRFLOW_HOME, SQLite, LocalExecutor, everything on 127.0.0.1.

    :param dags_folder: folder the dag-processor parses (copied DAG files, or ``example_dags/``).
    :param home: AIRFLOW_HOME to use; a new temporary directory when None (removed by ``stop`` unless ``keep_home``).
    :param conn_env: extra ``AIRFLOW_CONN_*`` (or other) variables given to every component, e.g. the Together
        connection pointing at the emulator; a worker and the triggerer resolve connections from the environment.
    :param extra_env: more environment (``AIRFLOW__SECTION__KEY`` overrides), applied last.
    :param keep_home: keep the home directory (logs, database) after ``stop``.
    """

    def __init__(
        self,
        dags_folder: Path,
        *,
        home: Path | None = None,
        conn_env: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        keep_home: bool = False,
    ) -> None:
        self.dags_folder = Path(dags_folder).resolve()
        self._own_home = home is None
        self.home = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="together-airflow-"))
        self.keep_home = keep_home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.components: dict[str, Component] = {}
        self.env = self._build_env(conn_env or {}, extra_env or {})
        self._rest: AirflowREST | None = None

    @property
    def log_dir(self) -> Path:
        """Return the folder holding one ``<component>.log`` per process (task logs are under ``home/logs``)."""
        return self.home / "component-logs"

    @property
    def rest(self) -> AirflowREST:
        """Return a REST client of the public API (no login: the simple auth manager makes everyone admin)."""
        if self._rest is None:
            self._rest = AirflowREST(self.url)
        return self._rest

    def _build_env(self, conn_env: Mapping[str, str], extra_env: Mapping[str, str]) -> dict[str, str]:
        # Drop inherited Airflow settings (pytest's conftest sets UNIT_TEST_MODE and its own AIRFLOW_HOME): the
        # deployment must be configured only by what is written here.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")) and k != "AIRFLOW_HOME"
        }
        from cryptography.fernet import Fernet

        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "16",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                # A killed triggerer's triggers move to a live one once it is this stale (default 30 s).
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(conn_env)
        env.update(extra_env)
        return env

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def migrate(self, timeout: float = 180.0) -> None:
        """Create the SQLite metadata database (``airflow db migrate``)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / "db-migrate.log").open("wb") as log:
            result = subprocess.run(
                [_airflow_bin(), "db", "migrate"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed; see {self.log_dir / 'db-migrate.log'}")

    def start_component(self, name: str) -> Component:
        """Start one component in its own process group, appending to ``component-logs/<name>.log``."""
        args = [_airflow_bin(), name]
        if name in _SKIP_LOG_SERVER:
            args.append("--skip-serve-logs")
        if name == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("ab")
        proc = subprocess.Popen(
            args, env=self.env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=self.home,
        )  # fmt: skip
        comp = Component(name, proc, log_path, log_file)
        self.components[name] = comp
        return comp

    def start(self, *, health_timeout: float = 180.0) -> LocalAirflow:
        """Migrate the database, start the four components and wait until the API reports them healthy."""
        try:
            self.migrate()
            for name in COMPONENTS:
                self.start_component(name)
            self.wait_healthy(timeout=health_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float = 180.0, components: tuple[str, ...] = COMPONENTS) -> None:
        """Wait (bounded) until the health endpoint reports every component healthy."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for comp in self.components.values():
                if not comp.alive():
                    raise RuntimeError(f"{comp.name} exited with {comp.proc.returncode}; see {comp.log_path}")
            last = self.rest.health()
            if last is not None and self._healthy(last, components):
                return
            time.sleep(1.0)
        raise TimeoutError(f"Airflow not healthy after {timeout:.0f}s: {last}; logs in {self.log_dir}")

    @staticmethod
    def _healthy(health: Mapping[str, Any], components: tuple[str, ...]) -> bool:
        keys = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
        if health.get("metadatabase", {}).get("status") != "healthy":
            return False
        return all(health.get(keys[c], {}).get("status") == "healthy" for c in components if c in keys)

    def kill_component(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one component's whole process group (default SIGKILL: a crash, no clean shutdown)."""
        comp = self.components[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(comp.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            comp.proc.wait(timeout=30)
        comp.log_file.close()

    def restart_component(self, name: str) -> Component:
        """Kill (if still running) and start one component again with the same configuration."""
        if name in self.components:
            stop_process_groups([self.components[name].proc])
            self.components[name].log_file.close()
        return self.start_component(name)

    def stop(self) -> None:
        """Stop every component by its own pid (process group), then remove the home unless it is kept."""
        comps = [self.components.pop(n) for n in COMPONENTS if n in self.components]
        stop_process_groups([c.proc for c in comps])
        for comp in comps:
            comp.log_file.close()
        if self._rest is not None:
            self._rest.close()
            self._rest = None
        if self._own_home and not self.keep_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> LocalAirflow:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def prepare_dags_folder(target: Path, *sources: Path) -> Path:
    """Copy each source folder into ``target/<folder name>``, so one deployment parses all of them.

    Whole trees are copied (not single files) because example DAGs read data files next to themselves.
    """
    target.mkdir(parents=True, exist_ok=True)
    for src in sources:
        if not Path(src).is_dir():
            continue
        shutil.copytree(
            src, target / Path(src).name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    return target


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run a local Airflow 3 with the Together emulator on 127.0.0.1."
    )
    parser.add_argument("--dags-folder", type=Path, default=REPO / "example_dags")
    parser.add_argument("--speed", type=float, default=5.0, help="emulator speed-up of simulated training")
    parser.add_argument("--home", type=Path, default=None, help="AIRFLOW_HOME (default: a new temp dir)")
    args = parser.parse_args(argv)
    if not args.dags_folder.is_dir():
        parser.error(f"DAGs folder {args.dags_folder} does not exist")

    api_key = "tk-local-" + secrets.token_hex(12)
    from airflow_provider_together.emulator import run_emulator

    with run_emulator(api_key=api_key, speed=args.speed) as emu:
        airflow = LocalAirflow(
            args.dags_folder,
            home=args.home,
            keep_home=True,
            extra_env={
                # Unpaused at once: the weekly example runs its latest interval right away (catchup is off)
                # and the asset-scheduled consumer follows; the other examples are manual-only.
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                # The examples poll Together every 60 s by default; the emulator's jobs last seconds.
                "TOGETHER_EXAMPLE_POLL_INTERVAL": "2",
            },
        )
        print(f"Emulator:     {emu.base_url}  (admin API {str(emu.base_url).rsplit('/v1', 1)[0]}/_emulator/)")
        print(
            f"AIRFLOW_HOME: {airflow.home}\nStarting Airflow (db migrate + 4 components, ~1 min)...",
            flush=True,
        )
        stop = False

        def _on_signal(signum: int, frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _on_signal)
        try:
            airflow.start()
            conn = json.loads(emu.conn_json())
            airflow.rest.create_connection("together_default", conn)
            print(
                f"\nAirflow is up: {airflow.url}  (login: none needed, everyone is admin - dev only)\n"
                f"Connection 'together_default' -> {emu.base_url}\n"
                f"DAGs from {args.dags_folder}: together_weekly_retraining starts its latest weekly run now\n"
                f"Component logs: {airflow.log_dir}   task logs: {airflow.home / 'logs'}\n"
                "Press Ctrl-C to stop everything.",
                flush=True,
            )
            while not stop:
                dead = [c.name for c in airflow.components.values() if not c.alive()]
                if dead:
                    print(f"component(s) exited: {dead}; see {airflow.log_dir}", file=sys.stderr)
                    return 1
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        finally:
            print("\nStopping Airflow and the emulator...", flush=True)
            airflow.stop()
    print("Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
