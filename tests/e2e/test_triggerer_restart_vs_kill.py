"""A triggerer restart never cancels a deferred job; a user's kill always does, on every supported Airflow.

On Airflow 3.3 the kill reaches the trigger's ``on_kill``. Airflow 3.1 and 3.2 have no trigger ``on_kill``: the
trigger's ``cleanup()`` runs both when the triggerer stops (restart, takeover) and when the task was killed, and
cancels only when Airflow says the task instance left ``deferred``. This test runs the same scenario everywhere;
on 3.1 it is the proof that the cleanup path tells the two apart
(``make e2e VENV=.venv-af31 AIRFLOW_VERSION=3.1.8 PYTEST_ARGS=tests/e2e/test_triggerer_restart_vs_kill.py``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
from e2e_support import job_status, start_stalled_run, wait_for

if TYPE_CHECKING:
    from local_airflow import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # a triggerer restart on a loaded machine

DAG = "e2e_deferred"
TASK = "fine_tune"
CANCELLED = {"cancel_requested", "cancelled"}
CANCEL_ROUTE = "POST /v1/fine-tunes/{job_id}/cancel"


def test_graceful_triggerer_restart_keeps_the_job_and_a_kill_cancels_it(
    airflow: LocalAirflow, emulator: Any
) -> None:
    run_id, job_id = start_stalled_run(airflow, emulator, DAG, "e2e-restart-vs-kill")
    cancels_before = emulator.admin.count(CANCEL_ROUTE)
    old_triggerer = airflow.rest.task_instance(DAG, run_id, TASK)["triggerer_job"]["id"]

    # SIGTERM: the triggerer stops its triggers (each one's cleanup() runs) and exits; the task stays deferred.
    airflow.restart_component("triggerer")
    airflow.wait_healthy(timeout=180)
    # The new triggerer picks the trigger up again (same try), and the job was never cancelled.
    airflow.rest.wait_ti(
        DAG,
        run_id,
        TASK,
        states={"deferred"},
        timeout=120,
        predicate=lambda ti: ti["triggerer_job"] is not None and ti["triggerer_job"]["id"] != old_triggerer,
    )
    # Airflow 3.3 runs on_kill only for a trigger the triggerer has started: wait for the second start.
    wait_for(
        lambda: airflow.rest.task_log_events(DAG, run_id, TASK, 1),
        lambda lines: sum(" starting" in line and line.startswith("trigger ") for line in lines) >= 2,
        timeout=120,
        what="the new triggerer starting the trigger",
    )
    time.sleep(5)  # a cancel from the stopped trigger's cleanup() would have reached the emulator by now
    assert job_status(emulator, job_id) == "running"
    assert emulator.admin.count(CANCEL_ROUTE) == cancels_before
    assert airflow.rest.task_instance(DAG, run_id, TASK)["try_number"] == 1

    airflow.rest.set_ti_state(DAG, run_id, TASK, "failed")

    # 3.3: on_kill, bounded by [triggerer] on_kill_timeout. 3.1 / 3.2: cleanup(), once the triggerer drops the
    # trigger (up to about a minute on a loaded machine).
    wait_for(
        lambda: job_status(emulator, job_id), CANCELLED.__contains__, timeout=120, what=f"{job_id} cancelled"
    )
    assert airflow.rest.wait_dag_run(DAG, run_id, timeout=60) == "failed"
