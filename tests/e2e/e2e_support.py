"""Constants and helpers shared by the e2e conftest and test modules (a plain module: tests never import conftest)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# dev/ holds the launcher shared with `make airflow`; it is a script folder, not an installed package.
if str(REPO / "dev") not in sys.path:
    sys.path.insert(0, str(REPO / "dev"))

#: Secrets the suite later searches for in logs, XComs and rendered fields: long enough to be masked
#: (Airflow does not mask values shorter than 5 characters) and unlikely to appear by accident.
E2E_API_KEY = "tk-e2e-api-key-7f3a9c1d5e8b2046"
E2E_WANDB_KEY = "wandb-e2e-key-91b7e2c4d6f8a035"
#: Virtual seconds per wall second at the emulator: a ~50 s simulated job lasts ~5 s. Tests that must act
#: while a job runs lower it through the admin API.
E2E_SPEED = 10.0
T = TypeVar("T")
#: The connection's ``max_retries``: with 20 % of requests failing, 8 resends make a request that fails every
#: time (0.2^9) vanishingly rare, which is what a user on a flaky network would configure.
RETRIES = 8


def wait_for(fetch: Callable[[], T], done: Callable[[T], bool], *, timeout: float, what: str) -> T:
    """Poll ``fetch`` until ``done(value)``; fail with the last value after ``timeout`` seconds (bounded)."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f}s; last value: {value!r}")
        time.sleep(0.5)
        value = fetch()
    return value


def jobs_with_suffix(emulator: Any, suffix: str) -> list[dict[str, Any]]:
    """Jobs the emulator holds for one suffix (each scenario uses its own suffix)."""
    return [job for job in emulator.admin.jobs() if job.get("suffix") == suffix]


def job_status(emulator: Any, job_id: str) -> str:
    """The job's status as the emulator sees it now."""
    return str(emulator.admin.job(job_id)["status"])


def expected_event_lines(emulator: Any, job_id: str) -> list[str]:
    """Every event of the job, formatted the way the provider logs it ("Together event [type] message")."""
    from airflow_provider_together._fine_tune.progress import format_event
    from airflow_provider_together.models import FineTuneEvent

    response = httpx.get(
        f"{emulator.base_url}/fine-tunes/{job_id}/events",
        headers={"Authorization": f"Bearer {E2E_API_KEY}"},
        timeout=10,
    )
    response.raise_for_status()
    return [format_event(FineTuneEvent.model_validate(item)) for item in response.json()["data"]]


def start_stalled_run(
    airflow: Any, emulator: Any, dag_id: str, suffix: str, task_id: str = "fine_tune"
) -> tuple[str, str]:
    """Trigger a deferrable fine-tune whose job stalls in ``running``; return (run_id, job_id) once it is watched.

    The stall keeps the job alive for as long as a test needs to act; ``set_job_scenario(job_id, "complete")``
    lets it finish. Returning only once the trigger streams events matters twice: the triggerer picks new
    triggers up on its next loop and Airflow runs a trigger's ``on_kill`` only once it runs (a user acts on a
    task whose log already moves), and a trigger that fires within a second of the deferral races the
    scheduler's handling of that deferral (Airflow then marks the try "changed externally").
    """
    emulator.admin.add_scenario("stall", suffix=suffix, at=0.5)
    run_id = airflow.rest.trigger(dag_id, {"suffix": suffix})
    airflow.rest.wait_ti(dag_id, run_id, task_id, states={"deferred"}, timeout=180)
    job_id = airflow.rest.xcom(dag_id, run_id, task_id, "job_id")
    assert isinstance(job_id, str)
    assert job_id.startswith("ft-")
    wait_streaming(airflow, dag_id, run_id, task_id, try_number=1)
    wait_deferral_exit_seen(airflow, dag_id, run_id, task_id, try_number=1)
    return run_id, job_id


def wait_deferral_exit_seen(airflow: Any, dag_id: str, run_id: str, task_id: str, *, try_number: int) -> None:
    """Wait until the scheduler has handled the executor's report that a try's worker exited after deferring.

    Airflow 3.3.2's scheduler race, seen on a loaded 2-core machine: the worker process that deferred reports
    "success" to the executor; when the scheduler reads that report only after the trigger has fired and the
    same try is queued again to resume, the report clears the executor's record of the resumed try, and the
    scheduler fails it ("finished with state success, but the task instance's state attribute is queued").
    Airflow's own guard covers a resumed try still ``scheduled``, not one already ``queued`` or ``running``
    (apache/airflow#66374, #67287, #72716; docs/scale.md). Production jobs
    run for minutes, far past that window; the suite's jobs finish when a test says so, so the suite lets a
    job finish only after the scheduler log shows the report was handled (bounded).
    """
    needle = f"task_id='{task_id}', run_id='{run_id}', try_number={try_number}"
    log = airflow.log_dir / "scheduler.log"
    wait_for(
        lambda: [
            line
            for line in log.read_text(errors="replace").splitlines()
            if "Received executor event" in line and f"dag_id='{dag_id}'" in line and needle in line
        ],
        bool,
        timeout=60,
        what=f"the scheduler handling the exit of try {try_number}'s deferring worker",
    )


def wait_streaming(airflow: Any, dag_id: str, run_id: str, task_id: str, *, try_number: int) -> None:
    """Wait until the triggerer streams a try's job events into its log: its trigger is running (bounded)."""
    wait_for(
        lambda: airflow.rest.task_log_events(dag_id, run_id, task_id, try_number),
        lambda lines: any("Together event [training_start]" in line for line in lines),
        timeout=90,
        what=f"the triggerer streaming try {try_number}'s job events into the task log",
    )
