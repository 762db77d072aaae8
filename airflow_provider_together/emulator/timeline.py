"""
A job's lifecycle as a pure function of its inputs and the (virtual) time.

Nothing here ticks: :func:`plan` lays the whole life of a job out once (stages, events, checkpoints), and
:func:`progress_at` reads it at any instant. That keeps ``GET /fine-tunes/{id}`` cheap under a
thousand-trigger benchmark, and a job restored from SQLite after a restart is simply read at a later time.
Durations are virtual seconds at ``--speed 1`` (see :mod:`.clock`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from airflow_provider_together.emulator.kinds import (
    DEFAULT_MESSAGES,
    EventType,
    JobSpec,
    Level,
    Plan,
    Scenario,
)
from airflow_provider_together.models.status import JobStatus

__all__ = ["EventType", "JobSpec", "Level", "Plan", "Scenario", "plan", "progress_at"]

PENDING_S = 2.0
SETUP_S = 4.0
COMPRESS_S = 4.0
UPLOAD_S = 4.0
CANCEL_S = 2.0
MIN_TRAIN_S, MAX_TRAIN_S, STEP_S = 10.0, 60.0, 0.1


def _event(
    kind: EventType, message: str, spec: JobSpec, *, level: Level = Level.INFO, **extra: Any
) -> dict[str, Any]:
    # Every field the spec marks required is present, with the neutral values the service sends.
    event: dict[str, Any] = {
        "object": "fine-tune-event",
        "level": level.value,
        "message": message,
        "type": kind.value,
        "param_count": 0,
        "token_count": 0,
        "total_steps": 0,
        "wandb_url": "",
        "step": 0,
        "checkpoint_path": "",
        "model_path": "",
        "training_offset": 0,
        "hash": "",
    }
    event.update(extra)
    return event


def _spread(count: int, total: int) -> list[int]:
    """Steps at which ``count`` evenly spaced saves or evals happen; the last one lands on ``total``."""
    return [max(1, math.ceil(total * k / count)) for k in range(1, count + 1)] if count > 0 else []


def _training_events(
    spec: JobSpec, start: float, length: float
) -> tuple[list[tuple[float, dict[str, Any]]], list[tuple[float, dict[str, Any]]]]:
    total = spec.total_steps

    def at(step: int) -> float:
        return start + length * step / total

    events: list[tuple[float, dict[str, Any]]] = []
    checkpoints: list[tuple[float, dict[str, Any]]] = []
    kind = "adapter" if spec.lora else "model"
    # The last save coincides with the final model, which is reported by the upload events instead.
    for step in sorted(set(_spread(spec.n_checkpoints, total)) - {total}):
        path = f"s3://together-emulator/finetune/{spec.job_id}/checkpoint-{step}"
        events.append(
            (
                at(step),
                _event(
                    EventType.CHECKPOINT_SAVE,
                    f"New checkpoint saved at step {step}",
                    spec,
                    step=step,
                    checkpoint_path=path,
                ),
            )
        )
        checkpoints.append(
            (at(step), {"step": step, "path": path, "checkpoint_type": "Intermediate", "checkpoint": kind})
        )
    for epoch in range(1, spec.n_epochs + 1):
        step = epoch * spec.steps_per_epoch
        events.append(
            (at(step), _event(EventType.EPOCH_COMPLETE, f"Epoch completed, at step {step}", spec, step=step))
        )
    for index, step in enumerate(_spread(spec.n_evals, total)):
        loss = _loss(step, total) + 0.05
        message = f"Evaluation {index + 1} complete at step {step}: eval/loss {loss:.4f}"
        events.append((at(step), _event(EventType.EVAL_COMPLETE, message, spec, step=step)))
    events.sort(key=lambda item: item[0])
    return events, checkpoints


def _loss(step: int, total: int) -> float:
    # A plausible falling curve with a little deterministic wiggle, so metrics look like training.
    return 0.35 + 2.2 * math.exp(-3.0 * step / max(total, 1)) + 0.02 * math.sin(step * 1.7)


def plan(spec: JobSpec) -> Plan:
    """Lay out the whole life of a job for its scenario (and cancellation, if any)."""
    v0 = spec.created_v
    queued_at = v0 + PENDING_S
    running_at = queued_at + 2.0 + min(spec.queue_ahead, 10)
    train_start = running_at + SETUP_S
    train_len = min(MAX_TRAIN_S, max(MIN_TRAIN_S, spec.total_steps * STEP_S))
    train_end = train_start + train_len
    compress_at = train_end + 0.1
    upload_at = compress_at + COMPRESS_S
    done_at = upload_at + UPLOAD_S
    stages: list[tuple[str, float]] = [
        (JobStatus.PENDING.value, v0),
        (JobStatus.QUEUED.value, queued_at),
        (JobStatus.RUNNING.value, running_at),
        (JobStatus.COMPRESSING.value, compress_at),
        (JobStatus.UPLOADING.value, upload_at),
        (JobStatus.COMPLETED.value, done_at),
    ]
    totals: dict[str, Any] = {
        "param_count": spec.param_count,
        "token_count": spec.token_count,
        "total_steps": spec.total_steps,
    }
    setup = SETUP_S / 6
    events: list[tuple[float, dict[str, Any]]] = [
        (v0, _event(EventType.JOB_PENDING, "Fine tune request created", spec)),
        (running_at, _event(EventType.JOB_START, "Job started", spec)),
        (running_at + setup, _event(EventType.MODEL_DOWNLOADING, f"Downloading model {spec.model}", spec)),
        (running_at + 2 * setup, _event(EventType.MODEL_DOWNLOAD_COMPLETE, "Model download complete", spec)),
        (
            running_at + 3 * setup,
            _event(EventType.TRAINING_DATA_DOWNLOADING, "Downloading training data", spec),
        ),
        (
            running_at + 4 * setup,
            _event(EventType.TRAINING_DATA_DOWNLOAD_COMPLETE, "Training data download complete", spec),
        ),
    ]
    if spec.has_validation:
        events.append(
            (
                running_at + 4.5 * setup,
                _event(EventType.VALIDATION_DATA_DOWNLOADING, "Downloading validation data", spec),
            )
        )
        events.append(
            (
                running_at + 5 * setup,
                _event(
                    EventType.VALIDATION_DATA_DOWNLOAD_COMPLETE, "Validation data download complete", spec
                ),
            )
        )
    if spec.wandb_url:
        events.append(
            (
                running_at + 5.5 * setup,
                _event(
                    EventType.WANDB_INIT, "Weights & Biases run initialized", spec, wandb_url=spec.wandb_url
                ),
            )
        )
    events.append((train_start, _event(EventType.TRAINING_START, "Training started", spec, **totals)))
    training, checkpoints = _training_events(spec, train_start, train_len)
    events.extend(training)
    model_path = f"s3://together-emulator/finetune/{spec.job_id}/{spec.output_name}"
    events += [
        (train_end, _event(EventType.TRAINING_COMPLETE, "Training completed", spec, step=spec.total_steps)),
        (compress_at, _event(EventType.MODEL_COMPRESSING, "Compressing output model", spec)),
        (upload_at - 0.05, _event(EventType.MODEL_COMPRESSION_COMPLETE, "Model compression complete", spec)),
        (upload_at, _event(EventType.MODEL_UPLOADING, "Uploading output model", spec)),
        (
            done_at - 0.05,
            _event(EventType.MODEL_UPLOAD_COMPLETE, "Model upload complete", spec, model_path=model_path),
        ),
        (
            done_at,
            _event(
                EventType.JOB_COMPLETE,
                f"Job finished. Model name: {spec.output_name}",
                spec,
                model_path=model_path,
                **totals,
            ),
        ),
    ]
    finals = [
        {"step": spec.total_steps, "path": model_path, "checkpoint_type": "Final", "checkpoint": "model"}
    ]
    if spec.lora:
        finals = [
            {
                "step": spec.total_steps,
                "path": model_path,
                "checkpoint_type": "Final Merged",
                "checkpoint": "model",
            },
            {
                "step": spec.total_steps,
                "path": f"{model_path}-adapter",
                "checkpoint_type": "Final Adapter",
                "checkpoint": "adapter",
            },
        ]
    checkpoints += [(done_at, final) for final in finals]
    result = Plan(stages, events, checkpoints, queued_at, train_start, train_end)
    _apply_scenario(result, spec, running_at)
    if spec.cancel_v is not None:
        _cut(result, spec.cancel_v)
        result.stages += [
            (JobStatus.CANCEL_REQUESTED.value, spec.cancel_v),
            (JobStatus.CANCELLED.value, spec.cancel_v + CANCEL_S),
        ]
        result.events += [
            (spec.cancel_v, _event(EventType.CANCEL_REQUESTED, "Cancel requested by user", spec)),
            (
                spec.cancel_v + CANCEL_S,
                _event(
                    EventType.JOB_STOPPED,
                    "Job stopped: cancelled by user. You are charged only for completed steps.",
                    spec,
                ),
            ),
        ]
    return result


def _cut(result: Plan, at: float) -> None:
    """Drop everything the job would have done after ``at``; counters stop there too."""
    result.stages = [stage for stage in result.stages if stage[1] < at]
    result.events = [event for event in result.events if event[0] <= at]
    result.checkpoints = [cp for cp in result.checkpoints if cp[0] <= at]
    result.freeze_v = at if result.freeze_v is None else min(result.freeze_v, at)


def _apply_scenario(result: Plan, spec: JobSpec, running_at: float) -> None:
    params = spec.scenario_params
    train_len = result.train_end - result.train_start
    floor = spec.scenario_not_before + 0.2
    if spec.scenario in (Scenario.ERROR, Scenario.USER_ERROR):
        if spec.scenario is Scenario.ERROR:
            at = max(result.train_start + train_len * float(params.get("at", 0.5)), floor)
            status = JobStatus.ERROR
        else:
            at = max(running_at + SETUP_S * 0.7, floor)
            status = JobStatus.USER_ERROR
        _cut(result, at)
        message = str(params.get("message") or DEFAULT_MESSAGES[spec.scenario])
        result.stages.append((status.value, at))
        result.events.append((at, _event(EventType.JOB_ERROR, message, spec, level=Level.ERROR)))
        result.events.append((at, _event(EventType.REFUND, "Refund issued for the failed job", spec)))
    elif spec.scenario is Scenario.STALL:
        if params.get("stage") == JobStatus.QUEUED.value:
            at = max(result.queued_at + 0.1, floor)  # stuck in the queue: no capacity for this model
        else:
            at = max(result.train_start + train_len * float(params.get("at", 0.4)), floor)
        _cut(result, at)
        # The job keeps reporting its last stage forever; only a cancel or the caller's timeout ends it.
        result.stages = [stage for stage in result.stages if stage[1] <= at]
    elif spec.scenario is Scenario.UNKNOWN_STATUS:
        at = max(result.train_start + train_len * 0.3, floor)
        raw = str(params.get("status") or "rebalancing")
        index = (
            next(i for i, stage in enumerate(result.stages) if stage[1] > at)
            if at < result.stages[-1][1]
            else len(result.stages)
        )
        result.stages.insert(index, (raw, at))


@dataclass(frozen=True)
class Progress:
    """What a job looks like at one instant."""

    status: str
    stage_start: float
    next_change: float | None
    steps: int
    epochs: int
    evals: int
    queue_depth: int
    started: bool


def progress_at(spec: JobSpec, result: Plan, v: float) -> Progress:
    """Read the plan at virtual instant ``v`` (cheap: a few comparisons, no allocation of event lists)."""
    status, stage_start = result.stages[0]
    next_change: float | None = None
    for raw, start in result.stages:
        if start <= v:
            status, stage_start = raw, start
        else:
            next_change = start
            break
    effective = v if result.freeze_v is None else min(v, result.freeze_v)
    total = spec.total_steps
    if effective <= result.train_start:
        steps = 0
    elif effective >= result.train_end:
        steps = total
    else:
        steps = int(total * (effective - result.train_start) / (result.train_end - result.train_start))
    evals = sum(1 for step in _spread(spec.n_evals, total) if step <= steps)
    queue_depth = 0
    if status == JobStatus.QUEUED.value:
        # Jobs ahead in the queue: one per remaining virtual second, never 0 while still queued (and a
        # constant few when the queue is stalled).
        queue_depth = 3 if next_change is None else max(1, math.ceil(next_change - v))
    return Progress(
        status=status,
        stage_start=stage_start,
        next_change=next_change,
        steps=steps,
        epochs=min(spec.n_epochs, steps // max(spec.steps_per_epoch, 1)),
        evals=evals,
        queue_depth=queue_depth,
        started=effective >= result.train_start,
    )


def loss_curve(spec: JobSpec, steps: int) -> list[tuple[int, float]]:
    """Training loss per step up to ``steps`` (for ``/metrics``)."""
    return [(step, _loss(step, spec.total_steps)) for step in range(1, steps + 1)]


def eval_losses(spec: JobSpec, steps: int) -> dict[int, float]:
    """Evaluation loss at each evaluation reached by ``steps`` (the values the ``EVAL_COMPLETE`` events give)."""
    return {
        step: _loss(step, spec.total_steps) + 0.05
        for step in _spread(spec.n_evals, spec.total_steps)
        if step <= steps
    }
