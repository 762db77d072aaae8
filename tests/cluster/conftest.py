"""One distributed Airflow (Celery, Postgres, Redis, 2 schedulers, 2 triggerers, 2 workers) per cluster session.

Starting it costs 2-3 minutes of a 2-core machine, so every test shares it, isolates itself by DAG run and by
the suffixes of its jobs, and restores whatever it killed before it returns. Tests run in the order of
``ORDER`` (the destructive ones last), and the emulator is reset between tests. The launcher is
``dev/cluster.py``, the same one ``make cluster`` uses.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cluster_support import E2E_API_KEY, HERE, MEASURED, RETRIES, SPEED, measure, now

if TYPE_CHECKING:
    from cluster import ClusterAirflow

#: Per-test bound (the global one is 300 s): a 24-job fan-out on a loaded 2-core machine takes minutes.
CLUSTER_TEST_TIMEOUT_S = 2400
#: Module order: the plain fan-out first, then the flaky API, then the tests that kill components.
ORDER = (
    "test_fanout.py",
    "test_flaky_api.py",
    "test_triggerer_failover.py",
    "test_user_action.py",
    "test_worker_kill.py",
    "test_database_restart.py",
)


def _selected_explicitly(config: pytest.Config) -> bool:
    # `-m "not e2e"` (or any -m given later on the command line) replaces addopts' `-m 'not cluster'`; the suite
    # needs PostgreSQL, Redis and the cluster venv, so it runs only when asked for by name.
    markexpr = str(config.option.markexpr or "")
    return "cluster" in markexpr and "not cluster" not in markexpr


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the cluster modules in ``ORDER`` when ``-m cluster`` asks for them; deselect them otherwise."""
    rank = {name: i for i, name in enumerate(ORDER)}
    mine = [item for item in items if HERE in Path(str(item.path)).parents]
    if not mine:
        return
    if not _selected_explicitly(config):
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]
        return
    mine.sort(key=lambda item: rank.get(Path(str(item.path)).name, len(ORDER)))
    for item in mine:
        # The first test also pays for starting the cluster (pytest-timeout counts fixture setup).
        item.add_marker(pytest.mark.timeout(CLUSTER_TEST_TIMEOUT_S))
    others = [item for item in items if item not in mine]
    items[:] = others + mine


@pytest.fixture(scope="session")
def cluster_emulator() -> Iterator[Any]:
    """The Together emulator for the session (a real subprocess on a free loopback port)."""
    from airflow_provider_together.emulator import run_emulator

    with run_emulator(api_key=E2E_API_KEY, speed=SPEED) as emu:
        yield emu


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, cluster_emulator: Any) -> Iterator[ClusterAirflow]:
    """A running distributed Airflow whose ``together_default`` points at the emulator.

    Its folder is kept (and named) when a test failed: the component logs are what one reads then.
    """
    # dev/ is on sys.path once cluster_support is imported; the launcher is a script folder, not a package.
    from cluster import ClusterAirflow
    from local_airflow import prepare_dags_folder

    root = Path(tempfile.mkdtemp(prefix="together-cluster-suite-"))
    root.chmod(0o755)  # the postgres user traverses it to its data directory
    dags = prepare_dags_folder(root / "dags", HERE / "dags")
    conn_env = {
        "AIRFLOW_CONN_TOGETHER_DEFAULT": cluster_emulator.conn_json(request_timeout=10, max_retries=RETRIES),
    }
    deployment = ClusterAirflow(dags, root=root / "cluster", conn_env=conn_env)
    started = now()
    deployment.start()
    measure("cluster start (Postgres, Redis, migrate, 8 Airflow processes) [s]", round(now() - started, 1))
    try:
        yield deployment
    finally:
        stopped = now()
        deployment.stop()
        measure("cluster stop [s]", round(now() - stopped, 1))
        if request.session.testsfailed:
            print(
                f"\ncluster folder kept for inspection: {root} (cluster/home/component-logs/, cluster/home/logs/)"
            )
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def emulator(cluster_emulator: Any) -> Iterator[Any]:
    """The session emulator, reset (jobs, files, faults, scenarios, counts, settings) before and after the test."""
    cluster_emulator.admin.reset()
    cluster_emulator.admin.update_settings(speed=SPEED)
    yield cluster_emulator
    cluster_emulator.admin.reset()
    cluster_emulator.admin.update_settings(speed=SPEED)


@pytest.fixture
def healthy_cluster(cluster: ClusterAirflow) -> Iterator[ClusterAirflow]:
    """The cluster with every component running before the test, and again after it (restarting what died)."""
    cluster.wait_cluster(timeout=300)
    yield cluster
    dead = [name for name, comp in cluster.components.items() if not comp.alive()]
    for name in dead:
        cluster.restart_component(name)
    if dead:
        cluster.wait_cluster(timeout=300)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures the suite measured (docs/scale.md quotes them)."""
    if not MEASURED:
        return
    terminalreporter.section("cluster measurements")
    for key, value in MEASURED.items():
        terminalreporter.write_line(f"{key}: {json.dumps(value) if not isinstance(value, str) else value}")
