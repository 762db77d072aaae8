# Provider metadata read by Airflow's providers manager through the ``apache_airflow_provider`` entry point.
# It must stay importable without importing Airflow or any other module of this package: the manager calls
# it in every process that lists providers, and the connection form is built from it without importing the
# hook (declarative ``conn-fields`` / ``ui-field-behaviour``, preferred since Airflow 3.2).
# No ``from __future__ import annotations`` here, as in the official providers' generated files.

from typing import Any

PACKAGE = "airflow_provider_together"
INTEGRATION = "Together AI"


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata: connection type, form fields and module lists."""
    return {
        "package-name": "airflow-provider-together",
        "name": "Together AI",
        "description": "`Together AI <https://www.together.ai/>`__ fine-tuning for Apache Airflow: "
        "upload training data, run a fine-tuning job as one task, wait deferrably, download checkpoints, "
        "and gate a model's promotion on a Together evaluation.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://docs.together.ai/docs/fine-tuning-overview",
                "tags": ["ai"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.hooks"]}],
        "operators": [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.operators"]}],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.sensors"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.triggers"]}],
        "extra-links": [
            f"{PACKAGE}.links.TogetherFineTuneJobLink",
            f"{PACKAGE}.links.TogetherEvaluationLink",
        ],
        "connection-types": [
            {
                "connection-type": "together",
                "hook-class-name": f"{PACKAGE}.hooks.TogetherHook",
                "hook-name": "Together AI",
                "conn-fields": {
                    "request_timeout": {
                        "label": "Request timeout (s)",
                        "description": "Seconds to wait for each read or write of a request.",
                        "schema": {"type": ["integer", "null"], "default": 60, "minimum": 1},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Resends of a failed idempotent request (connect errors, timeouts, "
                        "408, 429, 5xx). A job create is only resent when Together cannot have received it.",
                        "schema": {"type": ["integer", "null"], "default": 2, "minimum": 0},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"password": "API Key", "host": "Base URL"},
                    "placeholders": {
                        "host": "https://api.together.ai/v1",
                        "password": "Together API key",
                        "request_timeout": "60",
                        "max_retries": "2",
                    },
                },
            }
        ],
    }
