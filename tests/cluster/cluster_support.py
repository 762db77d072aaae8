"""Constants and helpers of the cluster suite (a plain module: tests never import conftest).

The single-node suite's helpers (``tests/e2e/e2e_support.py``: bounded waits, jobs by suffix, the expected event
lines) are reused as they are; this module adds what only a distributed deployment has: several workers and
triggerers, which one ran or holds what, and the figures the suite measures for docs/scale.md.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _path in (REPO / "dev", REPO / "tests" / "e2e"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from e2e_support import E2E_API_KEY, RETRIES, expected_event_lines, jobs_with_suffix, wait_for  # noqa: E402

if TYPE_CHECKING:
    from cluster import ClusterAirflow

__all__ = [
    "E2E_API_KEY",
    "MEASURED",
    "RETRIES",
    "expected_event_lines",
    "jobs_with_suffix",
    "wait_for",
]

#: Virtual seconds per wall second at the emulator (a ~50 s simulated job lasts ~5 s).
SPEED = 10.0
#: Configs in the fan-out sweep (the issue's "two dozen").
FANOUT = 24
#: Figures the suite measured, printed at the end of the session (and copied into docs/scale.md by hand).
MEASURED: dict[str, Any] = {}
_LOG_PATH = re.compile(r"log_path='dag_id=(?P<dag>[^/]+)/run_id=(?P<run>[^/]+)/task_id=(?P<task>[^/]+)/"
                       r"(?:map_index=(?P<map>-?\d+)/)?attempt=(?P<try>\d+)\.log'")  # fmt: skip


def measure(key: str, value: Any) -> None:
    """Record one figure for the end-of-session summary."""
    MEASURED[key] = value


def workers_that_ran(cluster: ClusterAirflow, dag_id: str, run_id: str) -> dict[str, set[int]]:
    """Map each Celery worker to the map indexes of ``run_id`` it executed (from its "Executing workload" lines).

    A task instance records the host it ran on, and both workers share this host: the worker's own log is what
    says which one took the workload.
    """
    ran: dict[str, set[int]] = {}
    for name, comp in cluster.components.items():
        if not name.startswith("worker-"):
            continue
        for match in _LOG_PATH.finditer(comp.log_path.read_text(errors="replace")):
            if match["dag"] == dag_id and match["run"] == run_id:
                ran.setdefault(name, set()).add(int(match["map"] or -1))
    return ran


def worker_running(cluster: ClusterAirflow, pid: int) -> str:
    """Return the Celery worker whose process tree holds ``pid`` (a task process)."""
    for name, comp in cluster.components.items():
        if name.startswith("worker-") and comp.alive():
            tree = {p.pid for p in psutil.Process(comp.pid).children(recursive=True)}
            if pid in tree:
                return name
    raise AssertionError(f"pid {pid} is in no Celery worker's process tree")


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its children, in bytes."""
    proc = psutil.Process(pid)
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def mapped(
    cluster: ClusterAirflow, dag_id: str, run_id: str, task_id: str = "fine_tune"
) -> list[dict[str, Any]]:
    """Every mapped task instance of one task in a run, by map index."""
    tis = [ti for ti in cluster.rest.task_instances(dag_id, run_id) if ti["task_id"] == task_id]
    return sorted(tis, key=lambda ti: ti["map_index"])


def wait_all_deferred(
    cluster: ClusterAirflow, dag_id: str, run_id: str, count: int, *, timeout: float = 600
) -> list[dict[str, Any]]:
    """Wait (bounded) until ``count`` mapped fine-tunes are deferred and each trigger is held by a triggerer."""
    return wait_for(
        lambda: mapped(cluster, dag_id, run_id),
        lambda tis: (
            len(tis) == count and all(ti["state"] == "deferred" and ti.get("triggerer_job") for ti in tis)
        ),
        timeout=timeout,
        what=f"{count} deferred fine-tunes of {run_id}, each held by a triggerer",
    )


def owners(tis: list[dict[str, Any]]) -> Counter[int]:
    """Triggers per triggerer job id among deferred task instances."""
    return Counter(int(ti["triggerer_job"]["id"]) for ti in tis if ti.get("triggerer_job"))


def logged_events(
    cluster: ClusterAirflow, dag_id: str, run_id: str, map_index: int, try_number: int = 1
) -> list[str]:
    """The "Together event [...]" lines of one mapped try's log, in order."""
    lines = cluster.rest.task_log_events(dag_id, run_id, "fine_tune", try_number, map_index)
    return [line for line in lines if line.startswith("Together event [")]


def job_ids_by_map_index(cluster: ClusterAirflow, dag_id: str, run_id: str, count: int) -> dict[int, str]:
    """The job id each mapped try submitted (its ``job_id`` XCom)."""
    return {
        i: str(cluster.rest.xcom(dag_id, run_id, "fine_tune", "job_id", map_index=i)) for i in range(count)
    }


_MISROUTED = re.compile(
    r"\] (?P<line>Together event \[.*?) \[airflow_provider_together\.triggers\.TogetherFineTuneTrigger\] (?P<kv>.*)$"
)


