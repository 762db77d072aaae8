"""
The "Together fine-tuning job" extra link (fine-tune operator and sensor) and the "Together evaluation" link.

In Airflow 3 the API server never runs provider code to build a link: the worker evaluates
:meth:`TogetherFineTuneJobLink.get_link` at the end of every attempt phase (including the one that
defers) and stores the result in XCom. The operator pushes ``job_url`` right after submitting, before it
defers or waits, so the link is live while the job trains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, TaskInstanceKey

__all__ = [
    "DASHBOARD_URL",
    "EVALUATION_ID_XCOM_KEY",
    "EVALUATION_URL",
    "EVALUATION_URL_XCOM_KEY",
    "JOB_ID_XCOM_KEY",
    "JOB_URL_XCOM_KEY",
    "PRICE_ESTIMATE_XCOM_KEY",
    "TogetherEvaluationLink",
    "TogetherFineTuneJobLink",
    "evaluation_url",
    "job_url",
]

#: The job page on Together's dashboard (what the v3 CLI prints after ``create``).
DASHBOARD_URL = "https://api.together.ai/fine-tuning/{job_id}"
JOB_ID_XCOM_KEY = "job_id"
JOB_URL_XCOM_KEY = "job_url"
#: The dollars Together estimated just before the submission (pushed only when there was a usable estimate).
#: The Together tab shows it, so that viewing a running job never asks Together for a new estimate.
PRICE_ESTIMATE_XCOM_KEY = "estimated_price_usd"
#: An evaluation's result page (what the v3 CLI links to after ``tg evals create``).
EVALUATION_URL = "https://api.together.ai/evaluations/result/{evaluation_id}"
EVALUATION_ID_XCOM_KEY = "evaluation_id"
EVALUATION_URL_XCOM_KEY = "evaluation_url"


def job_url(job_id: str) -> str:
    """Return the dashboard URL of a fine-tuning job."""
    return DASHBOARD_URL.format(job_id=job_id)


def evaluation_url(evaluation_id: str) -> str:
    """Return the dashboard URL of an evaluation."""
    return EVALUATION_URL.format(evaluation_id=evaluation_id)


class TogetherFineTuneJobLink(BaseOperatorLink):
    """Link to the Together dashboard page of the job, read from the task's ``job_url`` XCom."""

    name = "Together fine-tuning job"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """Return the job URL pushed by the task, or ``""`` before a job exists."""
        # Imported here: XCom pulls in the execution-time machinery, which DAG parsing never needs.
        from airflow.providers.common.compat.sdk import XCom

        url = XCom.get_value(key=JOB_URL_XCOM_KEY, ti_key=ti_key)
        return url if isinstance(url, str) else ""


class TogetherEvaluationLink(BaseOperatorLink):
    """Link to the Together dashboard page of the evaluation, read from the task's ``evaluation_url`` XCom."""

    name = "Together evaluation"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """Return the evaluation URL pushed by the task, or ``""`` before an evaluation exists."""
        from airflow.providers.common.compat.sdk import XCom

        url = XCom.get_value(key=EVALUATION_URL_XCOM_KEY, ti_key=ti_key)
        return url if isinstance(url, str) else ""
