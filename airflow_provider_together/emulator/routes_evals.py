"""
Evaluations API routes (``/v1/evaluation``: create, list, retrieve, status) behind the same gate as every API
route (key, counts, faults), and their admin routes under ``/_emulator/evaluations``.

.. seealso:: ../shared/reference/together-eval-deploy.md section 2
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from airflow_provider_together.emulator.app import FastJSON, GatedRoute, state_of
from airflow_provider_together.emulator.errors import APIError
from airflow_provider_together.emulator.kinds import Scenario

router = APIRouter(route_class=GatedRoute)
admin = APIRouter(prefix="/_emulator/evaluations")


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return await request.json()
    except ValueError:
        raise APIError(400, "The request body must be valid JSON", param="body") from None


@router.post("/v1/evaluation")
async def create_evaluation(request: Request) -> Response:
    """Check and register an evaluation; answers ``{"workflow_id", "status": "pending"}``."""
    state = state_of(request)
    body = await _json(request)
    judge = ((body or {}).get("parameters") or {}).get("judge") if isinstance(body, dict) else None
    judge_model = judge.get("model") if isinstance(judge, dict) else None
    # Scenario rules match an evaluation by its judge model (``model=``), like a fine-tune by its base model.
    scenario, params = state.faults.scenario_for(str(judge_model), None)
    record = state.evals.create(body, scenario, params)
    return FastJSON({"workflow_id": record.id, "status": "pending"})


@router.get("/v1/evaluation")
async def list_evaluations(request: Request) -> Response:
    """Newest first, a bare JSON list, filtered by ``status`` and cut at ``limit`` (default 10)."""
    state = state_of(request)
    raw_limit = request.query_params.get("limit") or "10"
    try:
        limit = int(raw_limit)
    except ValueError:
        raise APIError(400, "limit must be an integer", param="limit") from None
    wanted = request.query_params.get("status")
    jobs = [state.evals.to_json(record) for record in reversed(state.evals.evals.values())]
    if wanted:
        jobs = [job for job in jobs if job["status"] == wanted]
    return FastJSON(jobs[: max(0, limit)])


@router.get("/v1/evaluation/{eval_id}")
async def retrieve_evaluation(eval_id: str, request: Request) -> Response:
    """The whole ``EvaluationJob``."""
    state = state_of(request)
    return FastJSON(state.evals.to_json(state.evals.get(eval_id)))


@router.get("/v1/evaluation/{eval_id}/status")
async def evaluation_status(eval_id: str, request: Request) -> Response:
    """``{status, results}`` only."""
    state = state_of(request)
    job = state.evals.to_json(state.evals.get(eval_id))
    return FastJSON({"status": job["status"], "results": job["results"]})


def _summary(request: Request, eval_id: str) -> dict[str, Any]:
    state = state_of(request)
    record = state.evals.get(eval_id)
    return {
        "id": record.id,
        "type": record.type,
        "status": state.evals.status(record),
        "scenario": record.scenario.value,
        "input_file": record.parameters.get("input_data_file_path"),
        "rows": len(record.rows),
        "history": [{"status": u["status"], "at": u["timestamp"]} for u in state.evals.history(record)],
    }


@admin.get("")
async def admin_list(request: Request) -> Response:
    """Every evaluation with its status history."""
    return FastJSON({"data": [_summary(request, eval_id) for eval_id in state_of(request).evals.evals]})


@admin.post("/quality")
async def set_quality(request: Request) -> Response:
    """Add a rule of the emulated judge: ``{"model": "<fnmatch pattern>", "quality": 0.8}`` (0..1)."""
    body = await _json(request)
    pattern = body.get("model") if isinstance(body, dict) else None
    quality = body.get("quality") if isinstance(body, dict) else None
    if not isinstance(pattern, str) or not pattern:
        raise APIError(400, "model (a model or column name, fnmatch pattern) is required", param="model")
    if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not 0 <= quality <= 1:
        raise APIError(400, "quality must be a number in [0, 1]", param="quality")
    evals = state_of(request).evals
    evals.quality.append((pattern, float(quality)))
    return FastJSON({"data": [{"model": p, "quality": q} for p, q in evals.quality]})


@admin.delete("/quality")
async def clear_quality(request: Request) -> Response:
    """Every model back to quality 0.5."""
    state_of(request).evals.quality.clear()
    return FastJSON({"ok": True})


@admin.post("/{eval_id}/scenario")
async def set_scenario(eval_id: str, request: Request) -> Response:
    """Change how one evaluation ends: ``{"scenario": "error", "params": {"message": ...}}``."""
    state = state_of(request)
    body = await _json(request)
    record = state.evals.get(eval_id)
    try:
        record.scenario = Scenario(body.get("scenario"))
    except ValueError:
        raise APIError(400, f"unknown scenario {body.get('scenario')!r}", param="scenario") from None
    record.scenario_params = dict(body.get("params") or {})
    return FastJSON(_summary(request, eval_id))
