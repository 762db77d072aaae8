"""SIGKILL the Celery worker right after it submitted a fine-tune: the retry reattaches, one job exists.

The whole worker goes (its process group: the Celery main process, its pool, the task supervisor and the task),
as when a worker host is lost. No ``on_kill`` and no ``finally`` runs. The scheduler fails the try once its
heartbeat is older than ``[scheduler] task_instance_heartbeat_timeout`` (60 s in the suite), and the retry runs
on the other worker, finds the job in the task state store and waits on it instead of paying twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from cluster_support import explain_run, jobs_with_suffix, measure, now, wait_for, worker_running

if TYPE_CHECKING:
    from cluster import ClusterAirflow

pytestmark = pytest.mark.cluster

DAG = "cluster_sync"
TASK = "fine_tune"


def test_sigkill_of_celery_worker_after_submit_retry_reattaches(
    healthy_cluster: ClusterAirflow, emulator: Any
) -> None:
    cluster = healthy_cluster
    suffix = "worker-kill"
    emulator.admin.add_scenario("stall", suffix=suffix, at=0.5)
    run_id = cluster.rest.trigger(DAG, {"suffix": suffix})

    # The job id XCom is pushed right after the create call: that is the moment to pull the plug.
    wait_for(
        lambda: cluster.rest.xcom_or_none(DAG, run_id, TASK, "job_id"),
        lambda value: value is not None,
        timeout=300,
        what="job submitted by try 1",
    )
    job_id = cluster.rest.xcom(DAG, run_id, TASK, "job_id")
    ti = cluster.rest.task_instance(DAG, run_id, TASK)
    assert (ti["state"], ti["try_number"]) == ("running", 1)
    victim = worker_running(cluster, ti["pid"])
    cluster.kill_component(victim)
    killed = now()

    cluster.rest.wait_ti(
        DAG, run_id, TASK, states={"running"}, timeout=300, predicate=lambda t: t["try_number"] == 2
    )
    measure("worker SIGKILL to the retry running [s]", round(now() - killed, 1))
    wait_for(
        lambda: cluster.rest.task_log_events(DAG, run_id, TASK, 2),
        lambda lines: any(job_id in line and "Reattach" in line for line in lines),
        timeout=180,
        what="try 2 reattaching to the job",
    )
    assert worker_running(cluster, cluster.rest.task_instance(DAG, run_id, TASK)["pid"]) != victim
    assert (
        emulator.admin.job(job_id)["status"] == "running"
    )  # nobody cancelled it: SIGKILL leaves no chance to
    emulator.admin.set_job_scenario(job_id, "complete")

    assert cluster.rest.wait_dag_run(DAG, run_id, timeout=300) == "success", explain_run(cluster, DAG, run_id)
    assert [job["id"] for job in jobs_with_suffix(emulator, suffix)] == [job_id]
    assert cluster.rest.xcom(DAG, run_id, TASK)["job_id"] == job_id
    assert [t["state"] for t in cluster.rest.tries(DAG, run_id, TASK)] == ["failed", "success"]
