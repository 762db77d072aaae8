"""
The operators inside a real Airflow task runner: ``dag.test()`` against the emulator on loopback.

``dag.test()`` runs each task through the Task SDK runner and a deferred task's trigger inline, with a real
metadata DB, real XCom, asset events and (on Airflow 3.3) the task state store. It needs ``airflow db
migrate`` once in the isolated AIRFLOW_HOME and the DAG file inside the dags folder (airflow-3.md B11).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _fine_tune_support import FAST

pytestmark = [
    pytest.mark.timeout(240),
    # Airflow's in-process execution API (used by dag.test) imports starlette's TestClient, which warns about
    # httpx; that is Airflow's business, not a problem of this provider.
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]

EXAMPLES = Path(__file__).resolve().parents[1] / "example_dags"


@pytest.fixture(scope="session")
def dags_folder() -> Path:
    """Migrate the session's metadata DB once and return the dags folder ``dag.test`` accepts DAGs from."""
    from airflow.configuration import conf

    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=240,
        env=os.environ.copy(),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    folder = Path(conf.get("core", "dags_folder"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _load(folder: Path, source: Path | str, name: str, dag_id: str) -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    target = folder / name
    if isinstance(source, Path):
        shutil.copy(source, target)
    else:
        target.write_text(source)
    bag = DagBag(dag_folder=str(target))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def _xcoms(dag_id: str, run_id: str) -> dict[tuple[str, str], Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run_id).all()
        return {(row.task_id, row.key): row.value for row in rows}


def _state_record(dag_id: str, run_id: str, task_id: str) -> dict[str, Any] | None:
    """The fine-tune record in the task state store (Airflow 3.3+), or None on older Airflow."""
    try:
        from airflow.models.task_state_store import TaskStateStoreModel
    except ImportError:  # Airflow < 3.3
        return None
    from airflow.utils.session import create_session

    from airflow_provider_together._fine_tune.reattach import STATE_KEY

    with create_session() as session:
        row = (
            session.query(TaskStateStoreModel)
            .filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, key=STATE_KEY)
            .one()
        )
        value: dict[str, Any] = json.loads(row.value)
        return value


def _ti_states(dag_run: Any) -> dict[str, str]:
    # Read by id in a fresh session: attaching ``dag_run`` (still held by dag.test's session) raised
    # "another instance ... already present" and hid the failed run's task states behind that error.
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(TaskInstance.task_id, TaskInstance.state)
            .filter(TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id)
            .all()
        )
        return {task_id: str(state) for task_id, state in rows}


def test_weekly_example_dag_runs_deferred_and_publishes_the_model(
    dags_folder: Path, together_emulator_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    emu = together_emulator_conn
    emu.admin.update_settings(speed=FAST)
    monkeypatch.setenv("TOGETHER_EXAMPLE_POLL_INTERVAL", "0.1")
    monkeypatch.setenv("TOGETHER_EXAMPLE_DATA_DIR", str(tmp_path))
    dag = _load(
        dags_folder,
        EXAMPLES / "together_weekly_retraining.py",
        "together_weekly_retraining.py",
        "together_weekly_retraining",
    )

    dag_run = dag.test()

    assert str(dag_run.state) == "success", _ti_states(dag_run)
    xcoms = _xcoms(dag.dag_id, dag_run.run_id)
    job_id = xcoms[("fine_tune", "job_id")]
    url = f"https://api.together.ai/fine-tuning/{job_id}"
    assert xcoms[("fine_tune", "job_url")] == url
    # The link the UI shows is evaluated on the worker and stored as XCom, deferral included.
    assert xcoms[("fine_tune", "_link_TogetherFineTuneJobLink")] == url
    result = xcoms[("fine_tune", "return_value")]
    assert result["status"] == "completed"
    assert xcoms[("report", "return_value")] == result["model_output_name"]
    assert emu.admin.count("POST /v1/fine-tunes") == 1
    with create_session() as session:
        extras = [event.extra for event in session.query(AssetEvent).all()]
    assert any(extra.get("job_id") == job_id and extra.get("model_output_name") for extra in extras)
    # The deferral mark written before deferring was cleared on resume: a retry would reattach, not replace.
    record = _state_record(dag.dag_id, dag_run.run_id, "fine_tune")
    if record is not None:  # Airflow 3.3+ (no task state store before)
        assert record["job_id"] == job_id
        assert record["deferred_try"] is None


SYNC_DAG = textwrap.dedent(
    """
    from datetime import datetime
    from airflow.sdk import DAG
    from airflow_provider_together.operators import TogetherFineTuneOperator

    with DAG(dag_id="together_sync_secrets", schedule=None, start_date=datetime(2026, 1, 1)):
        TogetherFineTuneOperator(
            task_id="fine_tune",
            training_file="{{ params.training_file }}",
            model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
            n_epochs="{{ params.epochs }}",
            wandb_conn_id="wandb_e2e",
            hf_conn_id="hf_e2e",
            wandb_project_name="nightly",
            deferrable=False,
            poll_interval=0.1,
            params={"epochs": 1, "training_file": ""},
        )
    """
)


def test_sync_dag_keeps_secrets_out_of_xcom_and_rendered_fields(
    dags_folder: Path,
    together_emulator_conn: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from _fine_tune_support import write_training_file
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    emu = together_emulator_conn
    emu.admin.update_settings(speed=FAST)
    wandb_key = "wandb-e2e-key-9f8e7d6c5b4a"
    hf_token = "hf_e2e_token_1a2b3c4d5e6f"
    monkeypatch.setenv("AIRFLOW_CONN_WANDB_E2E", json.dumps({"conn_type": "generic", "password": wandb_key}))
    monkeypatch.setenv("AIRFLOW_CONN_HF_E2E", json.dumps({"conn_type": "generic", "password": hf_token}))
    dag = _load(dags_folder, SYNC_DAG, "together_sync_secrets.py", "together_sync_secrets")
    train = write_training_file(tmp_path / "train.jsonl")

    dag_run = dag.test(run_conf={"training_file": str(train)})

    assert str(dag_run.state) == "success", _ti_states(dag_run)
    xcoms = _xcoms(dag.dag_id, dag_run.run_id)
    assert xcoms[("fine_tune", "return_value")]["status"] == "completed"
    with create_session() as session:
        rendered = [row.rendered_fields for row in session.query(RenderedTaskInstanceFields).all()]
    assert any(fields.get("n_epochs") == "1" for fields in rendered)
    out, err = capfd.readouterr()
    everything = json.dumps([list(xcoms.items()), rendered], default=str) + out + err
    for secret in (wandb_key, hf_token):
        assert secret not in everything


def test_sensor_example_dag_waits_for_an_external_job(
    dags_folder: Path, together_emulator_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _fine_tune_support import create_job

    emu = together_emulator_conn
    emu.admin.update_settings(speed=FAST)
    monkeypatch.setenv("TOGETHER_EXAMPLE_POLL_INTERVAL", "0.1")
    job_id = create_job(tmp_path)  # "started elsewhere"
    dag = _load(
        dags_folder,
        EXAMPLES / "together_wait_for_external_job.py",
        "together_wait_for_external_job.py",
        "together_wait_for_external_job",
    )

    dag_run = dag.test(run_conf={"job_id": job_id})

    assert str(dag_run.state) == "success", _ti_states(dag_run)
    xcoms = _xcoms(dag.dag_id, dag_run.run_id)
    assert xcoms[("wait_for_job", "return_value")]["job_id"] == job_id
    assert (
        xcoms[("use_model", "return_value")] == xcoms[("wait_for_job", "return_value")]["model_output_name"]
    )
