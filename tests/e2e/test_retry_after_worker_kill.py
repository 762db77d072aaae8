"""A worker dies right after submitting a synchronous fine-tune: the retry reattaches, one job exists.

The task process is found through the pid Airflow records on the task instance, and killed with SIGKILL, so
no ``on_kill``, no ``finally`` and no cancel runs: exactly what an OOM-killed or evicted worker looks like.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, Any

import psutil
import pytest
from e2e_support import job_status, jobs_with_suffix, wait_for

if TYPE_CHECKING:
    from local_airflow import LocalAirflow

pytestmark = pytest.mark.e2e

DAG = "e2e_sync"
TASK = "fine_tune"


def _worker_pids(airflow: LocalAirflow) -> set[int]:
    """Every process under the scheduler: LocalExecutor workers, their task supervisors and task processes."""
    return {p.pid for p in psutil.Process(airflow.components["scheduler"].pid).children(recursive=True)}


def test_sigkill_of_worker_after_submit_retry_reattaches_to_the_same_job(
    airflow: LocalAirflow, emulator: Any
) -> None:
    suffix = "e2e-worker-kill"
    emulator.admin.add_scenario("stall", suffix=suffix, at=0.5)
    run_id = airflow.rest.trigger(DAG, {"suffix": suffix})

    # The job id XCom is pushed right after the submit: that is the moment to pull the plug.
    wait_for(
        lambda: airflow.rest.xcom_or_none(DAG, run_id, TASK, "job_id"),
        lambda value: value is not None,
        timeout=180,
        what="job submitted by try 1",
    )
    job_id = airflow.rest.xcom(DAG, run_id, TASK, "job_id")
    ti = airflow.rest.task_instance(DAG, run_id, TASK)
    assert ti["state"] == "running"
    assert ti["try_number"] == 1
    pid = ti["pid"]
    # The pid Airflow recorded is a process of this deployment's worker tree, not some unrelated one.
    assert pid in _worker_pids(airflow)
    os.kill(pid, signal.SIGKILL)

    # Try 1 fails (killed), try 2 starts, finds the job in the task state store and waits on it.
    airflow.rest.wait_ti(
        DAG, run_id, TASK, states={"running"}, timeout=180, predicate=lambda t: t["try_number"] == 2
    )
    wait_for(
        lambda: airflow.rest.task_log_events(DAG, run_id, TASK, 2),
        lambda lines: any(job_id in line and "Reattach" in line for line in lines),
        timeout=120,
        what="try 2 reattaching to the job",
    )
    assert job_status(emulator, job_id) == "running"  # nobody cancelled it: SIGKILL leaves no chance to
    emulator.admin.set_job_scenario(job_id, "complete")

    assert airflow.rest.wait_dag_run(DAG, run_id, timeout=180) == "success"
    assert [job["id"] for job in jobs_with_suffix(emulator, suffix)] == [job_id]
    assert airflow.rest.xcom(DAG, run_id, TASK)["job_id"] == job_id
    assert [t["state"] for t in airflow.rest.tries(DAG, run_id, TASK)] == ["failed", "success"]
