"""
Turn ``training_file`` / ``validation_file`` into Together file ids that are processed and valid.

Accepted: a Together file id (``file-...``), a local path, or an ``ObjectStoragePath`` (copied to a
temporary local file first). Two phases, so that the operator can check everything that costs nothing
before the first byte is uploaded:

1. :meth:`FileResolver.inspect` reads a local file **once**: the training-file checker and the SHA-256 the
   upload needs come from the same streaming pass. Nothing is sent.
2. :meth:`FileResolver.upload` sends it, once: the checksum is remembered (per task run, and in the task
   state store on Airflow 3.3 so a retry reuses the upload), and the hook answers Together's "duplicate
   file" conflict with the existing file. Then we wait for Together's own validation and fail with its
   message.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_together.exceptions import (
    TogetherConfigError,
    TogetherFileRejectedError,
    TogetherNotFoundError,
)

if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from types import TracebackType

    from airflow_provider_together.datasets import CheckReport
    from airflow_provider_together.hooks import TogetherHook

__all__ = ["FILE_ID_PATTERN", "FileInput", "FileResolver"]

log = logging.getLogger(__name__)

#: Together file ids are ``file-`` followed by a UUID.
FILE_ID_PATTERN = re.compile(r"^file-[0-9A-Za-z-]{6,}$")
_CHUNK = 1 << 20
#: A value ending like a data file is a path, never an id: a missing one is reported without asking Together.
_DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
#: Checker errors listed per file in a config error; the rest are counted (the full list is in the report).
_MAX_LISTED = 10

Problem = tuple[str, str]


@dataclass(frozen=True)
class FileInput:
    """
    One file argument after :meth:`FileResolver.inspect`: an existing Together file, or a checked local file.

    :param field: the operator argument (``training_file``...), named in every problem.
    :param file_id: the Together file id, when one was given.
    :param path: the local file to upload (a temporary copy for remote object storage).
    :param report: the checker's report of ``path`` (format, images, SHA-256).
    :param problems: why this input cannot be used, one ``(field, message)`` per problem.
    """

    field: str
    file_id: str | None = None
    path: Path | None = None
    report: CheckReport | None = None
    problems: tuple[Problem, ...] = ()


def report_problems(name: str, path: Path, report: CheckReport) -> list[Problem]:
    """The checker's errors as config problems of argument ``name``, each naming the line."""
    problems = [(name, f"{path} failed the training-file check: {error}") for error in report.errors]
    if len(problems) > _MAX_LISTED:
        rest = len(problems) - _MAX_LISTED
        more = " or more" if report.truncated else ""
        problems = [*problems[:_MAX_LISTED], (name, f"... and {rest}{more} other problem(s) in {path}")]
    return problems


