"""PostgreSQL restarts while fine-tunes are deferred: the tasks resume and succeed, one job each.

A fast shutdown breaks every connection of every component, as a database failover does. Components that exit
on it are restarted, as their process supervisor (systemd, Kubernetes) would; the suite reports which ones did.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from cluster_support import explain_run, job_ids_by_map_index, mapped, measure, now, wait_all_deferred

if TYPE_CHECKING:
    from cluster import ClusterAirflow

pytestmark = pytest.mark.cluster

DAG = "cluster_fanout"
COUNT = 6


def test_deferred_tasks_resume_after_a_database_restart(
    healthy_cluster: ClusterAirflow, emulator: Any
) -> None:
    cluster = healthy_cluster
    prefix = "pg-restart"
    emulator.admin.set_default_scenario("stall", at=0.5)
    run_id = cluster.rest.trigger(DAG, {"suffix": prefix, "count": COUNT})
    wait_all_deferred(cluster, DAG, run_id, COUNT, timeout=600)
    job_ids = job_ids_by_map_index(cluster, DAG, run_id, COUNT)

    started = now()
    cluster.postgres.restart()
    measure("PostgreSQL restart (fast shutdown + start) [s]", round(now() - started, 1))
    for job_id in job_ids.values():  # the jobs finish while Airflow reconnects
        emulator.admin.set_job_scenario(job_id, "complete")
    time.sleep(20)  # let each component notice the broken connections
    dead = sorted(name for name, comp in cluster.components.items() if not comp.alive())
    measure("components that exited on the database restart", dead)
    for name in dead:
        cluster.restart_component(name)

    assert cluster.rest.wait_dag_run(DAG, run_id, timeout=600) == "success", explain_run(cluster, DAG, run_id)
    measure("database restart to the run's success [s]", round(now() - started, 1))
    tis = mapped(cluster, DAG, run_id)
    assert {ti["state"] for ti in tis} == {"success"}
    jobs = [job for job in emulator.admin.jobs() if str(job.get("suffix", "")).startswith(f"{prefix}-")]
    assert Counter(job["suffix"] for job in jobs) == Counter(f"{prefix}-{i}" for i in range(COUNT))
    assert {job["status"] for job in jobs} == {"completed"}
