"""
Fine-tuning API routes: create / list / retrieve / cancel / delete, events, checkpoints, metrics, download,
price estimate and model limits.

.. seealso:: ../shared/reference/together-api.md section 3
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from airflow_provider_together.emulator.app import FastJSON, GatedRoute, state_of
from airflow_provider_together.emulator.archive import build_archive, parse_range
from airflow_provider_together.emulator.errors import APIError
from airflow_provider_together.models.status import TERMINAL_STATUSES, JobStatus

router = APIRouter(route_class=GatedRoute)
_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise APIError(400, "The request body must be valid JSON", param="body") from None


def _int_query(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise APIError(400, f"{name} must be an integer", param=name) from None


@router.get("/v1/fine-tunes/models/limits")
async def model_limits(request: Request) -> Response:
    """Limits of one model; an unsupported model is a 404 with a bare ``{"message"}`` body, as documented."""
    state = state_of(request)
    name = request.query_params.get("model_name", "")
    entry = state.catalog.get(name)
    if entry is None and name:
        # The v3 SDK asks for the limits of `from_checkpoint.split(":")[0]`: a job id or an output model name.
        parent = state.jobs.parent(name.split(":", 1)[0])
        entry = state.catalog.get(parent["model"]) if parent else None
    if entry is None:
        raise APIError(404, f"Model {name!r} is not available for fine-tuning", bare=True)
    return FastJSON(entry.limits)


@router.get("/v1/fine-tunes/models/supported")
async def supported_models(request: Request) -> Response:
    """Every fine-tunable model name."""
    return FastJSON({"models": state_of(request).catalog.names()})


@router.post("/v1/fine-tunes/estimate-price")
async def estimate_price(request: Request) -> Response:
    """Estimate a job's price from the files' token estimates, against the credit limit."""
    state = state_of(request)
    return FastJSON(state.estimate(await _json_body(request)))


@router.post("/v1/fine-tunes")
async def create_job(request: Request) -> Response:
    """Validate and create a job; the answer is the truncated job object."""
    state = state_of(request)
    record = state.create_job(await _json_body(request))
    return FastJSON(state.jobs.to_json(record, full=False))


@router.get("/v1/fine-tunes")
async def list_jobs(request: Request) -> Response:
    """List jobs (truncated objects), oldest first, without pagination like the service."""
    state = state_of(request)
    return FastJSON(
        {"object": "list", "data": [state.jobs.to_json(job, full=False) for job in state.jobs.visible()]}
    )


@router.get("/v1/fine-tunes/{job_id}")
async def retrieve_job(job_id: str, request: Request) -> Response:
    """Retrieve the full job object (with events)."""
    state = state_of(request)
    return FastJSON(state.jobs.to_json(state.jobs.get(job_id), full=True))


@router.post("/v1/fine-tunes/{job_id}/cancel")
async def cancel_job(job_id: str, request: Request) -> Response:
    """Request cancellation (idempotent while the cancellation is in progress)."""
    state = state_of(request)
    record = state.jobs.cancel(job_id)
    state.save_job(record)
    return FastJSON(state.jobs.to_json(record, full=False))


@router.delete("/v1/fine-tunes/{job_id}")
async def delete_job(job_id: str, request: Request) -> Response:
    """Delete a finished job; a live one must be cancelled first, so deleting never hides a running bill."""
    state = state_of(request)
    record = state.jobs.get(job_id)
    status = state.jobs.status(record)
    if status not in _TERMINAL:
        raise APIError(
            400, f"Job {job_id} is {status}; cancel it before deleting it", param="id", code="invalid_state"
        )
    state.save_job(state.jobs.delete(job_id))
    return FastJSON({"message": f"Fine-tune job {job_id} deleted"})


@router.get("/v1/fine-tunes/{job_id}/events")
async def list_events(job_id: str, request: Request) -> Response:
    """Events so far, oldest first."""
    state = state_of(request)
    return FastJSON({"object": "list", "data": state.jobs.events(state.jobs.get(job_id))})


@router.get("/v1/fine-tunes/{job_id}/checkpoints")
async def list_checkpoints(job_id: str, request: Request) -> Response:
    """Saved checkpoints, newest first."""
    state = state_of(request)
    return FastJSON({"object": "list", "data": state.jobs.checkpoints(state.jobs.get(job_id))})


@router.get("/v1/fine-tunes/{job_id}/metrics")
async def list_metrics(job_id: str, request: Request) -> Response:
    """Training metrics so far (``train/loss`` falls), filtered like the v3 SDK's query parameters."""
    state = state_of(request)
    record = state.jobs.get(job_id)
    points = state.jobs.metrics(
        record,
        _int_query(request, "global_step_from"),
        _int_query(request, "global_step_to"),
        _int_query(request, "resolution"),
    )
    return FastJSON({"metrics": points})


@router.get("/v1/finetune/download")
async def download(request: Request) -> Response:
    """Download a checkpoint archive (``.tar.gz``), honouring ``Range``."""
    state = state_of(request)
    job_id = request.query_params.get("ft_id", "")
    if not job_id:
        raise APIError(400, "ft_id is required", param="ft_id")
    step = _int_query(request, "checkpoint_step")
    if ":" in job_id and step is None:
        job_id, _, raw_step = job_id.partition(":")
        step = int(raw_step) if raw_step.isdigit() else None
    record = state.jobs.get(job_id)
    spec = record.spec
    variant = request.query_params.get("checkpoint") or ("merged" if spec.lora else "model_output_path")
    if variant not in ("merged", "adapter", "model_output_path"):
        raise APIError(400, "checkpoint must be merged, adapter or model_output_path", param="checkpoint")
    if not spec.lora and variant != "model_output_path":
        raise APIError(
            400, "Full-training jobs are downloaded with checkpoint=model_output_path", param="checkpoint"
        )
    if step:
        if not any(cp["step"] == step for cp in state.jobs.checkpoints(record)):
            raise APIError(
                404,
                f"No checkpoint at step {step} for job {job_id}",
                param="checkpoint_step",
                code="not_found",
            )
        variant = "adapter" if spec.lora else "model"
    elif state.jobs.status(record) != JobStatus.COMPLETED.value:
        raise APIError(
            400,
            f"Job {job_id} is not downloadable: it is not in a completed state",
            param="ft_id",
            code="not_ready",
        )
    data = build_archive(job_id, spec.output_name, spec.model, variant, step or spec.total_steps)
    name = spec.output_name.split("/")[-1] + (f"-checkpoint-{step}" if step else "") + ".tar.gz"
    headers = {"Accept-Ranges": "bytes", "Content-Disposition": f'attachment; filename="{name}"'}
    wanted = parse_range(request.headers.get("range"), len(data))
    if wanted is None:
        return Response(data, media_type="application/x-tar", headers=headers)
    start, end = wanted
    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    return Response(data[start : end + 1], status_code=206, media_type="application/x-tar", headers=headers)
