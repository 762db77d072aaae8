"""``check_file``: the whole-file rules (existence, size, extension, purpose) and dispatch by file type."""

from __future__ import annotations

import hashlib
import os
import stat

from airflow_provider_together.datasets import _limits
from airflow_provider_together.datasets._lines import BLOCK_SIZE, open_binary
from airflow_provider_together.datasets._report import CheckError, CheckReport


def check_file(
    path: str | os.PathLike[str], purpose: str = "fine-tune", *, max_errors: int = 100, checksum: bool = False
) -> CheckReport:
    """Check a training (or evaluation) file the way Together's servers will, before uploading it.

    The file is streamed: memory stays flat whatever its size. Problems are returned in the report, never
    raised; only a bad argument raises.

    .. seealso:: https://docs.together.ai/docs/fine-tuning-data-preparation

    :param path: the ``.jsonl``, ``.parquet`` or ``.csv`` file.
    :param purpose: the upload purpose: ``fine-tune`` (the deep format check), ``eval`` (JSON objects or
        CSV rows in any shape), or another purpose of the Files API (``batch-api``, ``calibration``,
        ``eval-sample``, ... : JSON objects).
    :param max_errors: stop reading after this many errors; at least 1.
    :param checksum: also compute the file's SHA-256 (``report.sha256``, what an upload sends), from the
        same read as the check for JSONL and CSV; only a file that passed gets one.
    :return: the report; ``report.ok`` tells whether the file passed.
    """
    purpose = str(getattr(purpose, "value", purpose))  # a str-valued enum member is welcome too
    if purpose not in _limits.PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}: use one of {', '.join(_limits.PURPOSES)}")
    if max_errors < 1:
        raise ValueError(f"max_errors must be at least 1, got {max_errors}")
    name = os.fspath(path)
    report = CheckReport(path=name, purpose=purpose)
    try:
        info = os.stat(name)
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        report.errors.append(CheckError(None, "file", "not found, or not a regular file"))
        return report
    report.file_size = info.st_size
    extension = os.path.splitext(name)[1].lower()
    report.file_type = _limits.SUPPORTED_EXTENSIONS.get(extension)
    if report.file_type is None:
        report.errors.append(
            CheckError(
                None,
                "file",
                f"unsupported extension {extension or '(none)'!r}: Together accepts .jsonl, .parquet and .csv files",
            )
        )
        return report
    if info.st_size > _limits.MAX_FILE_SIZE_BYTES:
        report.errors.append(
            CheckError(
                None,
                "file",
                f"the file is {info.st_size / (1 << 30):.1f} GiB; the maximum Together accepts is 50.1 GiB: "
                "split it",
            )
        )
        return report
    if info.st_size == 0:
        report.errors.append(CheckError(None, "file", "the file is empty"))
        return report
    digest = _Checksum() if checksum else None
    try:
        _check_contents(report, max_errors, digest)
        if digest is not None and report.ok and not report.truncated:
            report.sha256 = digest.hexdigest(name, info.st_size)
    except OSError as exc:  # unreadable (permissions, I/O error): a verdict on the file, not a crash
        report.errors.append(CheckError(None, "file", f"cannot be read: {exc.strerror or exc}"))
        return report
    if report.num_samples < _limits.MIN_SAMPLES and not report.errors:
        report.errors.append(
            CheckError(None, "file", f"the file holds no samples; at least {_limits.MIN_SAMPLES} is needed")
        )
    return report


class _Checksum:
    """SHA-256 of the bytes the checker reads, counted so that a partial read is never taken for the file."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.seen = 0

    def update(self, data: bytes | memoryview) -> None:
        self._sha.update(data)
        self.seen += len(data)

    def hexdigest(self, path: str, size: int) -> str:
        """The digest of the whole file; read again only if the checker did not read it in order (Parquet)."""
        if self.seen != size:
            # pyarrow reads a Parquet file footer first and by column chunk, not front to back.
            self._sha, self.seen = hashlib.sha256(), 0
            with open_binary(path, self) as stream:
                while stream.read(BLOCK_SIZE):
                    pass
        return self._sha.hexdigest()


def _check_contents(report: CheckReport, max_errors: int, digest: _Checksum | None) -> None:
    """Read the file with the checker of its type (imported on demand: Parquet pulls in pyarrow)."""
    if report.file_type == "jsonl":
        from airflow_provider_together.datasets._jsonl import JsonlChecker

        JsonlChecker(report, max_errors).run(report.path, digest=digest)
    elif report.file_type == "csv":
        from airflow_provider_together.datasets._csv import check_csv

        check_csv(report, max_errors, digest)
    else:
        from airflow_provider_together.datasets._parquet import check_parquet

        check_parquet(report, max_errors)
