"""
TogetherHook: the Together AI files and fine-tuning API for Airflow, sync and async.

Every public method is a one-line pair (``get_fine_tune`` / ``aget_fine_tune``) over a flow defined once
in ``_transport.ops`` / ``_transport.upload``; ``_transport.drivers`` runs it with ``httpx.Client`` or the
shared ``httpx.AsyncClient``.

.. seealso:: https://docs.together.ai/reference/finetune
"""

from __future__ import annotations

import asyncio
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_together._transport import client as _client
from airflow_provider_together._transport import evals as _evals
from airflow_provider_together._transport import ops as _ops
from airflow_provider_together._transport import upload as _upload
from airflow_provider_together._transport.drivers import arun_flow, run_flow
from airflow_provider_together._transport.flow import Context, UploadOptions
from airflow_provider_together._transport.http import redact
from airflow_provider_together._transport.retry import RetryPolicy
from airflow_provider_together._transport.settings import TogetherSettings, settings_from_connection

if TYPE_CHECKING:
    import os
    from collections.abc import Awaitable, Callable, Mapping
    from pathlib import Path
    from typing import Concatenate, ParamSpec

    from airflow_provider_together._transport.flow import Flow
    from airflow_provider_together.models import (
        Checkpoint,
        EvaluationJob,
        FileObject,
        FineTuneEvent,
        FineTuneJob,
        ModelLimits,
        PriceEstimate,
    )

    P = ParamSpec("P")

T = TypeVar("T")


