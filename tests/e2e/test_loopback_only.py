"""Every process the e2e deployment started listens on loopback only, on the ports it was given."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psutil
import pytest

if TYPE_CHECKING:
    from local_airflow import LocalAirflow

pytestmark = pytest.mark.e2e


def _listening(pid: int) -> list[tuple[str, int]]:
    proc = psutil.Process(pid)
    found = []
    for member in (proc, *proc.children(recursive=True)):
        try:
            conns = member.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found += [(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return found


def test_components_and_emulator_listen_on_loopback_only(airflow: LocalAirflow, emulator: Any) -> None:
    sockets = {name: _listening(comp.pid) for name, comp in airflow.components.items()}
    sockets["emulator"] = _listening(emulator.pid)
    everything = [addr for addrs in sockets.values() for addr in addrs]
    assert ("127.0.0.1", airflow.port) in sockets["api-server"]
    assert ("127.0.0.1", emulator.port) in sockets["emulator"]
    assert all(ip in {"127.0.0.1", "::1"} for ip, _ in everything), sockets
