"""The DAG of the Together-tab browser test (tests/e2e/test_together_view.py).

Its own DAG, with task retries: on the shared 2-core machine a fresh deployment's first ``PATCH .../run`` has
taken ~40 s, past the worker's execution-API timeout, which fails that try before the operator runs. The test
is about the tab, so a retry of that cold start is acceptable here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG

from airflow_provider_together.operators import TogetherFineTuneOperator

TRAIN_FILE = str(Path(__file__).resolve().parent / "data" / "e2e_train.jsonl")
COMMON = {
    "deferrable": True,
    "retries": 2,
    "retry_delay": timedelta(seconds=2),
    "training_file": "{{ params.training_file }}",
    "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
    "lora": True,
    "n_epochs": 1,
    "n_checkpoints": 1,
    "poll_interval": 1.0,
    "timeout": 600,
}

with DAG(
    dag_id="e2e_together_view",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"suffix": "e2e-view", "training_file": TRAIN_FILE},
    tags=["e2e"],
):
    TogetherFineTuneOperator(task_id="fine_tune", suffix="{{ params.suffix }}", **COMMON)

with DAG(
    dag_id="e2e_together_view_mapped",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"suffix": "e2e-view-map", "training_file": TRAIN_FILE},
    tags=["e2e"],
):
    # Two mapped fine-tunes: the tab of mapped/1 must show map index 1's job, not 0's.
    TogetherFineTuneOperator.partial(task_id="fine_tune", **COMMON).expand(
        suffix=["e2e-view-map-0", "e2e-view-map-1"]
    )
