"""The emulator as a process: CLI, first stdout line, SIGTERM, binding, --state persistence, fixtures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from _emu_helpers import conversation_lines, upload, wait_for

from airflow_provider_together.emulator import Emulator, run_emulator

MODEL = "Qwen/Qwen3-8B"


def _client(emu: Emulator) -> httpx.Client:
    return httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {emu.api_key}"}, timeout=10)


def test_cli_prints_its_base_url_first_and_stops_on_sigterm() -> None:
    env = {**os.environ, "TOGETHER_EMULATOR_API_KEY": "cli-key"}
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_together.emulator", "--port", "0", "--speed", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:")
        # Printed only once listening: the very first request succeeds.
        answer = httpx.get(f"{line}/v1/fine-tunes", headers={"Authorization": "Bearer cli-key"})
        assert answer.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def test_cli_rejects_a_bad_fault_spec() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_together.emulator", "--fault", "*=teleport"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "teleport" in result.stderr


def test_run_emulator_binds_loopback_and_applies_cli_faults() -> None:
    with run_emulator(
        api_key="k-123", speed=50, extra_args=["--fault", "GET /v1/files=status:503,count=1"]
    ) as emu:
        assert emu.base_url.startswith("http://127.0.0.1:")
        assert emu.base_url.endswith("/v1")
        assert str(emu) == emu.base_url
        conn = json.loads(emu.conn_json())
        assert conn["host"] == emu.base_url
        assert conn["password"] == "k-123"
        assert conn["conn_type"] == "together"
        with _client(emu) as api:
            assert api.get("/files").status_code == 503
            assert api.get("/files").status_code == 200
        assert emu.admin.health()["pid"] == emu.pid
    assert emu.process is not None
    assert emu.process.poll() is not None


def test_state_survives_a_restart_and_jobs_keep_progressing(tmp_path: Path) -> None:
    state = tmp_path / "emu.sqlite"
    with run_emulator(speed=2, state=state) as emu:
        with _client(emu) as api:
            file_id = upload(api, conversation_lines(10))
            wait_for(lambda: api.get(f"/files/{file_id}").json()["processing_status"] == "COMPLETED")
            job = api.post("/fine-tunes", json={"training_file": file_id, "model": MODEL}).json()
            first_pid, port = emu.pid, emu.port
        emu.stop()
        time.sleep(1.5)  # 3 virtual seconds pass while it is down
        emu.start()
        assert emu.pid != first_pid
        assert emu.port == port
        with _client(emu) as api:
            restored = api.get(f"/fine-tunes/{job['id']}").json()
            # Still live (how far it got depends on how long the restart took on a loaded machine).
            assert restored["status"] not in {"completed", "error", "user_error", "cancelled", "pending"}
            assert api.get(f"/files/{file_id}").json()["processing_status"] == "COMPLETED"
            assert api.get(f"/files/{file_id}/content").content == conversation_lines(10)
            api.post(f"/fine-tunes/{job['id']}/cancel")
        emu.restart()
        with _client(emu) as api:
            done = wait_for(
                lambda: (j := api.get(f"/fine-tunes/{job['id']}").json())["status"] == "cancelled" and j
            )
            assert [e["type"] for e in done["events"]][-2:] == ["cancel_requested", "job_stopped"]


def test_memory_mode_forgets_everything_on_restart() -> None:
    with run_emulator(speed=50) as emu:
        with _client(emu) as api:
            upload(api, conversation_lines(3))
            assert len(api.get("/files").json()["data"]) == 1
        emu.restart()
        with _client(emu) as api:
            assert api.get("/files").json()["data"] == []


def test_startup_failure_is_reported() -> None:
    with run_emulator(speed=50) as busy, pytest.raises(RuntimeError, match="did not start"):
        Emulator(port=busy.port, host="127.0.0.1", startup_timeout=20).start()


def test_conn_fixture_points_airflow_at_the_emulator(together_emulator_conn: Emulator) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_TOGETHER_DEFAULT"])
    assert conn["host"] == together_emulator_conn.base_url
    assert together_emulator_conn.admin.jobs() == []
