"""
The admin API under ``/_emulator/``: no key, not counted, never faulted. Tests use it to reset the emulator,
inject faults, choose job scenarios, change settings, and assert on jobs and request counts
("exactly one job was created"). Documented in ``docs/emulator.md``.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request, Response

from airflow_provider_together.emulator.app import FastJSON, state_of
from airflow_provider_together.emulator.errors import APIError
from airflow_provider_together.emulator.faults import FaultKind, FaultRule, ScenarioRule
from airflow_provider_together.emulator.timeline import Scenario

router = APIRouter(prefix="/_emulator")


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return await request.json()
    except ValueError:
        raise APIError(400, "The request body must be valid JSON", param="body") from None


def _fault(spec: Any) -> FaultRule:
    if not isinstance(spec, dict):
        raise APIError(400, "a fault is a JSON object", param="body")
    known = {
        "route",
        "kind",
        "status",
        "rate",
        "count",
        "latency_ms",
        "retry_after",
        "message",
        "body",
        "body_b64",
        "content_type",
        "size_mb",
        "bytes_per_second",
    }
    unknown = sorted(set(spec) - known)
    if unknown:
        raise APIError(400, f"unknown fault field(s): {', '.join(unknown)}", param=unknown[0])
    try:
        kind = FaultKind(spec.get("kind", "status"))
        defaults = {"status": 200} if kind in (FaultKind.BODY, FaultKind.GZIP_BOMB) else {}
        rule = FaultRule(**{**defaults, **spec, "kind": kind})
    except (TypeError, ValueError) as exc:
        raise APIError(400, f"invalid fault: {exc}", param="kind") from None
    if not 0.0 <= rule.rate <= 1.0:
        raise APIError(400, "rate must be in [0, 1]", param="rate")
    return rule


def _scenario(name: Any) -> Scenario:
    try:
        return Scenario(name)
    except ValueError:
        choices = ", ".join(s.value for s in Scenario)
        raise APIError(
            400, f"unknown scenario {name!r}; expected one of {choices}", param="scenario"
        ) from None


@router.get("/health")
async def health(request: Request) -> Response:
    """Liveness, with the pid (handy when a test restarts the process)."""
    return FastJSON({"ok": True, "pid": os.getpid(), "speed": state_of(request).clock.speed})


@router.post("/reset")
async def reset(request: Request) -> Response:
    """Forget files, jobs, faults, scenarios and counts; restore start-up settings."""
    state_of(request).reset()
    return FastJSON({"ok": True})


@router.get("/settings")
async def get_settings(request: Request) -> Response:
    """Current settings (never the API key)."""
    return FastJSON(state_of(request).settings.public())


@router.patch("/settings")
async def patch_settings(request: Request) -> Response:
    """Change settings, e.g. ``{"speed": 50, "credit_limit_usd": 10}``."""
    state = state_of(request)
    body = await _body(request)
    if not isinstance(body, dict):
        raise APIError(400, "settings must be a JSON object", param="body")
    try:
        state.update_settings(body)
    except ValueError as exc:
        raise APIError(400, str(exc), param=next(iter(body), None)) from None
    return FastJSON(state.settings.public())


@router.get("/faults")
async def list_faults(request: Request) -> Response:
    """Active fault rules with their hit counts."""
    return FastJSON({"data": [rule.to_json() for rule in state_of(request).faults.rules]})


@router.post("/faults")
async def add_faults(request: Request) -> Response:
    """Add one rule (an object) or several (a list)."""
    state = state_of(request)
    body = await _body(request)
    rules = [_fault(item) for item in (body if isinstance(body, list) else [body])]
    state.faults.rules.extend(rules)
    return FastJSON({"data": [rule.to_json() for rule in rules]})


@router.delete("/faults")
async def clear_faults(request: Request) -> Response:
    """Remove every fault rule."""
    state_of(request).faults.rules.clear()
    return FastJSON({"ok": True})


@router.delete("/faults/{fault_id}")
async def delete_fault(fault_id: str, request: Request) -> Response:
    """Remove one fault rule."""
    faults = state_of(request).faults
    faults.rules = [rule for rule in faults.rules if rule.id != fault_id]
    return FastJSON({"ok": True})


@router.get("/scenarios")
async def list_scenarios(request: Request) -> Response:
    """The default scenario and the per-job rules."""
    faults = state_of(request).faults
    return FastJSON(
        {
            "default": faults.default_scenario.value,
            "default_params": faults.default_params,
            "data": [rule.to_json() for rule in faults.scenarios],
            "available": [s.value for s in Scenario],
        }
    )


@router.post("/scenarios")
async def add_scenario(request: Request) -> Response:
    """
    Set the scenario of future jobs.

    ``{"scenario": "error", "model": ..., "suffix": ..., "count": 1, "params": {"message": ...}}`` adds a rule;
    ``{"default": "stall"}`` changes the scenario of every job no rule matches.
    """
    faults = state_of(request).faults
    body = await _body(request)
    if not isinstance(body, dict):
        raise APIError(400, "a scenario rule is a JSON object", param="body")
    if "default" in body:
        faults.default_scenario = _scenario(body["default"])
        faults.default_params = dict(body.get("params") or {})
        return FastJSON({"default": faults.default_scenario.value})
    rule = ScenarioRule(
        scenario=_scenario(body.get("scenario")),
        params=dict(body.get("params") or {}),
        model=body.get("model"),
        suffix=body.get("suffix"),
        count=body.get("count"),
    )
    faults.scenarios.append(rule)
    return FastJSON(rule.to_json())


@router.delete("/scenarios")
async def clear_scenarios(request: Request) -> Response:
    """Remove scenario rules and restore the ``complete`` default."""
    faults = state_of(request).faults
    faults.scenarios.clear()
    faults.default_scenario = Scenario.COMPLETE
    faults.default_params = {}
    return FastJSON({"ok": True})


@router.post("/jobs/{job_id}/scenario")
async def set_job_scenario(job_id: str, request: Request) -> Response:
    """Change how one existing job ends, from now on: ``{"scenario": "error", "params": {...}}``."""
    state = state_of(request)
    body = await _body(request)
    record = state.jobs.set_scenario(job_id, _scenario(body.get("scenario")), dict(body.get("params") or {}))
    state.save_job(record)
    return FastJSON(_job_summary(request, job_id))


def _job_summary(request: Request, job_id: str) -> dict[str, Any]:
    state = state_of(request)
    record = state.jobs.get(job_id, include_deleted=True)
    return {
        "id": job_id,
        "status": state.jobs.status(record),
        "model": record.spec.model,
        "suffix": record.echo.get("suffix"),
        "training_file": record.echo.get("training_file"),
        "scenario": record.spec.scenario.value,
        "cancel_requested": record.spec.cancel_v is not None,
        "deleted": record.deleted,
        "history": state.jobs.history(record),
    }


@router.get("/jobs")
async def list_jobs(request: Request) -> Response:
    """Every job ever created (deleted ones flagged), with its status history."""
    state = state_of(request)
    return FastJSON({"data": [_job_summary(request, job_id) for job_id in state.jobs.jobs]})


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, request: Request) -> Response:
    """One job with its status history."""
    return FastJSON(_job_summary(request, job_id))


@router.get("/requests")
async def request_counts(request: Request) -> Response:
    """Requests per route template (``"POST /v1/fine-tunes"``), faulted ones included; admin calls excluded."""
    counts = state_of(request).counts
    return FastJSON({"routes": dict(counts), "total": sum(counts.values())})


@router.delete("/requests")
async def reset_counts(request: Request) -> Response:
    """Zero the request counters."""
    state_of(request).counts.clear()
    return FastJSON({"ok": True})
