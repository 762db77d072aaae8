"""One real Airflow deployment (api-server, scheduler, dag-processor, triggerer) and one emulator per e2e session.

Starting Airflow costs ~25 s of a 2-core machine, so every e2e test shares the deployment; tests isolate
themselves by DAG run (and by the emulator jobs they created), never by restarting Airflow. The launcher is
``dev/local_airflow.py``, the same one ``make airflow`` uses.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import E2E_API_KEY, E2E_SPEED, E2E_WANDB_KEY, HERE, REPO, RETRIES
from local_airflow import LocalAirflow, prepare_dags_folder

#: What the session fixtures started, so that the last e2e test can stop them (see pytest_runtest_teardown).
_RUNNING: list[Any] = []


def _running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def e2e_emulator() -> Iterator[Any]:
    """The Together emulator, a real subprocess on a free loopback port, shared by the session."""
    from airflow_provider_together.emulator import run_emulator

    with run_emulator(api_key=E2E_API_KEY, speed=E2E_SPEED) as emu:
        _RUNNING.append(emu)
        yield emu


@pytest.fixture(scope="session")
def airflow(request: pytest.FixtureRequest, e2e_emulator: Any) -> Iterator[LocalAirflow]:
    """A running local Airflow whose ``together_default`` points at the emulator; DAGs: examples + e2e.

    Its folder is our own temp dir, not pytest's ``tmp_path_factory``: concurrent pytest runs prune old basetemps,
    and the logs are what one reads after a failure, so the folder is kept (and named) when a test failed.
    """
    root = Path(tempfile.mkdtemp(prefix="together-e2e-"))
    dags = prepare_dags_folder(root / "dags", REPO / "example_dags", HERE / "dags")
    conn_env = {
        "AIRFLOW_CONN_TOGETHER_DEFAULT": e2e_emulator.conn_json(request_timeout=10, max_retries=RETRIES),
        "AIRFLOW_CONN_WANDB_E2E": json.dumps({"conn_type": "generic", "password": E2E_WANDB_KEY}),
    }
    deployment = LocalAirflow(dags, home=root / "home", conn_env=conn_env)
    deployment.start()
    _RUNNING.insert(0, deployment)
    try:
        yield deployment
    finally:
        deployment.stop()
        if request.session.testsfailed:
            print(f"\ne2e Airflow home kept for inspection: {root / 'home'} (component-logs/, logs/)")
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def emulator(e2e_emulator: Any) -> Iterator[Any]:
    """The session emulator with faults, scenarios and speed back to the suite's defaults after the test."""
    yield e2e_emulator
    admin = e2e_emulator.admin
    admin.clear_faults()
    admin.clear_scenarios()
    admin.update_settings(speed=E2E_SPEED)


@pytest.fixture
def chromium_path() -> str:
    """Debian's chromium (installed by dev/install_chromium.sh); required under CI, else skipped if absent."""
    path = "/usr/bin/chromium"
    if not Path(path).exists():
        if _running_in_ci():
            pytest.fail("CI=true but /usr/bin/chromium is missing: .ci/run must call dev/install_chromium.sh")
        pytest.skip("/usr/bin/chromium is not installed (run dev/install_chromium.sh); CI never skips this")
    return path


#: How much of each component log a failed e2e test shows (CI keeps no files, only the printed report).
_LOG_TAIL_LINES = 120


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the tail of the triggerer's and the scheduler's logs to a failed e2e test's report.

    CI prints the report and keeps nothing else; a race seen once on a loaded CI machine is only diagnosable
    from what the components logged around it.
    """
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed or not _RUNNING:
        return
    deployment = next((obj for obj in _RUNNING if isinstance(obj, LocalAirflow)), None)
    if deployment is None:
        return
    for name in ("triggerer", "scheduler"):
        path = deployment.log_dir / f"{name}.log"
        try:
            lines = path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        except OSError as exc:
            lines = [f"(cannot read {path}: {exc})"]
        report.sections.append((f"{name}.log (last {_LOG_TAIL_LINES} lines)", "\n".join(lines)))


@pytest.hookimpl(trylast=True)  # after the function fixtures' teardown, which still talks to the emulator
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop Airflow and the emulator after the last e2e test, not at the end of the whole session.

    ``make test`` runs the unit tests after this folder; four idle Airflow processes would keep polling on
    the 2 CPU cores until the session ends. Both ``stop`` methods are idempotent, so the session fixtures'
    own teardown finds nothing left to do.
    """
    if nextitem is not None and HERE in Path(str(nextitem.path)).parents:
        return
    while _RUNNING:
        _RUNNING.pop(0).stop()
