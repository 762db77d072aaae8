"""SIGKILL the triggerer that holds the sweep's triggers mid-job: the other one takes them over.

The suite sets ``[triggerer] job_heartbeat_sec = 2`` and ``triggerer_health_check_threshold = 10``; the takeover
time measured here (kill to the last trigger reassigned) is what docs/scale.md quotes, next to the triggers per
triggerer, the request rate at the API per running job and the memory per trigger.

Events: none may be lost, and a line may repeat only inside the documented window, the events a trigger logged
after the cursor it last mirrored into XCom (a kill between writing a log line and persisting the cursor).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from cluster_support import (
    FANOUT,
    cursors,
    explain_run,
    job_events,
    job_ids_by_map_index,
    logged_events,
    mapped,
    measure,
    misrouted_events,
    now,
    owners,
    tree_rss,
    wait_all_deferred,
    wait_for,
)

from airflow_provider_together._fine_tune.progress import format_event, new_events

if TYPE_CHECKING:
    from cluster import ClusterAirflow

pytestmark = pytest.mark.cluster

DAG = "cluster_fanout"
POLL_INTERVAL_S = 2.0  # the DAG's poll_interval
RATE_WINDOW_S = 30.0


def _measure_request_rate(emulator: Any, triggers: int) -> None:
    """Requests per minute at the API from ``triggers`` polling triggers, scaled to 1,000 running jobs."""
    emulator.admin.reset_counts()
    time.sleep(RATE_WINDOW_S)
    counts = emulator.admin.requests()
    polls = sum(n for route, n in counts.items() if route.startswith("GET "))
    per_minute = polls * 60.0 / RATE_WINDOW_S
    measure("API requests per minute per running job at poll_interval=2 s", round(per_minute / triggers, 2))
    measure("=> per 1,000 running jobs at poll_interval=2 s [req/min]", round(per_minute / triggers * 1000))
    measure("request routes while waiting", counts)


def test_triggerer_sigkill_moves_triggers_to_the_other_one(
    healthy_cluster: ClusterAirflow, emulator: Any
) -> None:
    cluster = healthy_cluster
    prefix = "failover"
    emulator.admin.set_default_scenario("stall", at=0.5)  # every job holds in running until told to complete
    rss_idle = {name: tree_rss(cluster.components[name].pid) for name in cluster.triggerer_jobs}
    run_id = cluster.rest.trigger(DAG, {"suffix": prefix, "count": FANOUT})

    wait_all_deferred(cluster, DAG, run_id, FANOUT, timeout=900)
    # Every trigger runs and has mirrored its cursor: it is streaming, not just assigned.
    wait_for(
        lambda: cursors(cluster, DAG, run_id, FANOUT),
        lambda got: all(c is not None and c.get("t") is not None for c in got.values()),
        timeout=300,
        what="every trigger mirroring its event cursor",
    )
    tis = mapped(cluster, DAG, run_id)
    held = owners(tis)
    measure("triggers per triggerer job before the kill", dict(held))
    _measure_request_rate(emulator, FANOUT)

    victim_job, victim_count = held.most_common(1)[0]
    victim = cluster.triggerer_of_job(victim_job)
    survivor = next(name for name in cluster.triggerer_jobs if name != victim)
    survivor_job = cluster.triggerer_jobs[survivor]
    rss_before = tree_rss(cluster.components[survivor].pid)
    before_kill = cursors(cluster, DAG, run_id, FANOUT)

    cluster.kill_component(victim)  # SIGKILL of the whole process group: no cleanup, no graceful hand-over
    killed = now()
    tis = wait_for(
        lambda: mapped(cluster, DAG, run_id),
        lambda got: all(ti.get("triggerer_job") and ti["triggerer_job"]["id"] == survivor_job for ti in got),
        timeout=180,
        what=f"every trigger moved from triggerer job {victim_job} to {survivor_job}",
    )
    takeover = round(now() - killed, 1)
    measure("triggerer takeover after SIGKILL at heartbeat 2 s / threshold 10 s [s]", takeover)
    measure("triggers taken over", victim_count)
    assert {ti["state"] for ti in tis} == {"deferred"}

    # Memory per trigger: the survivor's growth once the moved triggers run (the first poll waits <= 2 s).
    time.sleep(10)
    rss_after = tree_rss(cluster.components[survivor].pid)
    measure("triggerer RSS idle [MB]", {n: round(v / 2**20, 1) for n, v in rss_idle.items()})
    measure(f"survivor RSS with {FANOUT - victim_count} -> {FANOUT} triggers [MB]",
            f"{rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f}")  # fmt: skip
    measure(
        "survivor RSS growth per moved trigger [KB]", round((rss_after - rss_before) / 1024 / victim_count, 1)
    )

    job_ids = job_ids_by_map_index(cluster, DAG, run_id, FANOUT)
    for job_id in job_ids.values():
        emulator.admin.set_job_scenario(job_id, "complete")
    assert cluster.rest.wait_dag_run(DAG, run_id, timeout=600) == "success", explain_run(cluster, DAG, run_id)

    tis = mapped(cluster, DAG, run_id)
    assert {ti["state"] for ti in tis} == {"success"}
    assert {ti["try_number"] for ti in tis} == {1}  # resumed, not retried
    jobs = [job for job in emulator.admin.jobs() if str(job.get("suffix", "")).startswith(f"{prefix}-")]
    assert len(jobs) == FANOUT
    repeated_total = 0
    misrouted = 0
    for index, job_id in job_ids.items():
        events = job_events(emulator, job_id)
        expected = Counter(format_event(event) for event in events)
        elsewhere = Counter(misrouted_events(cluster, DAG, run_id, index))
        misrouted += sum(elsewhere.values())
        logged = Counter(logged_events(cluster, DAG, run_id, index)) + elsewhere
        assert not expected - logged, f"[{index}] {job_id} lost events: {expected - logged}"
        repeated = logged - expected
        window = Counter(format_event(event) for event in new_events(events, before_kill[index])[0])
        assert not repeated - window, f"[{index}] {job_id} repeated outside the window: {repeated - window}"
        repeated_total += sum(repeated.values())
    measure("event lines repeated after the takeover (all inside the window)", repeated_total)
    measure("failover: event lines in the triggerer's log instead of the task's (Airflow race)", misrouted)
