"""
Pytest fixtures for testing DAGs and hooks against the local Together emulator.

Registered through the ``pytest11`` entry point, so this module is imported in *every* pytest run of an
environment where the provider is installed: it imports nothing beyond pytest at module level, and starts
no process until a test asks for a fixture.

- ``together_emulator``: a session-wide emulator process, reset (files, jobs, faults, scenarios, counts,
  settings) before each test that uses it; yields an :class:`~airflow_provider_together.emulator.Emulator`.
- ``together_emulator_conn``: the same, with ``AIRFLOW_CONN_TOGETHER_DEFAULT`` pointing at it (monkeypatched,
  so it is restored after the test).

Options (``pytest.ini``/``pyproject.toml`` ``[tool.pytest.ini_options]``): ``together_emulator_speed``
(default 100) and ``together_emulator_args`` (extra CLI arguments).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_together.emulator.runner import Emulator

__all__ = ["together_emulator", "together_emulator_conn"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the emulator's ini options."""
    parser.addini("together_emulator_speed", "speed factor of the session emulator", default="100")
    parser.addini("together_emulator_args", "extra CLI arguments of the session emulator", default="")


@pytest.fixture(scope="session")
def _together_emulator_process(pytestconfig: pytest.Config) -> Iterator[Emulator]:
    from airflow_provider_together.emulator.runner import Emulator

    emulator = Emulator(
        speed=float(pytestconfig.getini("together_emulator_speed")),
        extra_args=tuple(shlex.split(str(pytestconfig.getini("together_emulator_args")))),
    )
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def together_emulator(_together_emulator_process: Emulator) -> Emulator:
    """A running emulator, freshly reset for this test (restarted if a previous test stopped it)."""
    emulator = _together_emulator_process
    if emulator.process is None or emulator.process.poll() is not None:
        emulator.start()
    emulator.admin.reset()
    return emulator


@pytest.fixture
def together_emulator_conn(together_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The reset emulator, with ``AIRFLOW_CONN_TOGETHER_DEFAULT`` pointing at it for this test."""
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", together_emulator.conn_json())
    return together_emulator
