"""
Retrain, evaluate against production, promote only if better: the evaluation is the gate of the pipeline.

Weekly: prepare data -> upload -> fine-tune -> compare the new model with the current production model (an
LLM judge on a fixed evaluation set) -> publish the ``production_model`` asset **only when the gate passes**
(``min_win_rate``: the new model's A wins / (A wins + B wins)). Below the gate the evaluation task is skipped
(``soft_fail=True``), so ``promote`` is skipped too and production keeps its model.

The current production model is read from the latest ``production_model`` asset event (the base model until
one exists). A second DAG in this file, ``together_production_model_consumer``, is scheduled on that asset and
reads the promoted model's name from the asset event's metadata, e.g. to switch an inference route.

Environment knobs (so the same file runs against Together and against the local emulator):
``TOGETHER_EXAMPLE_BASE_MODEL``, ``TOGETHER_EXAMPLE_JUDGE_MODEL``, ``TOGETHER_EXAMPLE_POLL_INTERVAL`` (seconds),
``TOGETHER_EXAMPLE_DATA_DIR``.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, task

from airflow_provider_together.operators import (
    TogetherEvaluationOperator,
    TogetherFineTuneOperator,
    TogetherUploadFileOperator,
)

BASE_MODEL = os.environ.get("TOGETHER_EXAMPLE_BASE_MODEL", "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
JUDGE_MODEL = os.environ.get("TOGETHER_EXAMPLE_JUDGE_MODEL", "meta-llama/Llama-3.3-70B-Instruct-Turbo")
POLL_INTERVAL = float(os.environ.get("TOGETHER_EXAMPLE_POLL_INTERVAL", "60"))

#: What serves users. Its asset events carry the promoted model's name (``extra["model"]``).
PRODUCTION_MODEL = Asset(name="production_model", uri="together://models/support-assistant/production")

_TOPICS = ["billing", "shipping", "returns", "accounts", "warranty", "orders", "payments", "delivery"]
_SYSTEM = "You are the support assistant of an online shop. Answer in two sentences at most."
_JUDGE = (
    "You compare two answers of a shop's support assistant to the customer question: {{ prompt }}. "
    "Prefer the answer that is correct, specific to the shop's process, and short."
)


def _generation(model: str) -> dict[str, Any]:
    """A model Together runs on every evaluation row (both sides of the comparison get the same settings)."""
    return {
        "model": model,
        "model_source": "serverless",
        "system_template": _SYSTEM,
        "input_template": "{{ prompt }}",
        "max_tokens": 256,
        "temperature": 0.2,
    }


def _data_dir() -> Path:
    out = Path(os.environ.get("TOGETHER_EXAMPLE_DATA_DIR", tempfile.gettempdir())) / "together_retrain"
    out.mkdir(parents=True, exist_ok=True)
    return out


with DAG(
    dag_id="together_retrain_evaluate_promote",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"n_epochs": 1, "min_win_rate": 0.55, "max_price_usd": 25.0},
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["together", "example", "evaluation"],
    doc_md=__doc__,
):

    @task
    def prepare_data(ds: str | None = None) -> dict[str, str]:
        """Write this week's training conversations and the fixed evaluation questions (JSONL)."""
        out = _data_dir()
        train, evaluation = out / f"train-{ds}.jsonl", out / "eval-questions.jsonl"
        with train.open("w", encoding="utf-8") as fh:
            for i in range(64):
                topic = _TOPICS[i % len(_TOPICS)]
                messages = [
                    {"role": "system", "content": _SYSTEM},
                    {"role": "user", "content": f"Question {i} about {topic}: what should I do?"},
                    {
                        "role": "assistant",
                        "content": f"For {topic}, open the {topic} page and follow step {i % 5 + 1}.",
                    },
                ]
                fh.write(json.dumps({"messages": messages}) + "\n")
        # Every column must be used by a template: here only `prompt`, used by the judge and both models.
        with evaluation.open("w", encoding="utf-8") as fh:
            for i, topic in enumerate(_TOPICS * 3):
                fh.write(json.dumps({"prompt": f"My {topic} question number {i}: how do I proceed?"}) + "\n")
        return {"train": str(train), "eval": str(evaluation)}

    @task(inlets=[PRODUCTION_MODEL])
    def current_production_model(inlet_events: Any = None) -> str:
        """The model the last promotion published (the base model before the first one)."""
        events = list(inlet_events[PRODUCTION_MODEL]) if inlet_events is not None else []
        model = (events[-1].extra or {}).get("model") if events else None
        print(f"Production model: {model or BASE_MODEL}")
        return str(model or BASE_MODEL)

    data = prepare_data()
    production = current_production_model()
    upload = TogetherUploadFileOperator(task_id="upload_training_file", path=data["train"])

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
    )

    evaluate = TogetherEvaluationOperator(
        task_id="evaluate",
        evaluation_type="compare",
        parameters={
            "judge": {"model": JUDGE_MODEL, "model_source": "serverless", "system_template": _JUDGE},
            # A: the model trained this week (a LoRA fine-tune runs serverless); B: what serves users today.
            "model_a": _generation("{{ ti.xcom_pull(task_ids='fine_tune')['model_output_name'] }}"),
            "model_b": _generation("{{ ti.xcom_pull(task_ids='current_production_model') }}"),
        },
        input_file=data["eval"],
        min_win_rate="{{ params.min_win_rate }}",
        soft_fail=True,  # below the gate: skipped, so `promote` does not run
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=2),
    )
    production >> evaluate
    fine_tune >> evaluate

    @task(outlets=[PRODUCTION_MODEL])
    def promote(trained: dict[str, Any], figures: dict[str, Any], outlet_events: Any = None) -> str:
        """Publish the new model as production, with the evidence, in the asset event's metadata."""
        name = str(trained["model_output_name"])
        outlet_events[PRODUCTION_MODEL].extra = {
            "model": name,
            "fine_tune_job_id": trained["job_id"],
            "evaluation_id": figures["evaluation_id"],
            "win_rate": figures["win_rate"],
            "a_wins": figures["a_wins"],
            "b_wins": figures["b_wins"],
            "ties": figures["ties"],
        }
        print(f"Promoted {name}: win rate {figures['win_rate']:.2f} against the previous production model")
        return name

    promote(fine_tune.output, evaluate.output)


with DAG(
    dag_id="together_production_model_consumer",
    schedule=[PRODUCTION_MODEL],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["together", "example", "evaluation"],
):

    @task
    def switch_inference_route(triggering_asset_events: Any = None) -> list[str]:
        """Read the promoted model's name from the asset event (e.g. to point the serving route at it)."""
        names = []
        for events in (triggering_asset_events or {}).values():
            for event in events:
                name = (event.extra or {}).get("model")
                if name:
                    print(
                        f"Serving {name} (win rate {event.extra.get('win_rate')}, evaluation {event.extra.get('evaluation_id')})"
                    )
                    names.append(name)
        return names

    switch_inference_route()
