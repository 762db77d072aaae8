"""
Uploaded files: records, their bytes on disk, and the server-side validation that the training-file checker
performs after ``/preprocess`` (or a multipart ``complete``).

Bytes are streamed to a data directory and never held in memory; the checker runs in a worker thread so the
event loop keeps answering polls while a big file is validated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_together.emulator.errors import APIError, not_found
from airflow_provider_together.models.status import FileProcessingStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_together.emulator.clock import Clock

__all__ = ["FILE_PURPOSES", "FILE_TYPES", "FileRecord", "FileStore"]

FILE_PURPOSES = (
    "fine-tune",
    "eval",
    "calibration",
    "batch-api",
    "eval-sample",
    "eval-output",
    "eval-summary",
)
FILE_TYPES = ("jsonl", "parquet", "csv")
PROCESSING_S = 1.0
_WRITE_BLOCK = 8 * 1024 * 1024


@dataclass
class FileRecord:
    """One file, from the upload request to its validation result."""

    id: str
    filename: str
    purpose: str
    file_type: str
    checksum: str | None
    created_at: int
    token: str
    bytes: int = 0
    uploaded: bool = False
    processing_requested: bool = False
    ready_v: float | None = None
    check: dict[str, Any] | None = None
    upload_id: str | None = None
    parts: dict[str, list[Any]] = field(default_factory=dict)

    def status(self, now_v: float) -> FileProcessingStatus:
        """Processing status at virtual time ``now_v``."""
        if self.check is None or self.ready_v is None or now_v < self.ready_v:
            return FileProcessingStatus.PENDING
        if self.check.get("failed"):
            return FileProcessingStatus.FAILED
        return FileProcessingStatus.COMPLETED if self.check["valid"] else FileProcessingStatus.INVALID_FORMAT

    def to_json(self, now_v: float) -> dict[str, Any]:
        """Render the API's file object (``FileType`` capitalised, as the service sends it)."""
        status = self.status(now_v)
        body: dict[str, Any] = {
            "id": self.id,
            "object": "file",
            "created_at": self.created_at,
            "filename": self.filename,
            "bytes": self.bytes,
            "purpose": self.purpose,
            "FileType": self.file_type,
            "Processed": status is not FileProcessingStatus.PENDING,
            "processing_status": status.value,
        }
        if status is not FileProcessingStatus.PENDING and self.check is not None:
            body["validation_report"] = {
                k: v for k, v in self.check.items() if k not in ("failed", "estimated_tokens")
            }
        return body

    def to_row(self) -> dict[str, Any]:
        """Serialise for persistence."""
        return asdict(self)


def _report_from_check(file_id: str, report: Any) -> dict[str, Any]:
    """Turn the checker's ``CheckReport`` into Together's ``validation_report`` (plus our token estimate)."""
    fmt = getattr(report.format, "value", report.format)
    result: dict[str, Any] = {
        "valid": bool(report.ok),
        "file_id": file_id,
        "dataset_format": fmt,
        "nlines": report.num_samples,
        "dataset_has_message_weights": bool(report.has_message_weights),
        "dataset_has_sample_weights": bool(report.has_sample_weights),
        "dataset_has_tools": bool(report.has_tools),
        "dataset_has_reasoning": bool(report.has_reasoning),
        "dataset_has_parallel_tool_calls": False,
        "dataset_is_multimodal": bool(report.is_multimodal),
        "estimated_tokens": int(report.estimated_tokens or 0),
    }
    if not report.ok:
        first = report.errors[0] if report.errors else None
        where = f"Line {first.line}: " if first is not None and first.line else ""
        field_part = f"`{first.field}` " if first is not None and first.field else ""
        result["error"] = f"{where}{field_part}{first.message}" if first is not None else "Invalid file"
        result["error_type"] = "INVALID_FORMAT"
    return result


def _open_for_write(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)


def _write_all(fd: int, data: bytearray) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _run_checker(path: str, purpose: str, file_id: str) -> dict[str, Any]:
    # Imported here: the checker is only needed once a file is processed, and the emulator must start fast.
    from airflow_provider_together.datasets import check_file

    return _report_from_check(file_id, check_file(path, purpose=purpose))


