"""Smoke test of benchmarks/bench_checker.py: the harness runs and writes its table (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_checker_small_writes_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_checker.py"), "--small", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = (tmp_path / "checker.md").read_text()
    assert "| contender |" in table
    assert "ours: deep check" in table
    assert "v3 SDK check_file" in table
    result = json.loads((tmp_path / "checker.json").read_text())
    assert result["smoke"] is True
    plain = [row for row in result["rows"] if row[0] == "plain"]
    rich = [row for row in result["rows"] if row[0] == "rich"]
    assert "json.loads per line (floor)" in [row[1] for row in plain]
    # Every contender checked the same plain file and agreed that it is valid.
    assert {row[-1] for row in plain} == {"pass"}
    assert len({row[-2] for row in plain}) == 1
    # The rich file uses weights and tools: our check and the v3 one pass it (v1, if present, rejects it).
    assert {row[1]: row[-1] for row in rich}["ours: deep check"] == "pass"
    assert {row[1]: row[-1] for row in rich}["v3 SDK check_file (shallow)"] == "pass"
