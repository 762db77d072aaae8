"""Constants and helpers shared by the e2e conftest and test modules (a plain module: tests never import conftest)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# dev/ holds the launcher shared with `make airflow`; it is a script folder, not an installed package.
if str(REPO / "dev") not in sys.path:
    sys.path.insert(0, str(REPO / "dev"))

#: Secrets the suite later searches for in logs, XComs and rendered fields: long enough to be masked
#: (Airflow does not mask values shorter than 5 characters) and unlikely to appear by accident.
E2E_API_KEY = "tk-e2e-api-key-7f3a9c1d5e8b2046"
E2E_WANDB_KEY = "wandb-e2e-key-91b7e2c4d6f8a035"
#: Virtual seconds per wall second at the emulator: a ~50 s simulated job lasts ~5 s. Tests that must act
#: while a job runs lower it through the admin API.
E2E_SPEED = 10.0
