"""A user marks a deferred fine-tune failed through the REST API: its job is cancelled within 30 s.

On a cluster the trigger lives in whichever triggerer claimed it; Airflow 3.3 runs the trigger's ``on_kill`` there,
and that cancels the job at the emulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from cluster_support import measure, now, wait_for

if TYPE_CHECKING:
    from cluster import ClusterAirflow

pytestmark = pytest.mark.cluster

DAG = "cluster_deferred"
TASK = "fine_tune"
CANCELLED = {"cancel_requested", "cancelled"}


def test_marking_deferred_task_failed_cancels_its_job(healthy_cluster: ClusterAirflow, emulator: Any) -> None:
    cluster = healthy_cluster
    suffix = "user-markfail"
    emulator.admin.add_scenario("stall", suffix=suffix, at=0.5)
    run_id = cluster.rest.trigger(DAG, {"suffix": suffix})
    ti = cluster.rest.wait_ti(DAG, run_id, TASK, states={"deferred"}, timeout=300)
    job_id = cluster.rest.xcom(DAG, run_id, TASK, "job_id")
    # Airflow runs on_kill only for a trigger the triggerer has started: wait until it streams events.
    wait_for(
        lambda: cluster.rest.task_log_events(DAG, run_id, TASK, 1),
        lambda lines: any("Together event [training_start]" in line for line in lines),
        timeout=180,
        what="the trigger streaming the job's events",
    )
    ti = cluster.rest.task_instance(DAG, run_id, TASK)
    assert ti["triggerer_job"] is not None

    cluster.rest.set_ti_state(DAG, run_id, TASK, "failed")
    marked = now()
    wait_for(
        lambda: emulator.admin.job(job_id)["status"],
        CANCELLED.__contains__,
        timeout=30,
        what=f"{job_id} cancelled",
    )
    measure("mark failed (REST) to cancel at the API [s]", round(now() - marked, 1))
    assert cluster.rest.wait_dag_run(DAG, run_id, timeout=120) == "failed"
