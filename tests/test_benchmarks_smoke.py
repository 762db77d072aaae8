"""
Smoke runs of every benchmark in ``benchmarks/`` (``--smoke``: tiny sizes), so none can silently rot.

No timing is asserted anywhere (speed is for ``make bench`` and RESULTS.md, never for a test on a shared
machine); what is asserted is that each harness really ran its contenders and wrote the table it
promises: the expected rows, figures that are numbers, and the behavioural facts a benchmark relies on
(every trigger polled without a failure, the multipart path really went in parts).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _run(script: str, tmp_path: Path, *args: str, timeout: float = 240) -> dict:
    out = tmp_path / f"{Path(script).stem}.json"
    cmd = [sys.executable, str(BENCH / script), "--smoke", "--json", str(out), *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    result = json.loads(out.read_text())
    assert result["smoke"] is True
    assert result["columns"]
    assert result["rows"]
    assert all(len(row) == len(result["columns"]) for row in result["rows"])
    return result


def _figure(cell: str) -> float:
    """The leading number of a table cell such as ``'12.3 ms'`` or ``'0.54x'``."""
    return float(cell.split()[0].rstrip("x"))


def test_import_benchmark_measures_our_three_modules(tmp_path: Path) -> None:
    result = _run("bench_import.py", tmp_path, "--work", str(tmp_path))
    by_module = {row[1].strip("`"): row for row in result["rows"]}
    for module in (
        "airflow_provider_together.operators",
        "airflow_provider_together.sensors",
        "airflow_provider_together.triggers",
        "together",  # the SDK is a test dependency, so it is installed wherever this runs
    ):
        row = by_module[module]
        assert row[2] != "not installed", row
        assert _figure(row[2]) > 0
        assert row[3].endswith("ms")
        assert row[4].endswith("MB")
    # Competitors absent from the project venv show up as rows, not as a crash.
    assert "airflow.providers.openai.operators.openai" in by_module
    assert {t["target"] for t in result["targets"]} >= {"each of our modules <= 50 ms (CPU time)"}


def test_checker_benchmark_runs(tmp_path: Path) -> None:
    # bench_checker.py is engineer C's; only what run_all.py relies on is checked, not its column layout.
    result = _run("bench_checker.py", tmp_path, "--out", str(tmp_path / "checker"))
    ours = [row for row in result["rows"] if any(str(cell).startswith("ours") for cell in row)]
    assert ours
    assert all(row[-1] == "pass" for row in ours)
    assert any("v3 SDK" in str(cell) for row in result["rows"] for cell in row)
    assert result["targets"]


def test_triggerer_benchmark_runs_both_clients_against_both_servers(tmp_path: Path) -> None:
    result = _run("bench_triggerer.py", tmp_path, "--work", str(tmp_path))
    runs = result["data"]["runs"]
    keys = sorted((r["server"], r["variant"], r["burst"], r["transport"], r["interval"]) for r in runs)
    interval, production = result["data"]["args"]["interval"], result["data"]["args"]["production_interval"]
    assert keys == sorted(
        [
            ("emulator", "naive", True, "aiohttp", interval),
            ("emulator", "ours", False, "aiohttp", interval),
            ("fixed-response", "naive", True, "aiohttp", interval),
            ("fixed-response", "ours", False, "aiohttp", production),
            ("fixed-response", "ours", False, "aiohttp", interval),
            ("fixed-response", "ours", False, "httpx", interval),
            ("fixed-response", "ours", True, "aiohttp", interval),
            ("none (no HTTP)", "null", False, "aiohttp", interval),
        ]
    )
    n = result["data"]["args"]["n"]
    for run in runs:
        assert run["failures"] == 0, run["errors_sample"]
        assert run["polls"] >= n * run["rounds"]
        assert run["cpu_per_poll_s"] > 0
        assert run["rss_peak_kb"] >= run["rss_baseline_kb"]
        if run["server"] != "emulator":
            # Where jobs complete, every trigger runs to its end and fires exactly one success event.
            assert run["event_statuses"] == {"success": n}, run
    # Every run of ours as shipped has its four targets, with a verdict, and so has the transport ratio;
    # the naive comparisons are information.
    judged = [t for t in result["targets"] if t["met"] is not None]
    assert len(judged) == 4 * sum(r["variant"] == "ours" and r["transport"] == "aiohttp" for r in runs) + 1
    assert all(isinstance(t["met"], bool) for t in judged)
    assert sum("naive client" in t["target"] for t in result["targets"]) == 2
    assert sum(">= 2x lighter than on httpx's default" in t["target"] for t in result["targets"]) == 1
    # The plain-GET floor rows are there, one per transport and level of concurrency.
    assert {row[1] for row in result["rows"] if row[1].startswith("plain GET")} == {
        f"plain GET, {label}, {k} in flight (no trigger)"
        for label in ("httpx's default transport", "aiohttp (the hook's default)")
        for k in (1, 8, 32)
    }


def test_upload_benchmark_runs_every_contender(tmp_path: Path) -> None:
    result = _run("bench_upload.py", tmp_path, "--work", str(tmp_path))
    samples = result["data"]["samples"]
    assert set(samples) >= {"ours", "sdk", "ours-multipart"}
    for name, runs in samples.items():
        assert runs, name
        assert all(run["seconds"] > 0 and run["file_id"] for run in runs), name
    # The lowered threshold really sent the file in parts.
    assert result["data"]["overlap"]["parts"] > 1
    assert len(result["rows"]) == len(samples)


def test_run_all_writes_the_results_table(tmp_path: Path) -> None:
    published = BENCH / "RESULTS.md"
    before = published.stat().st_mtime_ns if published.exists() else None
    out = tmp_path / "RESULTS.md"
    cmd = [sys.executable, str(BENCH / "run_all.py"), "--smoke", "--only", "import,checker"]
    cmd += ["--work", str(tmp_path), "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    text = out.read_text()
    assert text.startswith("# Benchmark results")
    assert "## Targets" in text
    assert "## Import cost after `airflow.sdk`" in text
    assert "## Training-file checker" in text
    assert "Machine:" in text
    assert "cores" in text
    assert "| import | each of our modules <= 50 ms (CPU time) |" in text
    # A smoke run never overwrites the published table.
    assert (published.stat().st_mtime_ns if published.exists() else None) == before


def test_first_byte_benchmark_compares_both_orders(tmp_path: Path) -> None:
    result = _run("bench_first_byte.py", tmp_path, "--work", str(tmp_path))
    assert [row[0] for row in result["rows"]] == ["before", "after"]
    assert all(_figure(row[1]) > 0 for row in result["rows"])
    assert all(target["value"].split()[0].endswith("x") for target in result["targets"])
