"""``python -m airflow_provider_together.datasets``: output and exit codes, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_together.datasets.__main__ import main

GOOD_LINE = '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}\n'
BAD_LINE = '{"messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Hello"}]}\n'


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_provider_together.datasets", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.jsonl"
    path.write_text(GOOD_LINE * 3)
    return path


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD_LINE + BAD_LINE)
    return path


def test_pass_prints_summary_and_exits_0(good_file: Path) -> None:
    done = run_cli(str(good_file))
    assert done.returncode == 0, done.stderr
    assert f"{good_file}: PASSED" in done.stdout
    assert "conversation, 3 samples" in done.stdout
    assert done.stderr == ""


def test_fail_prints_errors_and_exits_1(bad_file: Path) -> None:
    done = run_cli(str(bad_file))
    assert done.returncode == 1
    assert "FAILED (1 error)" in done.stdout
    assert "line 2: messages[1].role: invalid role 'bot'" in done.stdout


def test_json_output(bad_file: Path) -> None:
    done = run_cli(str(bad_file), "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert report["format"] == "conversation"
    assert report["errors"][0]["line"] == 2
    assert report["errors"][0]["field"] == "messages[1].role"


def test_purpose_option(tmp_path: Path) -> None:
    path = tmp_path / "eval.csv"
    path.write_text("question,answer\n2+2?,4\n")
    assert run_cli(str(path)).returncode == 1  # CSV is not accepted for fine-tuning
    done = run_cli(str(path), "--purpose", "eval")
    assert done.returncode == 0, done.stdout


def test_missing_file_is_usage_error(tmp_path: Path) -> None:
    done = run_cli(str(tmp_path / "absent.jsonl"))
    assert done.returncode == 2
    assert "no such file" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--purpose", "pretrain", "x.jsonl"],
        ["--bogus", "x.jsonl"],
        ["--max-errors", "0", "x.jsonl"],
    ],
)
def test_bad_usage_exits_2(args: list[str]) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert "usage:" in done.stderr


def test_max_errors_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "many.jsonl"
    path.write_text(GOOD_LINE + BAD_LINE * 5)
    assert main([str(path), "--max-errors", "2", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert len(report["errors"]) == 2
    assert report["truncated"] is True


def test_help_exits_0() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    assert "Exit status" in done.stdout
