"""
Read an evaluation input file's columns without uploading it: JSONL keys or the CSV header.

Together reads "every row contains the same fields" (reference, section 2.6); a row with other keys is
reported with its line number, since the column rule could not hold for it.
"""

from __future__ import annotations

import csv
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["read_columns"]

Problem = tuple[str, str]


def read_columns(path: Path, *, field: str = "input_file") -> tuple[list[str], list[Problem]]:
    """
    Return the file's columns in first-seen order, and problems (rows whose fields differ from the first's).

    The file already passed the checker for purpose ``eval`` (JSON objects, or a CSV with a header).
    """
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), [])
        return [name for name in header if name], []
    columns: list[str] = []
    problems: list[Problem] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            keys = list(json.loads(line))
            if not columns:
                columns = keys
            elif set(keys) != set(columns):
                extra = sorted(set(keys) - set(columns))
                missing = sorted(set(columns) - set(keys))
                problems.append(
                    (
                        field,
                        f"{path} line {number}: fields differ from line 1 (extra {extra}, missing {missing})",
                    )
                )
                if len(problems) >= 5:
                    break
    return columns, problems
