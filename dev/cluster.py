"""Run a distributed Airflow 3.3 on loopback: CeleryExecutor, PostgreSQL 15, Redis, HA schedulers and triggerers.

``make cluster`` (``python dev/cluster.py``) starts it with the emulator and prints the UI URL; Ctrl-C stops it.
The cluster suite (``tests/cluster``) uses :class:`ClusterAirflow` as its session deployment.

What runs, every listener on 127.0.0.1 and every file under one temporary folder:

- PostgreSQL 15 and Redis (``dev/cluster_services.py``), the metadata database and the Celery broker;
- the api-server, 2 schedulers, a dag-processor, 2 triggerers (``--skip-serve-logs``) and 2 Celery workers
  (``--skip-serve-logs``: their log servers would bind every interface, and the api-server reads task logs from
  the shared local folder anyway).

The launcher is :class:`local_airflow.LocalAirflow` with more components: the same per-component process groups,
logs and REST client, so a test kills "triggerer-1" or "worker-2" the way the single-node suite kills "triggerer".
The recipe (shared secrets, ``celery<5.7``, ``asyncpg``, the Execution API timeout) is in docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from airflow_rest import AirflowREST
from cluster_services import Postgres, Redis
from local_airflow import (
    REPO,
    Component,
    LocalAirflow,
    _airflow_bin,
    free_port,
    prepare_dags_folder,
    stop_process_groups,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

SCHEDULERS = ("scheduler-1", "scheduler-2")
TRIGGERERS = ("triggerer-1", "triggerer-2")
WORKERS = ("worker-1", "worker-2")
#: Start order: the api-server first (the workers' Execution API), the triggerers last and one at a time, so
#: that each triggerer's job id is known (a test kills the one that holds the triggers).
AIRFLOW_COMPONENTS = ("api-server", *SCHEDULERS, "dag-processor", *WORKERS, *TRIGGERERS)
#: Seconds between triggerer heartbeats, and how stale one may get before its triggers move (defaults 5 / 30).
TRIGGERER_HEARTBEAT_SEC = 2
TRIGGERER_HEALTH_CHECK_THRESHOLD = 10


class ClusterREST(AirflowREST):
    """The REST client, patient with a loaded api-server: reads are retried on timeouts, drops and 5xx.

    Nine Airflow processes share two cores with the task processes, and a database restart breaks the api-server's
    connections for a moment; a read that fails then says nothing about the deployment. Writes are sent once.

    :param base_url: the API server root.
    :param timeout: per-request timeout in seconds.
    :param read_deadline: how long one read keeps being retried.
    """

    def __init__(self, base_url: str, *, timeout: float = 60.0, read_deadline: float = 180.0) -> None:
        super().__init__(base_url, timeout=timeout)
        self.read_deadline = read_deadline

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; retry a GET (bounded) on a transport error or a 5xx."""
        if method != "GET":
            return super().request(method, path, **kwargs)
        deadline = time.monotonic() + self.read_deadline
        while True:
            try:
                return super().request(method, path, **kwargs)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            except RuntimeError as exc:
                if not re.search(r"-> 5\d\d:", str(exc)) or time.monotonic() > deadline:
                    raise
            time.sleep(2.0)


