"""Parquet files: pre-tokenised data, read with pyarrow (the optional ``parquet`` extra) one batch at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_together.datasets import _limits
from airflow_provider_together.datasets._report import CheckError

if TYPE_CHECKING:
    from airflow_provider_together.datasets._report import CheckReport

_BATCH_ROWS = 256


def check_parquet(report: CheckReport, max_errors: int) -> None:
    """Check the Parquet file of ``report``: purpose, columns, column types, row lengths, row count.

    pyarrow is imported here, not at module level, so that checking JSONL never pays for it.

    :param report: the report being built; its path, purpose and size are set.
    :param max_errors: stop after this many errors.
    """
    errors = report.errors
    if report.purpose == "eval":
        errors.append(
            CheckError(None, "file", "Parquet files cannot be used for purpose 'eval': use JSONL or CSV")
        )
        return
    try:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        errors.append(
            CheckError(
                None,
                "file",
                "checking a Parquet file needs pyarrow: pip install 'airflow-provider-together[parquet]'",
            )
        )
        return
    try:
        parquet = pq.ParquetFile(report.path)
    except Exception as exc:  # pyarrow raises several unrelated types for a corrupt file
        errors.append(CheckError(None, "file", f"not a readable Parquet file ({type(exc).__name__}: {exc})"))
        return
    schema = parquet.schema_arrow
    names = list(schema.names)
    for name in names:
        if name not in _limits.PARQUET_COLUMNS:
            errors.append(
                CheckError(
                    None, name, f"unknown column: allowed columns are {', '.join(_limits.PARQUET_COLUMNS)}"
                )
            )
    if "input_ids" not in names:
        errors.append(CheckError(None, "input_ids", "missing: pre-tokenised data needs an input_ids column"))
    for name in names:
        if name in _limits.PARQUET_COLUMNS and not _is_int_list(schema.field(name).type):
            errors.append(
                CheckError(None, name, f"must be a list of integers per row, got {schema.field(name).type}")
            )
    report.num_samples = parquet.metadata.num_rows
    if errors:
        return
    # Row by row: input_ids must be present, and every token column must have one value per input id.
    # Batches are small because a pre-tokenised row can hold tens of thousands of tokens per column.
    row = 0
    for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
        input_ids = batch.column("input_ids")
        lengths = pc.list_value_length(input_ids)
        problems: list[tuple[int, str, str]] = [
            (index, "input_ids", "is null or empty: every row needs its token ids")
            for index in pc.indices_nonzero(pc.fill_null(pc.equal(lengths, 0), True)).to_pylist()
        ]
        for name in names:
            if name == "input_ids":
                continue
            mismatch = pc.fill_null(pc.not_equal(pc.list_value_length(batch.column(name)), lengths), True)
            problems.extend(
                (index, name, "has a different number of values than input_ids in this row")
                for index in pc.indices_nonzero(mismatch).to_pylist()
            )
        for index, name, message in sorted(problems):
            errors.append(CheckError(row + index + 1, name, message))
            if len(errors) >= max_errors:
                report.truncated = True
                return
        row += batch.num_rows


def _is_int_list(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(
        (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type))
        and pa.types.is_integer(arrow_type.value_type)
    )
