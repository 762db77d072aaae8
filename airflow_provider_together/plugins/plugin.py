"""
The ``AirflowPlugin`` registered through the ``airflow.plugins`` entry point (loaded by the api-server only).

Airflow 3.1+ shows ``external_views`` with ``destination="task_instance"`` as a tab on every task-instance page
(a plugin cannot limit it to some operators); on tasks without a Together job the tab says so. ``{MAP_INDEX}``
stays literal on unmapped task instances, which the app reads as -1. The ``href`` is relative, so the tab
also works when Airflow is served under a sub-path.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_together.plugins.app import app

__all__ = ["TogetherPlugin"]

URL_PREFIX = "/together"


class TogetherPlugin(AirflowPlugin):
    """The "Together" task-instance tab and the read-only app behind it."""

    name = "together"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Together fine-tuning views"}]
    external_views = [
        {
            "name": "Together",
            "href": "together/ti/{DAG_ID}/{RUN_ID}/{TASK_ID}/{MAP_INDEX}",
            "destination": "task_instance",
            "url_route": "together",
        }
    ]
