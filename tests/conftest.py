"""Shared test set-up: an isolated AIRFLOW_HOME, anyio on asyncio, and the Together connection."""

from __future__ import annotations

import json
import os
import tempfile

import pytest

# Airflow reads its configuration at import time, so the isolated home must exist before any test module
# imports airflow. Nothing here touches the user's ~/airflow.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="apt-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

TEST_API_KEY = "tk-test-secret-key-0123456789abcdef"


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only: the triggerer runs asyncio."""
    return "asyncio"


@pytest.fixture
def together_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """Define ``together_default`` through the environment (auto-restored by monkeypatch)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_TOGETHER_DEFAULT",
        json.dumps(
            {
                "conn_type": "together",
                "password": TEST_API_KEY,
                "host": "https://api.together.ai/v1",
                "extra": {"request_timeout": 30, "max_retries": 2},
            }
        ),
    )
    return "together_default"
