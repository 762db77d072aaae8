"""
The small operators a pipeline needs around a fine-tune: upload a file, cancel a job, download a checkpoint.

Re-exported from :mod:`airflow_provider_together.operators`, which is the public import path.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_together.hooks import TogetherHook

__all__ = [
    "TogetherCancelFineTuneOperator",
    "TogetherDownloadCheckpointOperator",
    "TogetherUploadFileOperator",
]


class _TogetherOperator(BaseOperator):
    """Shared plumbing: the connection id and a lazily built hook."""

    def __init__(self, *, together_conn_id: str = "together_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.together_conn_id = together_conn_id

    @cached_property
    def hook(self) -> TogetherHook:
        """The Together hook, built on first use (no I/O at DAG parse time)."""
        from airflow_provider_together.hooks import TogetherHook

        return TogetherHook(together_conn_id=self.together_conn_id)


class TogetherUploadFileOperator(_TogetherOperator):
    """
    Check a training file locally, upload it once, wait until Together has validated it; return its id.

    The same bytes are not uploaded twice within a task instance (the checksum is remembered), and
    Together's "duplicate file" answer is resolved to the existing file by the hook.

    :param path: a local path or an ``ObjectStoragePath`` (templated).
    :param purpose: Together's file purpose.
    :param wait_timeout: seconds to wait for Together's validation.
    :param together_conn_id: the Together connection.
    """

    template_fields: Sequence[str] = ("path", "purpose", "together_conn_id")

    def __init__(
        self, *, path: Any, purpose: str = "fine-tune", wait_timeout: float = 3600.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.purpose = purpose
        self.wait_timeout = wait_timeout

    def execute(self, context: Context) -> str:
        """Check, upload and wait; return the Together file id (``file-...``)."""
        from airflow_provider_together._fine_tune.inputs import FileResolver
        from airflow_provider_together.exceptions import TogetherConfigError, TogetherFileRejectedError

        try:
            with FileResolver(
                self.hook, context.get("task_state_store"), wait_timeout=self.wait_timeout
            ) as resolver:
                file_id = resolver.resolve(self.path, field="path", purpose=self.purpose)
        except (TogetherConfigError, TogetherFileRejectedError) as exc:
            # A bad file stays bad on retry.
            raise AirflowFailException(str(exc)) from exc
        self.log.info("File ready for fine-tuning: %s", file_id)
        return file_id


class TogetherCancelFineTuneOperator(_TogetherOperator):
    """
    Cancel a fine-tuning job (e.g. in a teardown or a clean-up branch); return the status it reports.

    :param job_id: the Together job id (templated, e.g. ``{{ ti.xcom_pull('fine_tune', key='job_id') }}``).
    :param together_conn_id: the Together connection.
    """

    template_fields: Sequence[str] = ("job_id", "together_conn_id")

    def __init__(self, *, job_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id

    def execute(self, context: Context) -> str:
        """Request the cancellation; a job that already ended is reported, not an error."""
        current = self.hook.get_fine_tune(self.job_id)
        if current.is_terminal:
            self.log.info(
                "Job %s already ended with status %s; nothing to cancel", self.job_id, current.status_raw
            )
            return current.status.value
        job = self.hook.cancel_fine_tune(self.job_id)
        self.log.info("Cancel requested for job %s; status now %s", self.job_id, job.status_raw)
        return job.status.value


#: Names that say "this object is the archive" rather than "a prefix to put it under".
_ARCHIVE_SUFFIXES = (".tar.zst", ".tar.gz", ".tgz", ".tar", ".zst", ".gz", ".zip")


class TogetherDownloadCheckpointOperator(_TogetherOperator):
    """
    Download a completed job's model or a checkpoint to ``dest``; return where it was written.

    ``dest`` is a local path or any ``ObjectStoragePath`` (``s3://``, ``gs://``, ``file://``, ``memory://``...
    through fsspec). The archive is streamed to a local temporary file first (the download resumes with
    ``Range`` after a dropped connection, which a remote object cannot do), then copied to object storage in
    1 MiB chunks: memory stays flat whatever the size of the checkpoint; local disk holds one copy.

    :param job_id: the Together job id (templated).
    :param dest: a directory or file, local path or ``ObjectStoragePath`` (templated). A local directory
        receives the archive under Together's file name. In object storage (which has no directories, and
        whose paths drop a trailing ``/``) ``dest`` is the object itself when its name ends like an archive
        (``.tar.zst``, ``.tar.gz``, ``.tar``, ``.zst``, ``.gz``, ``.zip``), else a prefix the archive goes under.
    :param checkpoint: ``merged``, ``adapter`` or ``model_output_path`` (see the API reference); default
        lets Together choose for the job's training type.
    :param step: an intermediate checkpoint's step; ``None`` means the final model.
    :param together_conn_id: the Together connection.
    """

    template_fields: Sequence[str] = ("job_id", "dest", "checkpoint", "step", "together_conn_id")

    def __init__(
        self,
        *,
        job_id: str,
        dest: Any,
        checkpoint: str | None = None,
        step: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.dest = dest
        self.checkpoint = checkpoint
        self.step = step

    def execute(self, context: Context) -> str:
        """Download and return the archive's location as a string (a path or a URI; XCom-friendly)."""
        step = int(self.step) if self.step not in (None, "") else None
        if hasattr(self.dest, "protocol") and getattr(self.dest, "protocol", None) not in ("file", "local"):
            where = self._to_object_storage(self.dest, step)
        else:
            local = Path(str(self.dest.path)) if hasattr(self.dest, "protocol") else Path(self.dest)
            where = str(
                self.hook.download_fine_tune(self.job_id, local, checkpoint=self.checkpoint, step=step)
            )
        self.log.info("Downloaded %s%s to %s", self.job_id, f" step {step}" if step else "", where)
        return where

    def _to_object_storage(self, dest: Any, step: int | None) -> str:
        import shutil
        import tempfile

        into_dir = not str(dest.name).endswith(_ARCHIVE_SUFFIXES) or dest.is_dir()
        with tempfile.TemporaryDirectory(prefix="together-checkpoint-") as tmp:
            local = self.hook.download_fine_tune(
                self.job_id, Path(tmp), checkpoint=self.checkpoint, step=step
            )
            # Object stores have no directories to create: writing the key is enough.
            target = dest / local.name if into_dir else dest
            with local.open("rb") as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        return str(target)
