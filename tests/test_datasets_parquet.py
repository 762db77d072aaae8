"""Parquet (pre-tokenised) files: columns, types, row lengths, purpose, and the missing-pyarrow error."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pyarrow as pa  # the test extra installs it: a missing pyarrow must fail here, not skip
import pyarrow.parquet as pq
import pytest

from airflow_provider_together.datasets import check_file


def write(path: Path, columns: dict[str, Any], **schema: Any) -> Path:
    table = pa.table(columns) if not schema else pa.table(columns, schema=pa.schema(schema))
    pq.write_table(table, path)
    return path


TOKENS = {
    "input_ids": [[1, 2, 3], [4, 5]],
    "attention_mask": [[1, 1, 1], [1, 1]],
    "labels": [[-100, 2, 3], [4, 5]],
}


def errors(path: Path, purpose: str = "fine-tune") -> list[tuple[int | None, str]]:
    return [(e.line, e.field) for e in check_file(path, purpose).errors]


def test_good_parquet(tmp_path: Path) -> None:
    report = check_file(write(tmp_path / "t.parquet", TOKENS))
    assert report.ok, report.summary()
    assert report.file_type == "parquet"
    assert report.num_samples == 2
    assert report.format is None


def test_input_ids_only_and_position_ids(tmp_path: Path) -> None:
    assert check_file(write(tmp_path / "a.parquet", {"input_ids": [[1]]})).ok
    columns = {**TOKENS, "position_ids": [[0, 1, 2], [0, 1]]}
    assert check_file(write(tmp_path / "b.parquet", columns)).ok


def test_not_for_eval(tmp_path: Path) -> None:
    assert errors(write(tmp_path / "t.parquet", TOKENS), "eval") == [(None, "file")]


def test_unknown_column(tmp_path: Path) -> None:
    assert errors(write(tmp_path / "t.parquet", {**TOKENS, "text": ["a", "b"]})) == [(None, "text")]


def test_missing_input_ids(tmp_path: Path) -> None:
    assert errors(write(tmp_path / "t.parquet", {"labels": [[1]]})) == [(None, "input_ids")]


def test_wrong_column_type(tmp_path: Path) -> None:
    assert errors(write(tmp_path / "t.parquet", {"input_ids": ["1 2 3"]})) == [(None, "input_ids")]


def test_row_length_mismatch_names_the_row(tmp_path: Path) -> None:
    columns = {"input_ids": [[1, 2], [3, 4], [5]], "labels": [[1, 2], [3], [5]]}
    assert errors(write(tmp_path / "t.parquet", columns)) == [(2, "labels")]


def test_no_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "t.parquet", {"input_ids": []}, input_ids=pa.list_(pa.int64()))
    assert errors(path) == [(None, "file")]


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    report = check_file(path)
    assert [(e.line, e.field) for e in report.errors] == [(None, "file")]
    assert "not a readable Parquet file" in report.errors[0].message


def test_missing_pyarrow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "t.parquet", TOKENS)
    # A None entry makes `import pyarrow...` raise ImportError, as on an install without the extra.
    for name in [n for n in sys.modules if n == "pyarrow" or n.startswith("pyarrow.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    report = check_file(path)
    assert [(e.line, e.field) for e in report.errors] == [(None, "file")]
    assert "airflow-provider-together[parquet]" in report.errors[0].message


def test_null_or_empty_input_ids_names_the_row(tmp_path: Path) -> None:
    path = write(tmp_path / "t.parquet", {"input_ids": [[1], None, [], [2]]}, input_ids=pa.list_(pa.int64()))
    assert errors(path) == [(2, "input_ids"), (3, "input_ids")]


def test_rows_in_later_batches_are_numbered_from_the_file_start(tmp_path: Path) -> None:
    ids = [[1, 2]] * 1000
    labels = [[1, 2]] * 1000
    labels[700] = [1]
    assert errors(write(tmp_path / "t.parquet", {"input_ids": ids, "labels": labels})) == [(701, "labels")]


def test_parquet_stops_at_max_errors(tmp_path: Path) -> None:
    columns = {"input_ids": [[1, 2]] * 50, "labels": [[1]] * 50}
    report = check_file(write(tmp_path / "t.parquet", columns), max_errors=5)
    assert [(e.line, e.field) for e in report.errors] == [(row, "labels") for row in range(1, 6)]
    assert report.truncated