class ClusterAirflow(LocalAirflow):
    """A distributed Airflow on one machine: Postgres, Redis and the components of ``AIRFLOW_COMPONENTS``.

    :param dags_folder: folder the dag-processor parses.
    :param root: folder for everything (Postgres data, Redis, AIRFLOW_HOME, logs); a new temporary one when None
        (removed by ``stop`` unless ``keep_home``). It is made world-traversable (0755) for the postgres user.
    :param conn_env: extra ``AIRFLOW_CONN_*`` variables given to every component.
    :param extra_env: more environment, applied last.
    :param worker_concurrency: task slots per Celery worker.
    :param keep_home: keep ``root`` after ``stop``.
    """

    def __init__(
        self,
        dags_folder: Path,
        *,
        root: Path | None = None,
        conn_env: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        worker_concurrency: int = 4,
        keep_home: bool = False,
    ) -> None:
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="together-cluster-"))
        self._own_root = root is None
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.postgres = Postgres(self.root / "pg", free_port())
        self.redis = Redis(self.root / "redis", free_port())
        self.worker_concurrency = worker_concurrency
        #: Triggerer component name -> its TriggererJob id (set once it heartbeats).
        self.triggerer_jobs: dict[str, int] = {}
        super().__init__(
            dags_folder, home=self.root / "home", conn_env=conn_env, extra_env=extra_env, keep_home=keep_home
        )

    def _build_env(self, conn_env: Mapping[str, str], extra_env: Mapping[str, str]) -> dict[str, str]:
        env = super()._build_env({}, {})
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url,
                "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.postgres.url}",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                # Workers reach the api-server's Task Execution API; every component signs or checks the same
                # JWT secret (set by LocalAirflow, 64 bytes for HS512), API secret key and fernet key.
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                # 5 s (the default) times out under a loaded 2-core machine and fails task starts.
                "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
                "AIRFLOW__CORE__PARALLELISM": "64",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                # A task whose worker died is failed (and retried) after this long without a heartbeat (300 s).
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": str(TRIGGERER_HEARTBEAT_SEC),
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_CHECK_THRESHOLD),
            }
        )
        env.update(conn_env)
        env.update(extra_env)
        return env

    @property
    def rest(self) -> AirflowREST:
        """Return the REST client of the public API (reads retried; see :class:`ClusterREST`)."""
        if self._rest is None:
            self._rest = ClusterREST(self.url)
        return self._rest

    # --- components --------------------------------------------------------------------------------------------

    def start_component(self, name: str) -> Component:
        """Start ``api-server``, ``scheduler-N``, ``dag-processor``, ``triggerer-N`` or ``worker-N``."""
        kind = name.rsplit("-", 1)[0] if name[-1].isdigit() else name
        args = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer", "--skip-serve-logs"],
            "worker": ["celery", "worker", "--skip-serve-logs", "--celery-hostname", f"{name}@localhost"],
        }[kind]
        return self._spawn(name, args)

    def _spawn(self, name: str, args: list[str]) -> Component:
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("ab")
        proc = subprocess.Popen(
            [_airflow_bin(), *args], env=self.env, stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.home,
        )  # fmt: skip
        comp = Component(name, proc, log_path, log_file)
        self.components[name] = comp
        return comp

    def alive_jobs(self, job_type: str) -> list[dict[str, Any]]:
        """Return the alive jobs of one type (``SchedulerJob``, ``TriggererJob``, ``DagProcessorJob``)."""
        body = self.rest.request(
            "GET", "/jobs", params={"job_type": job_type, "is_alive": "true", "limit": 100}
        )
        return list(body["jobs"])

    def start_triggerer(self, name: str, timeout: float = 180.0) -> int:
        """Start one triggerer and return its job id, the alive TriggererJob that was not there before."""
        before = {job["id"] for job in self.alive_jobs("TriggererJob")}
        comp = self.start_component(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not comp.alive():
                raise RuntimeError(f"{name} exited with {comp.proc.returncode}; see {comp.log_path}")
            new = [job["id"] for job in self.alive_jobs("TriggererJob") if job["id"] not in before]
            if new:
                self.triggerer_jobs[name] = int(max(new))
                return self.triggerer_jobs[name]
            time.sleep(0.5)
        raise TimeoutError(f"{name} did not heartbeat within {timeout:.0f}s; see {comp.log_path}")

    def triggerer_of_job(self, job_id: int) -> str:
        """Return the component name of the triggerer whose job id is ``job_id``."""
        return next(name for name, jid in self.triggerer_jobs.items() if jid == job_id)

    def worker_ready(self, name: str) -> bool:
        """Return whether a Celery worker has announced ``ready`` in its log."""
        return " ready." in self.components[name].log_path.read_text(errors="replace")

    def restart_component(self, name: str) -> Component:
        """Kill (if still running) and start one component again; a triggerer's new job id is recorded."""
        if name in self.components:
            stop_process_groups([self.components[name].proc])
            self.components[name].log_file.close()
        if name in TRIGGERERS:
            self.start_triggerer(name)
            return self.components[name]
        return self.start_component(name)

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self, *, health_timeout: float = 300.0) -> ClusterAirflow:
        """Start Postgres and Redis, migrate, start every component, wait until all are up (bounded)."""
        try:
            self.postgres.init()
            self.postgres.start()
            self.postgres.create_database()
            self.redis.start()
            self.migrate(timeout=300)
            for name in AIRFLOW_COMPONENTS:
                if name not in TRIGGERERS:
                    self.start_component(name)
            self.wait_healthy(timeout=health_timeout, components=("scheduler", "dag-processor"))
            for name in TRIGGERERS:
                self.start_triggerer(name, timeout=health_timeout)
            self.wait_cluster(timeout=health_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_cluster(self, timeout: float = 300.0) -> None:
        """Wait (bounded) until 2 schedulers and 2 triggerers heartbeat and both workers are ready."""
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            for comp in self.components.values():
                if not comp.alive():
                    raise RuntimeError(f"{comp.name} exited with {comp.proc.returncode}; see {comp.log_path}")
            state = {
                "schedulers": len(self.alive_jobs("SchedulerJob")),
                "triggerers": len(self.alive_jobs("TriggererJob")),
                "workers": [w for w in WORKERS if self.worker_ready(w)],
            }
            if state["schedulers"] >= 2 and state["triggerers"] >= 2 and len(state["workers"]) == 2:
                return
            time.sleep(1.0)
        raise TimeoutError(f"cluster not up after {timeout:.0f}s: {state}; logs in {self.log_dir}")

    def stop(self) -> None:
        """Stop every Airflow component (by process group), then Redis and Postgres; remove ``root`` unless kept."""
        comps = [self.components.pop(n) for n in list(self.components)]
        stop_process_groups([c.proc for c in comps], timeout=30)
        for comp in comps:
            comp.log_file.close()
        if self._rest is not None:
            self._rest.close()
            self._rest = None
        self.redis.stop()
        self.postgres.stop()
        if self._own_root and not self.keep_home:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ClusterAirflow:
        return self.start()


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run a distributed Airflow 3 (Celery, Postgres, Redis, HA) with the emulator on 127.0.0.1."
    )
    parser.add_argument("--speed", type=float, default=5.0, help="emulator speed-up of simulated training")
    args = parser.parse_args(argv)

    api_key = "tk-cluster-" + secrets.token_hex(12)
    from airflow_provider_together.emulator import run_emulator

    root = Path(tempfile.mkdtemp(prefix="together-cluster-"))
    root.chmod(0o755)  # the postgres user traverses it to its data directory
    dags = prepare_dags_folder(root / "dags", REPO / "example_dags", REPO / "tests" / "cluster" / "dags")
    stop = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_signal)
    with run_emulator(api_key=api_key, speed=args.speed) as emu:
        cluster = ClusterAirflow(
            dags, root=root / "cluster", extra_env={"TOGETHER_EXAMPLE_POLL_INTERVAL": "2"}
        )
        print(f"Emulator:  {emu.base_url}\nFolder:    {root} (removed on exit)")
        print("Starting Postgres, Redis and 9 Airflow processes (~2-3 min on 2 cores)...", flush=True)
        try:
            started = time.monotonic()
            cluster.start()
            cluster.rest.create_connection("together_default", json.loads(emu.conn_json()))
            print(
                f"\nAirflow is up after {time.monotonic() - started:.0f}s: {cluster.url}  (no login: dev only)\n"
                f"CeleryExecutor, PostgreSQL 127.0.0.1:{cluster.postgres.port}, Redis 127.0.0.1:{cluster.redis.port}\n"
                f"Components: {', '.join(cluster.components)}; triggerer jobs {cluster.triggerer_jobs}\n"
                f"Connection 'together_default' -> {emu.base_url}\n"
                f"Try the DAG cluster_fanout (24 mapped fine-tunes). Component logs: {cluster.log_dir}\n"
                "Press Ctrl-C to stop everything.",
                flush=True,
            )
            while not stop:
                dead = [c.name for c in cluster.components.values() if not c.alive()]
                if dead:
                    print(f"component(s) exited: {dead}; see {cluster.log_dir}", file=sys.stderr)
                    return 1
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        finally:
            print("\nStopping Airflow, Redis, PostgreSQL and the emulator...", flush=True)
            cluster.stop()
            shutil.rmtree(root, ignore_errors=True)
    print("Stopped.")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(_main())
