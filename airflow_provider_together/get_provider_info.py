# Provider metadata read by Airflow's providers manager through the ``apache_airflow_provider`` entry point.
# It must stay importable without importing Airflow or any other module of this package.


def get_provider_info():
    """Return the provider's metadata: connection type, form fields and module lists."""
    return {
        "package-name": "airflow-provider-together",
        "name": "Together AI",
        "description": "Together AI fine-tuning for Apache Airflow.",
        "versions": ["0.1.0"],
    }
