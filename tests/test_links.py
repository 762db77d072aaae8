"""The "Together fine-tuning job" extra link on the operator and the sensor."""

from __future__ import annotations

from airflow_provider_together.links import TogetherFineTuneJobLink, job_url
from airflow_provider_together.operators import TogetherFineTuneOperator
from airflow_provider_together.sensors import TogetherFineTuneSensor


def test_link_is_attached_to_operator_and_sensor() -> None:
    for cls in (TogetherFineTuneOperator, TogetherFineTuneSensor):
        links = [link for link in cls.operator_extra_links if isinstance(link, TogetherFineTuneJobLink)]
        assert len(links) == 1
        assert links[0].name == "Together fine-tuning job"


def test_dashboard_url() -> None:
    assert job_url("ft-abc") == "https://api.together.ai/fine-tuning/ft-abc"


def test_link_survives_dag_serialization() -> None:
    # The UI never runs provider code: it reads the link's name and XCom key from the serialized DAG.
    from datetime import datetime

    from airflow.sdk import DAG

    try:
        from airflow.serialization.serialized_objects import DagSerialization as Serializer
    except ImportError:  # Airflow < 3.3
        from airflow.serialization.serialized_objects import SerializedDAG as Serializer  # type: ignore[no-redef]

    with DAG(dag_id="link_dag", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        TogetherFineTuneOperator(task_id="ft", training_file="file-abc123", model="m")
        TogetherFineTuneSensor(task_id="wait", job_id="ft-1")
    data = Serializer.to_dict(dag)
    tasks = {t["__var"]["task_id"]: t["__var"] for t in data["dag"]["tasks"]}
    for task_id in ("ft", "wait"):
        assert tasks[task_id]["_operator_extra_links"] == {
            "Together fine-tuning job": "_link_TogetherFineTuneJobLink"
        }
