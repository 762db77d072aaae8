"""
Wait for a fine-tuning job started elsewhere (a notebook, the CLI, another team's DAG), then use it.

The sensor starts straight in the triggerer (``start_from_trigger``): it holds no worker slot while the
job trains. A failed or cancelled job fails the sensor at once instead of waiting for the timeout.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_together.sensors import TogetherFineTuneSensor

POLL_INTERVAL = float(os.environ.get("TOGETHER_EXAMPLE_POLL_INTERVAL", "60"))

with DAG(
    dag_id="together_wait_for_external_job",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"job_id": Param("ft-00000000-0000-0000-0000-000000000000", type="string")},
    tags=["together", "example"],
    doc_md=__doc__,
):
    wait = TogetherFineTuneSensor(
        task_id="wait_for_job",
        job_id="{{ params.job_id }}",
        deferrable=True,
        start_from_trigger=True,
        poke_interval=POLL_INTERVAL,
        timeout=timedelta(days=2).total_seconds(),
    )

    @task
    def use_model(result: dict[str, Any]) -> str:
        print(f"Job {result['job_id']} produced {result['model_output_name']}")
        return str(result["model_output_name"])

    use_model(wait.output)
