"""The example DAGs import cleanly (DagBag, no import errors) and wire the provider's pieces as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "example_dags"


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(dag_folder=str(EXAMPLES))


def test_no_import_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert {
        "together_weekly_retraining",
        "together_model_consumer",
        "together_dpo_from_checkpoint",
        "together_wait_for_external_job",
    } <= set(dagbag.dag_ids)


def test_weekly_pipeline_shape_and_asset(dagbag) -> None:  # type: ignore[no-untyped-def]
    from airflow_provider_together.operators import TogetherFineTuneOperator

    dag = dagbag.dags["together_weekly_retraining"]
    fine_tune = dag.get_task("fine_tune")
    assert isinstance(fine_tune, TogetherFineTuneOperator)
    assert fine_tune.deferrable is True
    assert [o.name for o in fine_tune.outlets] == ["together_weekly_assistant"]
    assert dag.get_task("upload_training_file").downstream_task_ids == {"fine_tune"}
    assert fine_tune.downstream_task_ids == {"report"}
    consumer = dagbag.dags["together_model_consumer"]
    assert "together_weekly_assistant" in str(consumer.timetable.asset_condition)


def test_dpo_and_sensor_examples(dagbag) -> None:  # type: ignore[no-untyped-def]
    dpo = dagbag.dags["together_dpo_from_checkpoint"].get_task("dpo_from_checkpoint")
    assert dpo.training_method == "dpo"
    assert dpo.from_checkpoint == "{{ params.checkpoint }}"
    wait = dagbag.dags["together_wait_for_external_job"].get_task("wait_for_job")
    assert wait.deferrable is True
