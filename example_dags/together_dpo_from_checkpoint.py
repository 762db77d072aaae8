"""
Preference tuning (DPO) resumed from an earlier SFT job's checkpoint, then the adapter downloaded.

Trigger it with the parent job and a preference file, e.g.
``{"checkpoint": "ft-0123...:40", "preference_file": "/data/prefs.jsonl"}``. The price is not estimated
when resuming from a checkpoint (Together cannot), so ``max_price_usd`` does not apply here.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_together.operators import (
    TogetherDownloadCheckpointOperator,
    TogetherFineTuneOperator,
)

POLL_INTERVAL = float(os.environ.get("TOGETHER_EXAMPLE_POLL_INTERVAL", "60"))

with DAG(
    dag_id="together_dpo_from_checkpoint",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "checkpoint": Param("ft-00000000-0000-0000-0000-000000000000", type="string"),
        "preference_file": Param(os.path.join(tempfile.gettempdir(), "prefs.jsonl"), type="string"),
        "beta": Param(0.1, type="number"),
    },
    tags=["together", "example"],
    doc_md=__doc__,
):
    dpo = TogetherFineTuneOperator(
        task_id="dpo_from_checkpoint",
        from_checkpoint="{{ params.checkpoint }}",
        training_file="{{ params.preference_file }}",
        training_method="dpo",
        dpo_beta="{{ params.beta }}",
        n_epochs=1,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        # Optional: log to Weights & Biases; the key is the password of this connection, never an argument.
        wandb_conn_id=os.environ.get("TOGETHER_EXAMPLE_WANDB_CONN_ID") or None,
    )

    download = TogetherDownloadCheckpointOperator(
        task_id="download_adapter",
        job_id="{{ ti.xcom_pull(task_ids='dpo_from_checkpoint', key='job_id') }}",
        dest=os.path.join(tempfile.gettempdir(), "together_models"),
        checkpoint="adapter",
    )

    dpo >> download
