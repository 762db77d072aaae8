"""Apache Airflow provider for Together AI fine-tuning."""

__version__ = "0.1.0"
