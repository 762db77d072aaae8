"""Check Together AI training files locally, deeply and fast, before uploading them.

Together validates a training file only after it is uploaded (up to 50 GB); the v3 SDK's local check
only verifies that each line is a JSON object. ``check_file`` applies the rules the server applies
(formats, roles and turn order, weights, tools, images, preference data, Parquet columns, CSV for
evaluation) while streaming the file, so a bad line is found before the first byte is sent.

Usage::

    from airflow_provider_together.datasets import check_file

    report = check_file("train.jsonl")
    if not report.ok:
        print(report.summary())

Or from a shell: ``python -m airflow_provider_together.datasets train.jsonl [--purpose eval] [--json]``.
"""

from __future__ import annotations

from airflow_provider_together.datasets._check import check_file
from airflow_provider_together.datasets._report import CheckError, CheckReport, DatasetFormat

__all__ = ["CheckError", "CheckReport", "DatasetFormat", "check_file"]