def misrouted_events(cluster: ClusterAirflow, dag_id: str, run_id: str, map_index: int) -> list[str]:
    """Event lines of one mapped task that the triggerer wrote to its own log instead of the task's.

    Airflow 3.3.2's triggerer receives a trigger's log lines and its "finished" message on two channels; when
    it handles "finished" first, it drops the trigger's log file and writes the lines still in flight to its
    own output (``TriggerRunnerSupervisor._process_log_messages_from_subprocess`` falls back to its logger).
    A trigger logs its last events just before it fires, so under load some end up there, tagged with their
    task instance: not lost, but not in the task's log either.
    """
    found = []
    for name, comp in cluster.components.items():
        if not name.startswith("triggerer-"):
            continue
        for raw in comp.log_path.read_text(errors="replace").splitlines():
            match = _MISROUTED.search(raw)
            if not match:
                continue
            kv = dict(item.split("=", 1) for item in match["kv"].split() if "=" in item)
            if (kv.get("dag_id"), kv.get("run_id"), kv.get("map_index")) == (dag_id, run_id, str(map_index)):
                found.append(match["line"])
    return found


def now() -> float:
    """Monotonic seconds, for the durations the suite reports (never asserted)."""
    return time.monotonic()


def job_events(emulator: Any, job_id: str) -> list[Any]:
    """Every Together event of a job, as the provider's model (oldest first, as the API lists them)."""
    import httpx

    from airflow_provider_together.models import FineTuneEvent

    response = httpx.get(
        f"{emulator.base_url}/fine-tunes/{job_id}/events",
        headers={"Authorization": f"Bearer {E2E_API_KEY}"},
        timeout=10,
    )
    response.raise_for_status()
    return [FineTuneEvent.model_validate(item) for item in response.json()["data"]]


def cursors(cluster: ClusterAirflow, dag_id: str, run_id: str, count: int) -> dict[int, Any]:
    """Each mapped try's event cursor as its trigger last mirrored it into XCom (None before the first)."""
    from airflow_provider_together._fine_tune.progress import as_cursor
    from airflow_provider_together.triggers import CURSOR_XCOM_KEY

    return {
        i: as_cursor(cluster.rest.xcom_or_none(dag_id, run_id, "fine_tune", CURSOR_XCOM_KEY, map_index=i))
        for i in range(count)
    }


def explain_run(cluster: ClusterAirflow, dag_id: str, run_id: str, *, tail: int = 25) -> str:
    """A failure message for a run that did not succeed: each unsuccessful task instance with its tries' log tails.

    CI shows only the assertion message; the last lines of a failed try's log are what say why (Together's
    error, a config error, a timeout), so they go into it rather than a bare list of task-instance dicts.
    """
    parts = []
    for ti in cluster.rest.task_instances(dag_id, run_id):
        if ti["state"] == "success":
            continue
        name = f"{ti['task_id']}[{ti['map_index']}]"
        parts.append(f"--- {name}: state={ti['state']} try_number={ti['try_number']}")
        for try_number in range(1, int(ti["try_number"] or 0) + 1):
            try:
                lines = cluster.rest.task_log(dag_id, run_id, ti["task_id"], try_number, ti["map_index"])
            except Exception as exc:  # a diagnostic must never hide the real failure
                lines = f"(log unavailable: {exc!r})"
            last = lines.splitlines()[-tail:]
            parts.append(f"    try {try_number}, last {len(last)} log lines:")
            parts.extend(f"      {line[:400]}" for line in last)
    return "\n".join(parts) or "(every task instance succeeded)"


def retry_reasons(
    cluster: ClusterAirflow, dag_id: str, run_id: str, tis: list[dict[str, Any]]
) -> Counter[str]:
    """Why tries before the last failed: the exception of each earlier try's log (type: message), counted.

    Task retries are part of surviving a flaky API (an ambiguous create whose job is not listed fails the try),
    so the suite reports what caused them: a cause that is not in that family is a bug to look at.
    """
    reasons: Counter[str] = Counter()
    for ti in tis:
        for try_number in range(1, int(ti["try_number"] or 1)):
            try:
                records = cluster.rest.task_log_records(
                    dag_id, run_id, ti["task_id"], try_number, ti["map_index"]
                )
            except Exception as exc:  # a measurement must never fail the run it describes
                reasons[f"(log unavailable: {type(exc).__name__})"] += 1
                continue
            reasons[_failure(records)] += 1
    return reasons


def _failure(records: list[dict[str, Any]]) -> str:
    """The exception that ended a try, as ``Type: first 120 characters``, ids replaced by <id>.

    structlog's ``error_detail`` lists the raised exception first, then its causes: the first entry is what
    failed the task (a ``TogetherError``), and the root cause, when there is one, is named after it.
    """
    for record in reversed(records):
        details = record.get("error_detail")
        if isinstance(details, list) and details and isinstance(details[0], dict):
            raised = details[0]
            text = f"{raised.get('exc_type', '?')}: {str(raised.get('exc_value', ''))[:120]}"
            root = details[-1]
            if len(details) > 1 and isinstance(root, dict):
                text += f" (cause: {root.get('exc_type', '?')})"
            return re.sub(r"\b(ft|file)-[0-9a-f-]+", "<id>", text)
    return "(no exception recorded)"
