"""
Weekly retraining: prepare data -> upload -> fine-tune (deferrable) -> report, publishing the model as an Asset.

A second DAG in this file, ``together_model_consumer``, is scheduled on that Asset: it runs whenever a new
fine-tuned model is published and reads the model name from the asset event's metadata.

Environment knobs (so the same file runs against Together and against the local emulator):
``TOGETHER_EXAMPLE_BASE_MODEL``, ``TOGETHER_EXAMPLE_POLL_INTERVAL`` (seconds), ``TOGETHER_EXAMPLE_DATA_DIR``.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, task

from airflow_provider_together.operators import TogetherFineTuneOperator, TogetherUploadFileOperator

BASE_MODEL = os.environ.get("TOGETHER_EXAMPLE_BASE_MODEL", "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
POLL_INTERVAL = float(os.environ.get("TOGETHER_EXAMPLE_POLL_INTERVAL", "60"))

#: The published model. The fine-tune task attaches its result (model name, tokens, price) to each event.
FINE_TUNED_MODEL = Asset(name="together_weekly_assistant", uri="together://fine-tuning/weekly-assistant")

_TOPICS = ["billing", "shipping", "returns", "accounts", "warranty", "orders", "payments", "delivery"]


with DAG(
    dag_id="together_weekly_retraining",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"n_epochs": 1, "max_price_usd": 25.0},
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["together", "example"],
    doc_md=__doc__,
):

    @task
    def prepare_data(ds: str | None = None) -> str:
        """Write this week's conversations as JSONL (a real pipeline would export them from a warehouse)."""
        out_dir = Path(os.environ.get("TOGETHER_EXAMPLE_DATA_DIR", tempfile.gettempdir())) / "together_weekly"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"train-{ds}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for i in range(64):
                topic = _TOPICS[i % len(_TOPICS)]
                sample = {
                    "messages": [
                        {"role": "system", "content": "You are the support assistant of an online shop."},
                        {"role": "user", "content": f"Question {i} about {topic}: what should I do?"},
                        {
                            "role": "assistant",
                            "content": f"For {topic}, open the {topic} page and follow step {i % 5 + 1}.",
                        },
                    ]
                }
                fh.write(json.dumps(sample) + "\n")
        return str(path)

    upload = TogetherUploadFileOperator(task_id="upload_training_file", path=prepare_data())

    fine_tune = TogetherFineTuneOperator(
        task_id="fine_tune",
        training_file=upload.output,
        model=BASE_MODEL,
        n_epochs="{{ params.n_epochs }}",
        lora=True,
        learning_rate=1e-4,
        max_price_usd="{{ params.max_price_usd }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=12),
        outlets=[FINE_TUNED_MODEL],
    )

    @task
    def report(result: dict[str, Any]) -> str:
        """Log what this week's run produced; the summary is also in the asset event."""
        price = result.get("total_price_usd")
        cost = f"${price:.2f}" if price is not None else "price unknown"
        print(
            f"New model {result['model_output_name']} from job {result['job_id']}: "
            f"{result.get('token_count')} tokens, {result.get('checkpoint_count')} checkpoint(s), "
            f"{cost}"
        )
        return str(result["model_output_name"])

    report(fine_tune.output)


with DAG(
    dag_id="together_model_consumer",
    schedule=[FINE_TUNED_MODEL],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["together", "example"],
):

    @task
    def deploy_new_model(triggering_asset_events: Any = None) -> list[str]:
        """Pick up the model name from the asset event metadata (e.g. to switch an inference endpoint)."""
        names = []
        for events in (triggering_asset_events or {}).values():
            for event in events:
                name = (event.extra or {}).get("model_output_name")
                if name:
                    print(f"Deploying fine-tuned model {name} (job {event.extra.get('job_id')})")
                    names.append(name)
        return names

    deploy_new_model()
