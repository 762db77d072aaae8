"""
A local, Together-compatible files and fine-tuning API: the embedded default behind ``make demo``, the
integration tests and the benchmarks, and a way for users to test their own DAGs without spending GPU money.

.. code-block:: python

    from airflow_provider_together.emulator import run_emulator

    with run_emulator(speed=100) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", emu.conn_json())

Importing this package is cheap (it is imported by the pytest plugin in every test run); the server's
dependencies load only when an emulator starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_together.emulator.runner import Emulator, run_emulator

__all__ = ["Emulator", "run_emulator"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from airflow_provider_together.emulator import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
