"""
Turn ``training_file`` / ``validation_file`` into Together file ids that are processed and valid.

Accepted: a Together file id (``file-...``), a local path, or an ``ObjectStoragePath`` (copied to a
temporary local file first). Local files are checked with the training-file checker before a byte is
sent, and uploaded once: the checksum is remembered (per task run, and in the task state store on
Airflow 3.3 so a retry reuses the upload), and the hook answers Together's "duplicate file" conflict with
the existing file. Then we wait for Together's own validation and fail with its message.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_together.exceptions import (
    TogetherConfigError,
    TogetherFileRejectedError,
    TogetherNotFoundError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, MutableMapping

    from airflow_provider_together.hooks import TogetherHook

__all__ = ["FILE_ID_PATTERN", "FileResolver", "sha256_of"]

log = logging.getLogger(__name__)

#: Together file ids are ``file-`` followed by a UUID.
FILE_ID_PATTERN = re.compile(r"^file-[0-9A-Za-z-]{6,}$")
_CHUNK = 1 << 20
#: A value ending like a data file is a path, never an id: a missing one is reported without asking Together.
_DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def sha256_of(path: Path) -> str:
    """Return the file's SHA-256 hex digest, read in 1 MiB chunks (training files reach gigabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _local_copy(value: Any) -> Iterator[Path | None]:
    """Yield a local path for ``value`` (copying remote object storage), or ``None`` when it is not a file."""
    if isinstance(value, (str, os.PathLike)) and not hasattr(value, "protocol"):
        path = Path(value).expanduser()
        yield path if path.is_file() else None
        return
    protocol = getattr(value, "protocol", None)
    if protocol is None:
        yield None
        return
    if protocol in ("file", "local") and Path(str(value.path)).is_file():
        yield Path(str(value.path))
        return
    # Remote object storage: the checker and the upload both need a seekable local file; keep the name,
    # its extension selects the format (.jsonl / .parquet).
    with tempfile.TemporaryDirectory(prefix="together-") as tmp:
        dest = Path(tmp) / (getattr(value, "name", "") or "training.jsonl")
        with value.open("rb") as src, dest.open("wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
        yield dest


class FileResolver:
    """
    Resolve the operator's file arguments for one task run.

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

    def resolve(self, value: Any, *, field: str, purpose: str = "fine-tune") -> str:
        """
        Return a processed, valid Together file id for ``value``.

        :param field: the operator argument, named in errors.
        :raises TogetherConfigError: ``value`` is neither a file id nor an existing file.
        :raises TogetherFileRejectedError: the local check or Together's validation rejected the file.
        """
        if isinstance(value, str) and FILE_ID_PATTERN.match(value):
            file_id = value
        else:
            with _local_copy(value) as path:
                if path is not None:
                    file_id = self._upload(path, field=field, purpose=purpose)
                elif (
                    isinstance(value, str)
                    and value
                    and "/" not in value
                    and not value.endswith(_DATA_SUFFIXES)
                ):
                    file_id = self._existing(value, field=field)
                else:
                    raise TogetherConfigError(
                        [(field, f"{value!r} is neither a Together file id (file-...) nor an existing file")]
                    )
        ready = self.hook.wait_for_file_ready(
            file_id, timeout=self.wait_timeout, poll_interval=self.poll_interval
        )
        status = ready.processing_status
        if status is not None and status.is_failed:
            report = ready.validation_report
            reason = (report.error if report else None) or status.value
            raise TogetherFileRejectedError(
                f"{field}: Together rejected file {file_id}: {reason}", file=file_id
            )
        return file_id

    def _existing(self, value: str, *, field: str) -> str:
        # An id in a format this release does not know: ask Together rather than guess.
        try:
            return self.hook.get_file(value).id
        except TogetherNotFoundError as exc:
            raise TogetherConfigError(
                [(field, f"{value!r} is not an existing file here and Together has no file with that id")]
            ) from exc

    def _upload(self, path: Path, *, field: str, purpose: str) -> str:
        from airflow_provider_together.datasets import check_file

        report = check_file(path, purpose)
        if not report.ok:
            first = report.errors[0] if report.errors else None
            raise TogetherFileRejectedError(
                f"{field}: {path} failed the training-file check:\n{report.summary()}",
                file=str(path),
                line=first.line if first else None,
            )
        log.info("%s: %s passed the local check (%s)", field, path, report.summary().splitlines()[0])
        checksum = sha256_of(path)
        key = f"together_file_{checksum[:32]}"
        file_id = self._by_checksum.get(checksum)
        if file_id is None and self.state is not None:
            stored = self.state.get(key)
            file_id = stored if isinstance(stored, str) and self._still_exists(stored) else None
        if file_id is not None:
            log.info("%s: these bytes were already uploaded as %s; not uploading again", field, file_id)
        else:
            size = path.stat().st_size
            log.info("%s: uploading %s (%.1f MiB) to Together", field, path, size / (1 << 20))
            file_id = self.hook.upload_file(path, purpose=purpose).id
            log.info("%s: uploaded as %s", field, file_id)
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