class TogetherHook(BaseHook):
    """
    Talk to Together AI's files and fine-tuning API over httpx, with retries that never double-submit.

    Nothing happens in the constructor: the connection is read on the first call (sync) or through the
    shared per-loop session (async, looked up asynchronously and cached for 5 minutes). Idempotent calls
    retry on connect errors, timeouts, 408, 429 and 5xx, honouring ``retry-after-ms`` / ``Retry-After``
    up to 60 s, else backing off exponentially with jitter. ``create_fine_tune`` is resent only after a
    connect error or a 429; after a 5xx or a timeout it raises
    :class:`~airflow_provider_together.exceptions.TogetherAmbiguousSubmitError`.

    :param together_conn_id: the ``together`` connection: password = API key, host = base URL, extras
        ``request_timeout``, ``connect_timeout``, ``max_retries``, ``retry_delay``, ``retry_max_delay``,
        ``max_concurrent_requests``, ``async_transport`` (``aiohttp``, the default, or ``httpx``: what the
        async client sends with) and ``ca_bundle`` (a PEM file of CAs to trust instead of certifi's).
    :param multipart_threshold: files larger than this many bytes upload in parts (default 5 GiB).
    :param part_size: target bytes per uploaded part (default 250 MiB).
    :param upload_concurrency: parts uploaded at once (default 4).
    :param sleep: how the sync path waits between retries and polls (a seam for tests).
    :param asleep: how the async path waits (a seam for tests).
    :param clock: monotonic clock for ``wait_for_file_ready``'s timeout (a seam for tests).

    .. seealso:: https://docs.together.ai/reference/files
    """

    conn_name_attr = "together_conn_id"
    default_conn_name = "together_default"
    conn_type = "together"
    hook_name = "Together AI"
    _UPLOADS: ClassVar[UploadOptions] = UploadOptions()

    def __init__(
        self,
        together_conn_id: str = default_conn_name,
        *,
        multipart_threshold: int = _UPLOADS.multipart_threshold,
        part_size: int = _UPLOADS.part_size,
        upload_concurrency: int = _UPLOADS.concurrency,
        sleep: Callable[[float], Any] = time.sleep,
        asleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.together_conn_id = together_conn_id
        self.uploads = UploadOptions(multipart_threshold, max(1, part_size), max(1, upload_concurrency))
        self.sleep = sleep
        self.asleep = asleep
        self.clock = clock

    # -- plumbing -----------------------------------------------------------------------------------

    @cached_property
    def settings(self) -> TogetherSettings:
        """The connection, resolved and checked once per hook (sync path)."""
        return self._settings(self.get_connection(self.together_conn_id))

    async def asettings(self) -> TogetherSettings:
        """The connection as the async path sees it (shared, cached per loop for 5 minutes)."""
        return (await _client.session(self.together_conn_id, self._aresolve)).settings

    def _settings(self, conn: Any) -> TogetherSettings:
        return settings_from_connection(
            host=conn.host,
            password=conn.password,
            schema=conn.schema,
            port=conn.port,
            extra=conn.extra_dejson,
        )

    async def _aresolve(self) -> TogetherSettings:
        return self._settings(await _aget_connection(self.together_conn_id))

    def _context(self, settings: TogetherSettings) -> Context:
        return Context(settings, RetryPolicy.from_settings(settings), self.clock, self.uploads)

    def _run(self, op: Callable[Concatenate[Context, P], Flow[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        settings = self.settings
        with _client.new_client(settings) as client:
            return run_flow(op(self._context(settings), *args, **kwargs), client, settings, self.sleep)

    async def _arun(
        self, op: Callable[Concatenate[Context, P], Flow[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        s = await _client.session(self.together_conn_id, self._aresolve)
        s.in_flight += 1
        try:
            return await arun_flow(
                op(self._context(s.settings), *args, **kwargs), s.client, s.settings, self.asleep, s.gate
            )
        finally:
            s.in_flight -= 1

    @staticmethod
    async def aclose_async_clients() -> None:
        """Close the shared async clients of the running event loop (end of a test, or of a loop)."""
        await _client.aclose_sessions()

    def test_connection(self) -> tuple[bool, str]:
        """Check the key and base URL with a read-only ``GET /fine-tunes``; never raises."""
        try:
            return True, self._run(_ops.check_connection)
        except Exception as exc:  # Airflow's contract: report the failure as (False, message)
            return False, self._safe_message(exc)

    async def atest_connection(self) -> tuple[bool, str]:
        """Async twin of :meth:`test_connection`."""
        try:
            return True, await self._arun(_ops.check_connection)
        except Exception as exc:  # same contract as the sync twin
            return False, self._safe_message(exc)

    def _safe_message(self, exc: Exception) -> str:
        settings = self.__dict__.get("settings")
        return redact(f"{type(exc).__name__}: {exc}", settings.api_key if settings else "")

    # -- files --------------------------------------------------------------------------------------

    def upload_file(
        self, path: str | os.PathLike[str], purpose: str = "fine-tune", *, sha256: str | None = None
    ) -> FileObject:
        """
        Upload a local file (v3 presigned flow; multipart above the threshold); 409 returns the existing file.

        :param sha256: the file's SHA-256 hex digest if already known (saves a read of the whole file).
        """
        return self._run(_upload.upload_file, path, purpose, sha256)

    async def aupload_file(
        self, path: str | os.PathLike[str], purpose: str = "fine-tune", *, sha256: str | None = None
    ) -> FileObject:
        """Async twin of :meth:`upload_file`."""
        return await self._arun(_upload.upload_file, path, purpose, sha256)

    def get_file(self, file_id: str) -> FileObject:
        """Return a file's metadata, including ``processing_status`` and ``validation_report``."""
        return self._run(_ops.get_file, file_id)

    async def aget_file(self, file_id: str) -> FileObject:
        """Async twin of :meth:`get_file`."""
        return await self._arun(_ops.get_file, file_id)

    def list_files(self) -> list[FileObject]:
        """List the account's files."""
        return self._run(_ops.list_files)

    async def alist_files(self) -> list[FileObject]:
        """Async twin of :meth:`list_files`."""
        return await self._arun(_ops.list_files)

    def delete_file(self, file_id: str) -> None:
        """Delete a file."""
        return self._run(_ops.delete_file, file_id)

    async def adelete_file(self, file_id: str) -> None:
        """Async twin of :meth:`delete_file`."""
        return await self._arun(_ops.delete_file, file_id)

    def download_file_content(self, file_id: str, dest: str | os.PathLike[str]) -> Path:
        """Stream a file's content to ``dest`` (a path, or a directory); return the written path."""
        return self._run(_ops.download_file_content, file_id, dest)

    async def adownload_file_content(self, file_id: str, dest: str | os.PathLike[str]) -> Path:
        """Async twin of :meth:`download_file_content`."""
        return await self._arun(_ops.download_file_content, file_id, dest)

    def wait_for_file_ready(
        self, file_id: str, timeout: float = 600.0, poll_interval: float = 5.0
    ) -> FileObject:
        """Poll until Together validated the file; raise ``TogetherFileRejectedError`` if it was rejected."""
        return self._run(_ops.wait_for_file_ready, file_id, timeout, poll_interval)

    async def await_for_file_ready(
        self, file_id: str, timeout: float = 600.0, poll_interval: float = 5.0
    ) -> FileObject:
        """Async twin of :meth:`wait_for_file_ready`."""
        return await self._arun(_ops.wait_for_file_ready, file_id, timeout, poll_interval)

    # -- fine-tunes ---------------------------------------------------------------------------------

    def create_fine_tune(self, request: Mapping[str, Any]) -> FineTuneJob:
        """Submit a job; never resent once the server may have it (raises ``TogetherAmbiguousSubmitError``)."""
        return self._run(_ops.create_fine_tune, request)

    async def acreate_fine_tune(self, request: Mapping[str, Any]) -> FineTuneJob:
        """Async twin of :meth:`create_fine_tune`."""
        return await self._arun(_ops.create_fine_tune, request)

    def get_fine_tune(self, job_id: str) -> FineTuneJob:
        """Return a job with its status, progress and events."""
        return self._run(_ops.get_fine_tune, job_id)

    async def aget_fine_tune(self, job_id: str) -> FineTuneJob:
        """Async twin of :meth:`get_fine_tune` (the triggerer's poll)."""
        return await self._arun(_ops.get_fine_tune, job_id)

    def list_fine_tunes(self) -> list[FineTuneJob]:
        """List the account's jobs (used to reconcile an ambiguous submit)."""
        return self._run(_ops.list_fine_tunes)

    async def alist_fine_tunes(self) -> list[FineTuneJob]:
        """Async twin of :meth:`list_fine_tunes`."""
        return await self._arun(_ops.list_fine_tunes)

    def cancel_fine_tune(self, job_id: str) -> FineTuneJob:
        """Ask Together to cancel a job (it passes through ``cancel_requested``)."""
        return self._run(_ops.cancel_fine_tune, job_id)

    async def acancel_fine_tune(self, job_id: str) -> FineTuneJob:
        """Async twin of :meth:`cancel_fine_tune`."""
        return await self._arun(_ops.cancel_fine_tune, job_id)

    def delete_fine_tune(self, job_id: str) -> None:
        """Delete a job."""
        return self._run(_ops.delete_fine_tune, job_id)

    async def adelete_fine_tune(self, job_id: str) -> None:
        """Async twin of :meth:`delete_fine_tune`."""
        return await self._arun(_ops.delete_fine_tune, job_id)

    def list_fine_tune_events(self, job_id: str) -> list[FineTuneEvent]:
        """Return a job's event log."""
        return self._run(_ops.list_fine_tune_events, job_id)

    async def alist_fine_tune_events(self, job_id: str) -> list[FineTuneEvent]:
        """Async twin of :meth:`list_fine_tune_events`."""
        return await self._arun(_ops.list_fine_tune_events, job_id)

    def list_fine_tune_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Return a job's saved checkpoints."""
        return self._run(_ops.list_fine_tune_checkpoints, job_id)

    async def alist_fine_tune_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Async twin of :meth:`list_fine_tune_checkpoints`."""
        return await self._arun(_ops.list_fine_tune_checkpoints, job_id)

    def download_fine_tune(
        self,
        job_id: str,
        dest: str | os.PathLike[str],
        *,
        checkpoint: str | None = None,
        step: int | None = None,
    ) -> Path:
        """Stream a job's model (or ``step``'s checkpoint) to ``dest``, resuming with Range on stream errors."""
        return self._run(_ops.download_fine_tune, job_id, dest, checkpoint, step)

    async def adownload_fine_tune(
        self,
        job_id: str,
        dest: str | os.PathLike[str],
        *,
        checkpoint: str | None = None,
        step: int | None = None,
    ) -> Path:
        """Async twin of :meth:`download_fine_tune`."""
        return await self._arun(_ops.download_fine_tune, job_id, dest, checkpoint, step)

    def estimate_fine_tune_price(self, request: Mapping[str, Any]) -> PriceEstimate:
        """Ask Together what a job would cost (advisory; it never blocks a submit)."""
        return self._run(_ops.estimate_fine_tune_price, request)

    async def aestimate_fine_tune_price(self, request: Mapping[str, Any]) -> PriceEstimate:
        """Async twin of :meth:`estimate_fine_tune_price`."""
        return await self._arun(_ops.estimate_fine_tune_price, request)

    def get_model_limits(self, model: str) -> ModelLimits:
        """Return what ``model`` allows; ``TogetherNotFoundError`` if it cannot be fine-tuned."""
        return self._run(_ops.get_model_limits, model)

    async def aget_model_limits(self, model: str) -> ModelLimits:
        """Async twin of :meth:`get_model_limits`."""
        return await self._arun(_ops.get_model_limits, model)

    def get_fine_tune_metrics(self, job_id: str) -> list[dict[str, float]]:
        """Return a job's logged training metrics (``train/loss`` ...), one dict per logged point."""
        return self._run(_ops.get_fine_tune_metrics, job_id)

    async def aget_fine_tune_metrics(self, job_id: str) -> list[dict[str, float]]:
        """Async twin of :meth:`get_fine_tune_metrics`."""
        return await self._arun(_ops.get_fine_tune_metrics, job_id)

    # -- evaluations --------------------------------------------------------------------------------

    def create_evaluation(self, request: Mapping[str, Any]) -> EvaluationJob:
        """Submit ``EvaluationConfig.to_request()``; never resent once the server may have it (as a fine-tune)."""
        return self._run(_evals.create_evaluation, request)

    async def acreate_evaluation(self, request: Mapping[str, Any]) -> EvaluationJob:
        """Async twin of :meth:`create_evaluation`."""
        return await self._arun(_evals.create_evaluation, request)

    def get_evaluation(self, evaluation_id: str) -> EvaluationJob:
        """Return an evaluation with its type, status and results (read them with ``summary()``)."""
        return self._run(_evals.get_evaluation, evaluation_id)

    async def aget_evaluation(self, evaluation_id: str) -> EvaluationJob:
        """Async twin of :meth:`get_evaluation` (the triggerer's poll)."""
        return await self._arun(_evals.get_evaluation, evaluation_id)

    def get_evaluation_status(self, evaluation_id: str) -> EvaluationJob:
        """Return ``GET /evaluation/{id}/status``: status and raw results, without the type."""
        return self._run(_evals.get_evaluation_status, evaluation_id)

    async def aget_evaluation_status(self, evaluation_id: str) -> EvaluationJob:
        """Async twin of :meth:`get_evaluation_status`."""
        return await self._arun(_evals.get_evaluation_status, evaluation_id)

    def list_evaluations(self, status: str | None = None, limit: int | None = None) -> list[EvaluationJob]:
        """List evaluations, newest first as the server orders them (``limit`` defaults to 10 there)."""
        return self._run(_evals.list_evaluations, status, limit)

    async def alist_evaluations(
        self, status: str | None = None, limit: int | None = None
    ) -> list[EvaluationJob]:
        """Async twin of :meth:`list_evaluations`."""
        return await self._arun(_evals.list_evaluations, status, limit)

    def download_evaluation_results(self, evaluation_id: str, dest: str | os.PathLike[str]) -> Path:
        """Stream a completed evaluation's per-row result file to ``dest`` (a path or a directory)."""
        return self._run(_evals.download_evaluation_results, evaluation_id, dest)

    async def adownload_evaluation_results(self, evaluation_id: str, dest: str | os.PathLike[str]) -> Path:
        """Async twin of :meth:`download_evaluation_results`."""
        return await self._arun(_evals.download_evaluation_results, evaluation_id, dest)


async def _aget_connection(conn_id: str) -> Any:
    """
    Fetch a connection without blocking the loop.

    ``common.compat``'s helper (present in every common.compat we accept, >= 1.12) picks
    ``BaseHook.aget_connection`` where it is safe (Airflow >= 3.3.2; earlier versions could dead-lock masking
    secrets) and ``sync_to_async(get_connection)`` otherwise, e.g. on Airflow 3.1.
    """
    from airflow.providers.common.compat.connection import get_async_connection

    return await get_async_connection(conn_id)
