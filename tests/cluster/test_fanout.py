"""A retraining sweep on a distributed Airflow: one DAG run maps the fine-tune over 24 configs.

Every config is its own job at the emulator, every mapped task succeeds, the Celery workers share the work, and
each job's Together events are in the log of the task that submitted it (and in no other).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from cluster_support import (
    FANOUT,
    expected_event_lines,
    explain_run,
    job_ids_by_map_index,
    logged_events,
    mapped,
    measure,
    misrouted_events,
    now,
    workers_that_ran,
)

if TYPE_CHECKING:
    from cluster import ClusterAirflow

pytestmark = pytest.mark.cluster

DAG = "cluster_fanout"


def test_fanout_of_24_configs_runs_on_both_workers_one_job_each(
    healthy_cluster: ClusterAirflow, emulator: Any
) -> None:
    cluster = healthy_cluster
    prefix = "fanout"
    started = now()
    run_id = cluster.rest.trigger(DAG, {"suffix": prefix, "count": FANOUT})

    assert cluster.rest.wait_dag_run(DAG, run_id, timeout=900) == "success", explain_run(cluster, DAG, run_id)
    measure(f"fan-out of {FANOUT} fine-tunes, trigger to success [s]", round(now() - started, 1))

    tis = mapped(cluster, DAG, run_id)
    assert [ti["map_index"] for ti in tis] == list(range(FANOUT))
    assert {ti["state"] for ti in tis} == {"success"}
    jobs = [job for job in emulator.admin.jobs() if str(job.get("suffix", "")).startswith(f"{prefix}-")]
    assert Counter(job["suffix"] for job in jobs) == Counter(f"{prefix}-{i}" for i in range(FANOUT))
    assert {job["status"] for job in jobs} == {"completed"}

    # Both workers took a share of the mapped tries (a try runs twice: submit, then resume after the trigger).
    ran = workers_that_ran(cluster, DAG, run_id)
    measure("fan-out: map indexes run per worker", {name: len(idx) for name, idx in sorted(ran.items())})
    assert set(ran) == {"worker-1", "worker-2"}, ran
    assert set().union(*ran.values()) >= set(range(FANOUT))

    # Each job's events are logged for its own task, all of them, once, and no other job's. Lines Airflow's
    # triggerer misrouted to its own log (see misrouted_events) are counted, tagged with this task, and reported.
    job_ids = job_ids_by_map_index(cluster, DAG, run_id, FANOUT)
    assert len(set(job_ids.values())) == FANOUT
    misrouted = 0
    for index, job_id in job_ids.items():
        expected = Counter(expected_event_lines(emulator, job_id))
        assert sum(expected.values()) >= 10, (index, job_id)
        in_task_log = Counter(logged_events(cluster, DAG, run_id, index))
        elsewhere = Counter(misrouted_events(cluster, DAG, run_id, index))
        assert in_task_log + elsewhere == expected, (index, job_id, in_task_log, elsewhere)
        misrouted += sum(elsewhere.values())
    measure("fan-out: event lines in the triggerer's log instead of the task's (Airflow race)", misrouted)
