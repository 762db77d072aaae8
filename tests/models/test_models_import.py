"""Importing the models package stays cheap: no Airflow, httpx or together SDK, no I/O at import."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, sys
before = set(sys.modules)
import airflow_provider_together.models as m
from airflow_provider_together.models import FineTuneConfig
FineTuneConfig(training_file="f", model="m").fingerprint()  # a valid config needs nothing heavy either
loaded = set(sys.modules) - before
heavy = sorted(n for n in loaded if n.split(".")[0] in {"airflow", "httpx", "together", "httpcore", "sqlalchemy"})
print(json.dumps({"heavy": heavy, "count": len(loaded)}))
"""


def _probe() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout)


def test_import_does_not_pull_heavy_packages() -> None:
    result = _probe()
    assert result["heavy"] == []


def test_invalid_config_imports_the_exception_tree_lazily() -> None:
    code = (
        "import sys\n"
        "from airflow_provider_together.models import FineTuneConfig\n"
        "assert 'airflow' not in sys.modules\n"
        "try:\n"
        "    FineTuneConfig(training_file='f')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__module__, type(exc).__name__, exc.problems)\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert (
        out.stdout.strip()
        .splitlines()[-1]
        .startswith("airflow_provider_together.exceptions TogetherConfigError [('model',")
    )