class FileStore:
    """
    Files by id, with their bytes under ``data_dir``.

    :param data_dir: where uploads are written (a temp dir, or beside the ``--state`` file).
    :param clock: the emulator clock (processing completes after a short virtual delay).
    """

    def __init__(self, data_dir: Path, clock: Clock) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.files: dict[str, FileRecord] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Called after a background validation finished, so the result can be persisted.
        self.on_change: Callable[[FileRecord], None] | None = None

    def path(self, record: FileRecord) -> Path:
        """Where a file's bytes live (with its extension: the checker decides the format by it)."""
        return self.data_dir / f"{record.id}.{record.file_type}"

    def get(self, file_id: str) -> FileRecord:
        """Return an uploaded file or raise the API's 404."""
        record = self.files.get(file_id)
        if record is None:
            raise not_found("File", file_id, param="id")
        return record

    def listed(self) -> list[FileRecord]:
        """Files whose bytes arrived, oldest first (a started but unfinished upload is not a file yet)."""
        return [record for record in self.files.values() if record.uploaded]

    def find_duplicate(self, checksum: str | None, purpose: str) -> FileRecord | None:
        """Return an uploaded file with the same checksum and purpose, if any."""
        if not checksum:
            return None
        for record in self.files.values():
            if record.uploaded and record.checksum == checksum and record.purpose == purpose:
                return record
        return None

    def new(self, *, filename: str, purpose: str, file_type: str | None, checksum: str | None) -> FileRecord:
        """Validate an upload request and register the file (still without bytes)."""
        if purpose not in FILE_PURPOSES:
            raise APIError(
                400,
                f"Invalid purpose {purpose!r}; expected one of {', '.join(FILE_PURPOSES)}",
                param="purpose",
            )
        if not filename:
            raise APIError(400, "file_name is required", param="file_name")
        if file_type is None:
            file_type = Path(filename).suffix.lstrip(".").lower()
        if file_type not in FILE_TYPES:
            raise APIError(
                400, f"Invalid file_type {file_type!r}; expected jsonl, parquet or csv", param="file_type"
            )
        duplicate = self.find_duplicate(checksum, purpose)
        if duplicate is not None:
            raise APIError(
                409,
                f"File with checksum {checksum} already exists: {duplicate.id}",
                code="file_already_exists",
                param="checksum",
                extra={"file_id": duplicate.id},
            )
        record = FileRecord(
            id=f"file-{uuid.uuid4()}",
            filename=filename,
            purpose=purpose,
            file_type=file_type,
            checksum=checksum,
            created_at=int(time.time()),
            token=secrets.token_urlsafe(16),
        )
        self.files[record.id] = record
        return record

    async def receive(self, path: Path, chunks: Any) -> int:
        """
        Stream a request body to ``path`` in large writes; return the byte count.

        Socket reads (~64 KiB) are coalesced into 8 MiB blocks, each written by a worker thread while the next
        block is being received: one syscall per block keeps a multi-gigabyte PUT close to disk speed, the
        event loop keeps serving polls meanwhile, and memory stays bounded (two blocks) whatever the file size.
        """
        loop = asyncio.get_running_loop()
        fd = await loop.run_in_executor(None, _open_for_write, str(path))
        size = 0
        buffer = bytearray()
        pending: asyncio.Future[None] | None = None
        try:
            async for chunk in chunks:
                buffer += chunk
                if len(buffer) >= _WRITE_BLOCK:
                    if pending is not None:
                        await pending
                    size += len(buffer)
                    pending = loop.run_in_executor(None, _write_all, fd, buffer)
                    buffer = bytearray()
            if pending is not None:
                await pending
            if buffer:
                size += len(buffer)
                await loop.run_in_executor(None, _write_all, fd, buffer)
        finally:
            os.close(fd)
        return size

    def start_processing(self, record: FileRecord) -> None:
        """Validate the file in a worker thread; its status reads PENDING until done and a short delay passed."""
        if record.processing_requested:
            return
        record.processing_requested = True
        record.ready_v = self.clock.now() + PROCESSING_S
        task = asyncio.get_running_loop().create_task(self._process(record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, record: FileRecord) -> None:
        path = str(self.path(record))
        try:
            record.check = await asyncio.to_thread(_run_checker, path, record.purpose, record.id)
        except Exception as exc:  # the checker crashing is Together's FAILED status, not an emulator crash
            record.check = {
                "valid": False,
                "failed": True,
                "file_id": record.id,
                "error": f"Processing failed: {exc}",
                "error_type": "FAILED",
                "nlines": 0,
            }
        if self.on_change is not None:
            self.on_change(record)

    def resume_processing(self) -> None:
        """Restart validation of files whose check was lost in a restart."""
        for record in self.files.values():
            if record.processing_requested and record.check is None:
                record.processing_requested = False
                self.start_processing(record)

    def delete(self, file_id: str) -> None:
        """Forget a file and remove its bytes."""
        record = self.get(file_id)
        del self.files[record.id]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(record))
        for part in self.data_dir.glob(f"{record.id}.part*"):
            part.unlink(missing_ok=True)

    def assemble(self, record: FileRecord, numbers: list[int]) -> int:
        """Concatenate multipart parts into the file (runs in a worker thread); return its size."""
        target = self.path(record)
        with open(target, "wb") as out:
            for number in numbers:
                part = self.data_dir / f"{record.id}.part{number}"
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, _WRITE_BLOCK)
                part.unlink()
        return target.stat().st_size
