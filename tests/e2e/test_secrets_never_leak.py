"""The API key and the W&B key never appear in any task log, XCom value or rendered template (read via REST).

The scan covers every DAG run the e2e deployment has executed by then (this module runs after the scenario
modules), plus a run of its own that uses both secrets, so it never passes by having looked at nothing.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from e2e_support import E2E_API_KEY, E2E_WANDB_KEY, expected_event_lines, jobs_with_suffix, start_stalled_run

if TYPE_CHECKING:
    from local_airflow import LocalAirflow

pytestmark = pytest.mark.e2e

SECRETS = {"API key": E2E_API_KEY, "W&B key": E2E_WANDB_KEY}


def _texts_of_run(airflow: LocalAirflow, dag_id: str, run_id: str) -> dict[str, str]:
    """Every log (each try), XCom value and rendered field set of a run, as text keyed by where it came from."""
    rest = airflow.rest
    found: dict[str, str] = {}
    for ti in rest.task_instances(dag_id, run_id):
        task_id, map_index = ti["task_id"], ti["map_index"]
        where = f"{dag_id}/{run_id}/{task_id}[{map_index}]"
        found[f"{where} rendered"] = json.dumps(ti.get("rendered_fields"), default=str)
        # Tries as Airflow records them: a try whose state was "changed externally" may leave a gap.
        for try_number in [t["try_number"] for t in rest.tries(dag_id, run_id, task_id, map_index)]:
            found[f"{where} log try {try_number}"] = rest.task_log(
                dag_id, run_id, task_id, try_number, map_index
            )
        for key in rest.xcom_keys(dag_id, run_id, task_id, map_index):
            value = rest.xcom(dag_id, run_id, task_id, key, map_index)
            found[f"{where} xcom {key}"] = json.dumps(value, default=str)
    return found


def test_secrets_absent_from_logs_xcom_and_rendered_fields(airflow: LocalAirflow, emulator: Any) -> None:
    suffix = "e2e-secrets"
    run_id, job_id = start_stalled_run(airflow, emulator, "e2e_deferred", suffix)
    emulator.admin.set_job_scenario(job_id, "complete")
    state = airflow.rest.wait_dag_run("e2e_deferred", run_id, timeout=180)
    assert state == "success", _texts_of_run(airflow, "e2e_deferred", run_id)  # the logs say why
    # Both secrets were really used: the job was created with the W&B key, so Together started a W&B run.
    assert [job["id"] for job in jobs_with_suffix(emulator, suffix)] == [job_id]
    assert any("[wandb_init]" in line for line in expected_event_lines(emulator, job_id))
    assert airflow.rest.xcom("e2e_deferred", run_id, "fine_tune")["wandb_url"]

    texts: dict[str, str] = {}
    for dag_id in ("e2e_deferred", "e2e_sync", "e2e_fanout"):
        runs = airflow.rest.request("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
        for run in runs:
            texts.update(_texts_of_run(airflow, dag_id, run["dag_run_id"]))

    logs = [name for name in texts if " log try " in name]
    assert any("Together event" in texts[name] for name in logs)  # the logs we scan are the real, full ones
    assert any(" xcom job_id" in name for name in texts)
    # Belt and braces: the files behind those logs (and the components' own output), including tries the API
    # cannot list (a try Airflow marked "changed externally" has a log file but no history row).
    for path in [*airflow.home.joinpath("logs").rglob("*"), *airflow.log_dir.glob("*.log")]:
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    leaks = [
        f"{label} in {where}"
        for where, text in texts.items()
        for label, secret in SECRETS.items()
        if secret in text
    ]
    assert leaks == []
