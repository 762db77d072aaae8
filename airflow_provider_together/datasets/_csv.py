"""CSV files: only evaluation data may be CSV; it needs a header and the same column count on every row."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

from airflow_provider_together.datasets._lines import open_binary
from airflow_provider_together.datasets._report import CheckError

if TYPE_CHECKING:
    from airflow_provider_together.datasets._report import CheckReport

_FIELD_SIZE_LIMIT = 2**31 - 1


def check_csv(report: CheckReport, max_errors: int, digest: Any = None) -> None:
    """Check the CSV file of ``report`` row by row, streaming, filling in the report.

    :param report: the report being built; its path, purpose and size are set.
    :param max_errors: stop after this many errors.
    :param digest: a hashlib object fed with every byte read (the upload checksum, in the same pass).
    """
    if report.purpose != "eval":
        report.errors.append(
            CheckError(
                None,
                "file",
                f"CSV files are accepted only for purpose 'eval', not {report.purpose!r}: "
                "convert the data to JSONL (or Parquet for pre-tokenised data)",
            )
        )
        return
    errors = report.errors
    # The csv module refuses fields over 128 KiB by default; evaluation data may hold whole documents.
    # The limit is process-wide, so it is restored afterwards.
    previous_limit = csv.field_size_limit(_FIELD_SIZE_LIMIT)
    try:
        with io.TextIOWrapper(open_binary(report.path, digest), encoding="utf-8", newline="") as stream:
            reader = csv.reader(stream)
            header = next(reader, None)
            if header is None or not any(cell.strip() for cell in header):
                errors.append(CheckError(1, "header", "the CSV file has no header row naming its columns"))
                return
            width = len(header)
            for row in reader:
                if not row:
                    continue
                report.num_samples += 1
                if len(row) != width:
                    errors.append(
                        CheckError(
                            reader.line_num,
                            "row",
                            f"{len(row)} columns where the header has {width}: every row needs the same columns",
                        )
                    )
                    if len(errors) >= max_errors:
                        report.truncated = True
                        return
    except UnicodeDecodeError as exc:
        errors.append(
            CheckError(None, "file", f"not valid UTF-8 ({exc.reason} at byte {exc.start}); save it as UTF-8")
        )
    except csv.Error as exc:
        errors.append(CheckError(None, "file", f"not a readable CSV file ({exc})"))
    finally:
        csv.field_size_limit(previous_limit)
