"""``check_file(..., checksum=True)``: the upload's SHA-256 from the checker's own read, for every file type."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_together.datasets import check_file


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def conversation(path: Path, n: int) -> Path:
    rows = (
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(n)
    )
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("n", [1, 30_000])  # one block, and several 1 MiB blocks with a line across each
def test_jsonl_checksum_is_the_files_sha256(tmp_path: Path, n: int) -> None:
    path = conversation(tmp_path / "train.jsonl", n)
    report = check_file(path, checksum=True)
    assert report.ok
    assert report.sha256 == sha256(path)


def test_csv_checksum_for_eval_files(tmp_path: Path) -> None:
    path = tmp_path / "eval.csv"
    path.write_text("prompt,answer\n" + "".join(f"q{i},a{i}\n" for i in range(5000)))
    assert check_file(path, "eval", checksum=True).sha256 == sha256(path)


def test_parquet_checksum_is_taken_in_a_second_pass(tmp_path: Path) -> None:
    path = tmp_path / "tok.parquet"
    pq.write_table(pa.table({"input_ids": pa.array([[1, 2, 3]] * 50, pa.list_(pa.int32()))}), path)
    report = check_file(path, checksum=True)
    assert report.ok, report.summary()
    assert report.sha256 == sha256(path)


def test_no_checksum_for_a_failing_file_or_unless_asked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    assert check_file(bad, checksum=True).sha256 is None
    assert check_file(conversation(tmp_path / "ok.jsonl", 3)).sha256 is None
