"""
The provider's Airflow plugin: a read-only "Together" tab on the task-instance page (api-server only).

Workers, triggerers and DAG parsing never import this package; Airflow loads it through the ``airflow.plugins``
entry point when the api-server builds its app. See docs/ui.md.
"""
