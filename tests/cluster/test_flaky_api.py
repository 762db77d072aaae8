"""The 24-config fan-out while the emulator fails about 20 % of requests: all succeed, exactly 24 jobs.

The faults hit every route the provider uses, from the workers (upload, limits, price, create) and from both
triggerers (status and event polls): 429 with Retry-After, 500, 503 and dropped connections. A 5xx or a drop on
the create is the ambiguous case; the operator looks the job up (and the task retry looks again) rather than
paying twice.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from cluster_support import FANOUT, explain_run, job_ids_by_map_index, mapped, measure, now, retry_reasons

if TYPE_CHECKING:
    from cluster import ClusterAirflow

pytestmark = pytest.mark.cluster

DAG = "cluster_fanout"
#: Four independent rules of 5.5 % each: a request fails with probability 1 - 0.945^4, about 20 %.
FAULTS = [
    {"kind": "status", "status": 429, "retry_after": 1},
    {"kind": "status", "status": 500},
    {"kind": "status", "status": 503},
    {"kind": "drop"},
]
RATE = 0.055


def test_fanout_survives_a_flaky_api_with_exactly_one_job_per_config(
    healthy_cluster: ClusterAirflow, emulator: Any
) -> None:
    cluster = healthy_cluster
    prefix = "flaky"
    for fault in FAULTS:
        options = {k: v for k, v in fault.items() if k != "kind"}
        emulator.admin.add_fault("/v1/*", fault["kind"], rate=RATE, **options)
    started = now()
    run_id = cluster.rest.trigger(DAG, {"suffix": prefix, "count": FANOUT})

    assert cluster.rest.wait_dag_run(DAG, run_id, timeout=1200) == "success", explain_run(
        cluster, DAG, run_id
    )
    measure(
        f"fan-out of {FANOUT} with 20 % failed requests, trigger to success [s]", round(now() - started, 1)
    )

    tis = mapped(cluster, DAG, run_id)
    assert {ti["state"] for ti in tis} == {"success"}
    assert len(tis) == FANOUT
    # Each task has its own job: an ambiguous create must never adopt a sibling's (suffix flaky-1 vs flaky-12).
    job_ids = job_ids_by_map_index(cluster, DAG, run_id, FANOUT)
    assert len(set(job_ids.values())) == FANOUT, job_ids
    jobs = [job for job in emulator.admin.jobs() if str(job.get("suffix", "")).startswith(f"{prefix}-")]
    assert len(jobs) == FANOUT
    assert Counter(job["suffix"] for job in jobs) == Counter(f"{prefix}-{i}" for i in range(FANOUT))
    assert {job["status"] for job in jobs} == {"completed"}
    hits = {
        f"{rule['kind']} {rule.get('status') or ''}".strip(): rule["hits"] for rule in emulator.admin.faults()
    }
    requests = sum(emulator.admin.requests().values())
    measure("flaky fan-out: injected failures / requests", f"{sum(hits.values())} / {requests} {hits}")
    retried = sum(1 for ti in tis if ti["try_number"] > 1)
    measure("flaky fan-out: mapped tasks that needed an Airflow retry", retried)
    measure("flaky fan-out: why earlier tries failed", dict(retry_reasons(cluster, DAG, run_id, tis)))
    assert sum(hits.values()) >= 10, hits
