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


def test_retrain_evaluate_promote_gates_the_production_asset(dagbag) -> None:  # type: ignore[no-untyped-def]
    from airflow_provider_together.operators import TogetherEvaluationOperator

    dag = dagbag.dags["together_retrain_evaluate_promote"]
    evaluate = dag.get_task("evaluate")
    assert isinstance(evaluate, TogetherEvaluationOperator)
    assert (evaluate.evaluation_type, evaluate.soft_fail, evaluate.deferrable) == ("compare", True, True)
    assert evaluate.min_win_rate == "{{ params.min_win_rate }}"
    # Together's own templates reach it untouched; the model names are Airflow templates.
    assert evaluate.parameters["model_a"]["input_template"] == "{{ prompt }}"
    assert "xcom_pull(task_ids='fine_tune')" in evaluate.parameters["model_a"]["model"]
    assert {"fine_tune", "current_production_model"} <= evaluate.upstream_task_ids
    promote = dag.get_task("promote")
    assert evaluate.downstream_task_ids == {"promote"}
    assert [o.name for o in promote.outlets] == ["production_model"]
    consumer = dagbag.dags["together_production_model_consumer"]
    assert "production_model" in str(consumer.timetable.asset_condition)
