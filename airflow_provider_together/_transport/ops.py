"""
The catalogue of Together API calls as flows: which request, how it may be retried, how to parse it.

Each function here is the single definition of one endpoint; ``TogetherHook`` exposes it twice (sync and
``a``-prefixed async) by handing the same flow to a different driver. Parsing uses the tolerant models
of :mod:`airflow_provider_together.models` (unknown fields and status values never crash a poll).

.. seealso:: https://docs.together.ai/reference/finetune
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from airflow_provider_together._transport.flow import Run, Send, Sleep, call, log
from airflow_provider_together._transport.http import Retry, Spec
from airflow_provider_together.exceptions import (
    TogetherConfigError,
    TogetherFileNotReadyError,
    TogetherFileRejectedError,
    TogetherResponseError,
)
from airflow_provider_together.models import (
    Checkpoint,
    FileObject,
    FileProcessingStatus,
    FineTuneEvent,
    FineTuneJob,
    ModelLimits,
    PriceEstimate,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from airflow_provider_together._transport.flow import Context, Flow

M = TypeVar("M", bound=BaseModel)

_REJECTED = frozenset({FileProcessingStatus.INVALID_FORMAT, FileProcessingStatus.FAILED})
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def segment(name: str, value: str) -> str:
    """Quote an id for a URL path, refusing empty ones (``/fine-tunes/`` would list instead of get)."""
    if not isinstance(value, str) or not value.strip():
        raise TogetherConfigError([(name, "must be a non-empty string")], heading="Invalid argument")
    return quote(value.strip(), safe="")


def one(model: type[M]) -> Callable[[httpx.Response], M]:
    """Parser of a single JSON object (pydantic's Rust JSON parser: the hot path of every poll)."""
    return lambda response: model.model_validate_json(response.content)


def many(model: type[M], key: str = "data") -> Callable[[httpx.Response], list[M]]:
    """
    Parser of ``{"data": [...]}`` (or a bare list, which older API generations sent).

    ``{"data": null}`` or a missing key is an empty list; anything else that is not a list is refused
    (``ValueError``), so that the flow reports an unreadable answer instead of iterating a string.
    """

    def parse(response: httpx.Response) -> list[M]:
        body = json.loads(response.content)
        items = body.get(key) if isinstance(body, dict) else body
        if items is None:
            return []
        if not isinstance(items, list):
            raise ValueError(f"expected a list under {key!r}, got {type(items).__name__}")
        return [model.model_validate(item) for item in items]

    return parse


def nothing(response: httpx.Response) -> None:
    """Parser of endpoints whose body carries nothing the caller needs (deletes)."""


# -- files ------------------------------------------------------------------------------------------


def get_file(ctx: Context, file_id: str) -> Flow[FileObject]:
    """``GET /files/{id}``."""
    return call(ctx, Spec("GET", f"/files/{segment('file_id', file_id)}"), one(FileObject))


def list_files(ctx: Context) -> Flow[list[FileObject]]:
    """``GET /files``."""
    return call(ctx, Spec("GET", "/files"), many(FileObject))


def delete_file(ctx: Context, file_id: str) -> Flow[None]:
    """``DELETE /files/{id}``."""
    return call(ctx, Spec("DELETE", f"/files/{segment('file_id', file_id)}"), nothing)


def download_file_content(ctx: Context, file_id: str, dest: str | os.PathLike[str]) -> Flow[Path]:
    """``GET /files/{id}/content`` streamed to ``dest`` (a file, or a directory to put ``file_id`` in)."""
    spec = Spec(
        "GET",
        f"/files/{segment('file_id', file_id)}/content",
        headers={"Accept": "*/*"},
        follow_redirects=True,
    )
    return download(ctx, spec, Path(dest), lambda response: _disposition(response) or file_id)


def wait_for_file_ready(ctx: Context, file_id: str, timeout: float, poll_interval: float) -> Flow[FileObject]:
    """
    Poll ``GET /files/{id}`` until Together has validated the file.

    Returns on ``COMPLETED`` (or when the purpose has no validation and so no status); raises
    :class:`TogetherFileRejectedError` with ``validation_report.error`` on ``INVALID_FORMAT`` / ``FAILED``
    and :class:`TogetherFileNotReadyError` once ``timeout`` seconds have passed.
    """
    deadline = ctx.clock() + timeout
    while True:
        file = yield from get_file(ctx, file_id)
        status = file.processing_status
        if status is None or status is FileProcessingStatus.COMPLETED:
            return file
        if status in _REJECTED:
            report = file.validation_report
            reason = (report.error if report else None) or "no reason given"
            raise TogetherFileRejectedError(
                f"Together rejected file {file_id} ({status.value}): {reason}", file=file_id
            )
        if status is FileProcessingStatus.UNKNOWN:
            log.warning("File %s has an unknown processing status; still waiting", file_id)
        remaining = deadline - ctx.clock()
        if remaining <= 0:
            raise TogetherFileNotReadyError(
                f"File {file_id} was still {status.value} after {timeout:g} s", file=file_id
            )
        yield Sleep(min(poll_interval, remaining))


# -- fine-tunes -------------------------------------------------------------------------------------


def create_fine_tune(ctx: Context, body: Mapping[str, Any]) -> Flow[FineTuneJob]:
    """``POST /fine-tunes``: never resent once the server may have received it (``Retry.SUBMIT``)."""
    return call(ctx, Spec("POST", "/fine-tunes", json=dict(body), retry=Retry.SUBMIT), one(FineTuneJob))


def get_fine_tune(ctx: Context, job_id: str) -> Flow[FineTuneJob]:
    """``GET /fine-tunes/{id}``."""
    return call(ctx, Spec("GET", f"/fine-tunes/{segment('job_id', job_id)}"), one(FineTuneJob))


def list_fine_tunes(ctx: Context) -> Flow[list[FineTuneJob]]:
    """``GET /fine-tunes``."""
    return call(ctx, Spec("GET", "/fine-tunes"), many(FineTuneJob))


def cancel_fine_tune(ctx: Context, job_id: str) -> Flow[FineTuneJob]:
    """``POST /fine-tunes/{id}/cancel``: idempotent on the server, so it is retried like a read."""
    return call(ctx, Spec("POST", f"/fine-tunes/{segment('job_id', job_id)}/cancel"), one(FineTuneJob))


def delete_fine_tune(ctx: Context, job_id: str) -> Flow[None]:
    """``DELETE /fine-tunes/{id}``."""
    return call(ctx, Spec("DELETE", f"/fine-tunes/{segment('job_id', job_id)}"), nothing)


def list_fine_tune_events(ctx: Context, job_id: str) -> Flow[list[FineTuneEvent]]:
    """``GET /fine-tunes/{id}/events``."""
    return call(ctx, Spec("GET", f"/fine-tunes/{segment('job_id', job_id)}/events"), many(FineTuneEvent))


def list_fine_tune_checkpoints(ctx: Context, job_id: str) -> Flow[list[Checkpoint]]:
    """``GET /fine-tunes/{id}/checkpoints``."""
    spec = Spec("GET", f"/fine-tunes/{segment('job_id', job_id)}/checkpoints")
    return call(ctx, spec, many(Checkpoint))


def get_fine_tune_metrics(ctx: Context, job_id: str) -> Flow[list[dict[str, float]]]:
    """``GET /fine-tunes/{id}/metrics``: ``{"metrics": [{"train/loss": 1.2, ...}, ...]}``."""
    spec = Spec("GET", f"/fine-tunes/{segment('job_id', job_id)}/metrics")
    return call(ctx, spec, _metrics)


def estimate_fine_tune_price(ctx: Context, body: Mapping[str, Any]) -> Flow[PriceEstimate]:
    """``POST /fine-tunes/estimate-price``: a read despite the verb, so it is retried."""
    return call(ctx, Spec("POST", "/fine-tunes/estimate-price", json=dict(body)), one(PriceEstimate))


def get_model_limits(ctx: Context, model: str) -> Flow[ModelLimits]:
    """``GET /fine-tunes/models/limits?model_name=``; 404 means the model cannot be fine-tuned."""
    if not isinstance(model, str) or not model.strip():
        raise TogetherConfigError([("model", "must be a non-empty string")], heading="Invalid argument")
    spec = Spec("GET", "/fine-tunes/models/limits", params={"model_name": model.strip()})
    return call(ctx, spec, one(ModelLimits))


def download_fine_tune(
    ctx: Context, job_id: str, dest: str | os.PathLike[str], checkpoint: str | None, step: int | None
) -> Flow[Path]:
    """
    ``GET /finetune/download`` (singular path) streamed to ``dest``, resuming with ``Range``.

    :param checkpoint: ``merged``, ``adapter`` or ``model_output_path``; the server's default if None.
    :param step: an intermediate checkpoint step; the final model if None.
    """
    params: dict[str, str | int] = {"ft_id": segment("job_id", job_id)}
    if checkpoint:
        params["checkpoint"] = checkpoint
    if step is not None:
        params["checkpoint_step"] = int(step)
    # Downloads may be served from elsewhere (a storage redirect): the one kind of call that follows 3xx.
    spec = Spec("GET", "/finetune/download", params=params, headers={"Accept": "*/*"}, follow_redirects=True)
    stem = f"{job_id}-checkpoint-{step}" if step else job_id

    def name(response: httpx.Response) -> str:
        tar = "x-tar" in response.headers.get("content-type", "")
        return _disposition(response) or f"{stem}{'.tar.gz' if tar else '.tar.zst'}"

    return download(ctx, spec, Path(dest), name)


def check_connection(ctx: Context) -> Flow[str]:
    """A cheap authenticated read (``GET /fine-tunes``) proving the key and base URL work."""
    count = len((yield from call(ctx, Spec("GET", "/fine-tunes"), many(FineTuneJob))))
    return f"Connected to Together AI at {ctx.settings.base_url} ({count} fine-tuning job(s) visible)"


# -- streamed downloads -----------------------------------------------------------------------------


def download(ctx: Context, spec: Spec, dest: Path, name_for: Callable[[httpx.Response], str]) -> Flow[Path]:
    """
    Stream ``spec``'s body into ``dest`` through a ``.part`` file, resuming with ``Range`` on stream errors.

    Each resume that made progress resets the retry budget, so a flaky multi-GB download finishes while a
    dead server still fails after ``max_retries``. A server that ignores ``Range`` (200 instead of 206)
    restarts the file instead of corrupting it. The final rename makes a partial file impossible to mistake
    for a finished one.
    """
    into_dir = yield Run(os.path.isdir, (dest,))
    part = (
        dest / f".{_SAFE_NAME.sub('_', spec.url)}.part" if into_dir else dest.with_name(dest.name + ".part")
    )
    yield Run(_fresh_part, (part,))
    attempt = have = 0
    while True:
        headers = {**(spec.headers or {}), "Range": f"bytes={have}-"} if have else spec.headers
        try:
            response = yield Send(replace(spec, sink=part, headers=headers, resume_from=have))
        except httpx.TooManyRedirects as exc:
            raise TogetherResponseError(
                f"{spec.describe()} redirected in a loop ({exc})",
                method=spec.method,
                path=spec.url,
                status_code=0,
            ) from exc
        except httpx.TransportError as exc:
            size = yield Run(_size, (part,))
            if size > have:
                attempt, have = 0, size
            delay = ctx.policy.after_error(spec, exc, attempt)
        else:
            if response.status_code in (200, 206):
                break
            delay = ctx.policy.after_response(spec, response, attempt, secret=ctx.settings.api_key)
        attempt += 1
        log.warning("Download %s interrupted at byte %d; resuming in %.2f s", spec.describe(), have, delay)
        yield Sleep(delay)
    final = dest / _SAFE_NAME.sub("_", os.path.basename(name_for(response))) if into_dir else dest
    yield Run(os.replace, (part, final))
    return final


def _disposition(response: httpx.Response) -> str | None:
    match = re.search(r'filename="?([^";]+)"?', response.headers.get("content-disposition", ""))
    return os.path.basename(match.group(1)) if match else None


def _fresh_part(part: Path) -> None:
    part.parent.mkdir(parents=True, exist_ok=True)
    # A stale part may belong to another checkpoint: resume only within one call, never across calls.
    part.unlink(missing_ok=True)


def _size(part: Path) -> int:
    try:
        return part.stat().st_size
    except FileNotFoundError:
        return 0


def _metrics(response: httpx.Response) -> list[dict[str, float]]:
    body = json.loads(response.content)
    rows = body.get("metrics") if isinstance(body, dict) else body
    return [dict(row) for row in rows or () if isinstance(row, dict)]
