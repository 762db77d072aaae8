"""DAGs the cluster suite triggers through the REST API (``make cluster`` offers them too).

Each run passes a ``suffix`` through ``conf``: the emulator's scenarios match jobs by suffix and the tests count a
run's jobs by it. ``poll_interval`` is a param so that the suite can measure the request rate at a known interval.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_provider_together.operators import TogetherFineTuneOperator, TogetherUploadFileOperator

MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
TRAIN_FILE = str(Path(__file__).resolve().parent / "data" / "cluster_train.jsonl")
COMMON = {
    "model": MODEL,
    "lora": True,
    "n_epochs": 1,
    "n_checkpoints": 1,
    "timeout": 1800,
}
PARAMS = {"suffix": "cluster", "training_file": TRAIN_FILE, "count": 24}
# A production DAG on a flaky network has task retries: an ambiguous create whose job is not in the list yet
# fails the try rather than risk a second job, and the retry looks again before submitting. At the flaky test's
# 20 % of failed requests a try fails about one time in four (an ambiguous create, or one request failing all
# 3 attempts the connection allows), so 3 retries left a run failing now and then (0.25^4 x 24 tasks ~ 9 %);
# with 6, about 1 in 700.
RETRIES = {"retries": 6, "retry_delay": timedelta(seconds=2)}

with DAG(
    dag_id="cluster_fanout",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=PARAMS,
    tags=["cluster"],
):

    @task
    def sweep(params: dict | None = None) -> list[dict]:
        """One config per learning rate of the sweep, each with its own suffix (the tests count jobs by it)."""
        assert params is not None
        return [
            {"suffix": f"{params['suffix']}-{i}", "learning_rate": round(1e-5 * (i + 1), 8)}
            for i in range(int(params["count"]))
        ]

    upload = TogetherUploadFileOperator(task_id="upload", path="{{ params.training_file }}", **RETRIES)
    TogetherFineTuneOperator.partial(
        task_id="fine_tune",
        training_file=upload.output,
        deferrable=True,
        poll_interval=2.0,
        **RETRIES,
        **COMMON,
    ).expand_kwargs(sweep())

with DAG(
    dag_id="cluster_deferred",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=PARAMS,
    tags=["cluster"],
):
    TogetherFineTuneOperator(
        task_id="fine_tune",
        training_file="{{ params.training_file }}",
        suffix="{{ params.suffix }}",
        deferrable=True,
        poll_interval=1.0,
        **COMMON,
    )

with DAG(
    dag_id="cluster_sync",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=PARAMS,
    tags=["cluster"],
):
    # Polls in the worker: the case where a dying Celery worker takes the waiting code down with it.
    TogetherFineTuneOperator(
        task_id="fine_tune",
        training_file="{{ params.training_file }}",
        suffix="{{ params.suffix }}",
        deferrable=False,
        poll_interval=1.0,
        retries=1,
        retry_delay=timedelta(seconds=1),
        **COMMON,
    )