class FileResolver:
    """
    Resolve the operator's file arguments for one task run; use it as a context manager.

    Temporary copies of remote object-storage files live until the ``with`` block ends, so that the file
    inspected is the file uploaded.

    :param hook: the Together hook.
    :param state: the task state store accessor (Airflow 3.3) or ``None``; remembers checksum -> file id.
    :param wait_timeout: seconds to wait for Together to finish validating a file.
    :param poll_interval: seconds between file-status polls (validation usually takes seconds, not minutes).
    """

    def __init__(
        self,
        hook: TogetherHook,
        state: Any = None,
        *,
        wait_timeout: float = 3600.0,
        poll_interval: float = 2.0,
    ) -> None:
        self.hook = hook
        self.state = state
        self.wait_timeout = wait_timeout
        self.poll_interval = poll_interval
        self._by_checksum: MutableMapping[str, str] = {}
        self._temporary = ExitStack()

    def __enter__(self) -> FileResolver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._temporary.close()

    # -- phase 1: nothing is sent ------------------------------------------------------------------

    def inspect(
        self, value: Any, *, field: str, purpose: str = "fine-tune", lookup: bool = True
    ) -> FileInput:
        """
        Check ``value`` without uploading anything: a file id passes as is, a local file is checked and hashed.

        :param field: the operator argument, named in problems.
        :param lookup: whether a value that is neither a path nor a ``file-`` id may be looked up on
            Together (one read); off when only local checks are wanted.
        """
        if isinstance(value, str) and FILE_ID_PATTERN.match(value):
            return FileInput(field, file_id=value)
        path = self._local_path(value)
        if path is not None:
            from airflow_provider_together.datasets import check_file

            report = check_file(path, purpose, checksum=True)
            if not report.ok:
                return FileInput(
                    field, path=path, report=report, problems=tuple(report_problems(field, path, report))
                )
            log.info("%s: %s passed the local check (%s)", field, path, report.summary().splitlines()[0])
            return FileInput(field, path=path, report=report)
        if (
            lookup
            and isinstance(value, str)
            and value
            and "/" not in value
            and not value.endswith(_DATA_SUFFIXES)
        ):
            return self._existing(value, field=field)
        return FileInput(
            field,
            problems=((field, f"{value!r} is neither a Together file id (file-...) nor an existing file"),),
        )

    def _local_path(self, value: Any) -> Path | None:
        """A local path for ``value`` (copying remote object storage), or ``None`` when it is not a file."""
        if isinstance(value, (str, os.PathLike)) and not hasattr(value, "protocol"):
            path = Path(value).expanduser()
            return path if path.is_file() else None
        protocol = getattr(value, "protocol", None)
        if protocol is None:
            return None
        if protocol in ("file", "local"):
            local = Path(str(value.path))
            return local if local.is_file() else None
        if not value.is_file():
            return None
        # Remote object storage: the checker and the upload both need a seekable local file; keep the name,
        # its extension selects the format (.jsonl / .parquet).
        tmp = self._temporary.enter_context(tempfile.TemporaryDirectory(prefix="together-"))
        dest = Path(tmp) / (getattr(value, "name", "") or "training.jsonl")
        with value.open("rb") as src, dest.open("wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
        return dest

    def _existing(self, value: str, *, field: str) -> FileInput:
        # An id in a format this release does not know: ask Together rather than guess.
        try:
            return FileInput(field, file_id=self.hook.get_file(value).id)
        except TogetherNotFoundError:
            return FileInput(
                field,
                problems=(
                    (field, f"{value!r} is not an existing file here and Together has no file with that id"),
                ),
            )

    # -- phase 2: upload and wait for Together's validation -----------------------------------------

    def upload(self, item: FileInput, *, purpose: str = "fine-tune") -> str:
        """
        Upload ``item`` if it is local (once per checksum), wait for Together's validation; return the id.

        :raises TogetherFileRejectedError: Together's validation rejected the file.
        """
        if item.problems:
            raise TogetherConfigError(list(item.problems))
        file_id = item.file_id or self._upload_local(item, purpose)
        ready = self.hook.wait_for_file_ready(
            file_id, timeout=self.wait_timeout, poll_interval=self.poll_interval
        )
        status = ready.processing_status
        if status is not None and status.is_failed:
            report = ready.validation_report
            reason = (report.error if report else None) or status.value
            raise TogetherFileRejectedError(
                f"{item.field}: Together rejected file {file_id}: {reason}", file=file_id
            )
        return file_id

    def resolve(self, value: Any, *, field: str, purpose: str = "fine-tune") -> str:
        """
        :meth:`inspect`, then :meth:`upload`: a processed, valid Together file id for ``value``.

        :raises TogetherConfigError: ``value`` is neither a file id nor an existing file.
        :raises TogetherFileRejectedError: the local check or Together's validation rejected the file.
        """
        item = self.inspect(value, field=field, purpose=purpose)
        if item.report is not None and not item.report.ok:
            first = item.report.errors[0] if item.report.errors else None
            raise TogetherFileRejectedError(
                f"{field}: {item.path} failed the training-file check:\n{item.report.summary()}",
                file=str(item.path),
                line=first.line if first else None,
            )
        return self.upload(item, purpose=purpose)

    def _upload_local(self, item: FileInput, purpose: str) -> str:
        assert item.path is not None
        assert item.report is not None
        assert item.report.sha256 is not None
        checksum = item.report.sha256
        key = f"together_file_{checksum[:32]}"
        file_id = self._by_checksum.get(checksum)
        if file_id is None and self.state is not None:
            stored = self.state.get(key)
            file_id = stored if isinstance(stored, str) and self._still_exists(stored) else None
        if file_id is not None:
            log.info("%s: these bytes were already uploaded as %s; not uploading again", item.field, file_id)
        else:
            size = item.report.file_size or 0
            log.info("%s: uploading %s (%.1f MiB) to Together", item.field, item.path, size / (1 << 20))
            file_id = self.hook.upload_file(item.path, purpose=purpose, sha256=checksum).id
            log.info("%s: uploaded as %s", item.field, file_id)
            if self.state is not None:
                self.state.set(key, file_id)
        self._by_checksum[checksum] = file_id
        return file_id

    def _still_exists(self, file_id: str) -> bool:
        # A file remembered by an earlier try may have been deleted on Together since; then upload again.
        try:
            self.hook.get_file(file_id)
        except TogetherNotFoundError:
            log.info("File %s remembered from an earlier try is gone from Together; uploading again", file_id)
            return False
        return True
