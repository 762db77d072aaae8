"""DAGs the e2e suite triggers through the REST API (copied into the deployment's dags folder with the examples).

Each run gets its own ``suffix`` through ``conf``: the emulator's scenario rules (stall, complete) match jobs by
suffix, and the tests count jobs by it, so scenarios never see each other's jobs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_provider_together.operators import TogetherFineTuneOperator, TogetherUploadFileOperator

MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
TRAIN_FILE = str(Path(__file__).resolve().parent / "data" / "e2e_train.jsonl")
COMMON = {
    "training_file": "{{ params.training_file }}",
    "model": MODEL,
    "lora": True,
    "n_epochs": 1,
    "n_checkpoints": 1,
    # The W&B key comes from a connection; the suite checks it never shows up anywhere.
    "wandb_conn_id": "wandb_e2e",
    "wandb_project_name": "e2e",
    "poll_interval": 1.0,
    "timeout": 600,
}
PARAMS = {"suffix": "e2e", "training_file": TRAIN_FILE}

with DAG(
    dag_id="e2e_deferred",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=PARAMS,
    tags=["e2e"],
):
    TogetherFineTuneOperator(task_id="fine_tune", suffix="{{ params.suffix }}", deferrable=True, **COMMON)

with DAG(
    dag_id="e2e_sync",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=PARAMS,
    tags=["e2e"],
):
    # Polls in the worker: the case where a dying worker takes the waiting code down with it.
    TogetherFineTuneOperator(
        task_id="fine_tune",
        suffix="{{ params.suffix }}",
        deferrable=False,
        retries=1,
        retry_delay=timedelta(seconds=1),
        **COMMON,
    )

with DAG(
    dag_id="e2e_fanout",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={**PARAMS, "count": 10},
    tags=["e2e"],
):

    @task
    def suffixes(params: dict | None = None) -> list[str]:
        """One suffix per fine-tune, so the test can count this run's jobs at the emulator."""
        assert params is not None
        return [f"{params['suffix']}-{i}" for i in range(int(params["count"]))]

    # Task retries are part of surviving a flaky API: when a create is ambiguous (5xx or a dropped connection
    # after sending) and the job is not in the list, the operator fails rather than risk a second job, and the
    # retry looks again before submitting. The test checks that this never yields more than one job per task.
    flaky_retries = {"retries": 3, "retry_delay": timedelta(seconds=2)}
    upload = TogetherUploadFileOperator(task_id="upload", path="{{ params.training_file }}", **flaky_retries)
    TogetherFineTuneOperator.partial(
        task_id="fine_tune",
        deferrable=True,
        **flaky_retries,
        **{**COMMON, "training_file": upload.output},
    ).expand(suffix=suffixes())
