"""Importing the operator, sensor and trigger modules stays light: a DAG file pays for it on every parse."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
import airflow.sdk  # what every DAG file imports anyway
before = set(sys.modules)
import {module}
print(json.dumps(sorted(set(sys.modules) - before)))
"""

#: Modules that must not be imported just by importing ours: our heavy parts, and big third-party packages.
FORBIDDEN_PREFIXES = (
    "airflow_provider_together.hooks",
    "airflow_provider_together._transport.http",
    "airflow_provider_together.models",
    "airflow_provider_together.datasets",
    "airflow_provider_together.emulator",
    "together",
    "openai",
    "pyarrow",
    "fastapi",
    "uvicorn",
    "tenacity",
    "pandas",
    "numpy",
)


def _new_modules(module: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "module",
    [
        "airflow_provider_together.operators",
        "airflow_provider_together.sensors",
        "airflow_provider_together.links",
    ],
)
def test_importing_operators_pulls_in_nothing_heavy(module: str) -> None:
    new = _new_modules(module)
    heavy = [m for m in new if m.startswith(FORBIDDEN_PREFIXES)]
    assert heavy == [], f"{module} imported {heavy}"
    # The trigger (and its httpx-based hook) is only imported when a task actually defers.
    assert "airflow_provider_together.triggers" not in new
    ours = [m for m in new if m.startswith("airflow_provider_together")]
    # Ten: the package, links, the fine-tune operators' cheap helpers, and the evaluation operator's package
    # and module (the rest of the evaluation internals load in execute()).
    assert len(ours) <= 10, ours


def test_importing_the_trigger_does_not_import_the_hook_or_models() -> None:
    new = _new_modules("airflow_provider_together.triggers")
    assert [m for m in new if m.startswith(FORBIDDEN_PREFIXES)] == []
