"""
Fine-tuning jobs: creation from a resolved request, and the API's views of a job at the current virtual time.

A job's record holds only its inputs (:class:`~.timeline.JobSpec`, the echoed request and its price); status,
counters, events and checkpoints are read from its cached :class:`~.timeline.Plan`, so a poll costs a few
comparisons and one dict, and no disk I/O.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_together.emulator import timeline
from airflow_provider_together.emulator.clock import iso
from airflow_provider_together.emulator.errors import APIError, not_found
from airflow_provider_together.models.status import TERMINAL_STATUSES, JobStatus

if TYPE_CHECKING:
    from airflow_provider_together.emulator.clock import Clock
    from airflow_provider_together.emulator.validation import Resolved

__all__ = ["ACCOUNT", "JobRecord", "JobStore", "price_usd"]

ACCOUNT = "emulator_7e3a"
_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)
_FAILED = frozenset({JobStatus.ERROR.value, JobStatus.USER_ERROR.value})


def price_usd(resolved: Resolved, n_epochs: int, n_evals: int, min_charge: float) -> tuple[float, int, int]:
    """Return ``(dollars, train_tokens_billed, eval_tokens_billed)`` by Together's published formula."""
    train = n_epochs * resolved.train_tokens
    evals = n_evals * resolved.eval_tokens
    rate = resolved.entry.price_per_million(dpo=resolved.dpo, full=not resolved.lora)
    return max(min_charge, (train + evals) / 1e6 * rate), train, evals


@dataclass
class JobRecord:
    """A job's persisted inputs; everything else is derived from them and the clock."""

    spec: timeline.JobSpec
    echo: dict[str, Any]
    created_wall: float
    price_nano: int
    numlines: int
    file_size: int
    deleted: bool = False
    plan_cache: timeline.Plan | None = field(default=None, repr=False, compare=False)
    events_cache: tuple[int, list[tuple[float, dict[str, Any]]]] | None = field(
        default=None, repr=False, compare=False
    )

    def to_row(self) -> dict[str, Any]:
        """Serialise for persistence (the plan is rebuilt on load)."""
        spec = dataclasses.asdict(self.spec)
        spec["scenario"] = self.spec.scenario.value
        return {
            "spec": spec,
            "echo": self.echo,
            "created_wall": self.created_wall,
            "price_nano": self.price_nano,
            "numlines": self.numlines,
            "file_size": self.file_size,
            "deleted": self.deleted,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JobRecord:
        """Rebuild from :meth:`to_row` output."""
        spec = dict(row["spec"])
        spec["scenario"] = timeline.Scenario(spec["scenario"])
        return cls(
            timeline.JobSpec(**spec),
            row["echo"],
            row["created_wall"],
            row["price_nano"],
            row["numlines"],
            row["file_size"],
            row.get("deleted", False),
        )


class JobStore:
    """
    Jobs by id, in creation order.

    :param clock: the emulator clock.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.jobs: dict[str, JobRecord] = {}

    def get(self, job_id: str, *, include_deleted: bool = False) -> JobRecord:
        """Return a job or raise the API's 404 (deleted jobs are only visible to the admin API)."""
        record = self.jobs.get(job_id)
        if record is None or (record.deleted and not include_deleted):
            raise not_found("Fine-tune job", job_id, param="id")
        return record

    def visible(self) -> list[JobRecord]:
        """Jobs the API lists (not deleted), in creation order."""
        return [record for record in self.jobs.values() if not record.deleted]

    def plan(self, record: JobRecord) -> timeline.Plan:
        """The job's plan, built once per spec (a cancel or a scenario change clears it)."""
        if record.plan_cache is None:
            record.plan_cache = timeline.plan(record.spec)
        return record.plan_cache

    def create(
        self, resolved: Resolved, *, scenario: timeline.Scenario, params: dict[str, Any], min_charge: float
    ) -> JobRecord:
        """Register a job for an already-validated request."""
        now_v = self.clock.now()
        job_id = f"ft-{uuid.uuid4()}"
        echo = resolved.echo
        base = echo["model"].split("/")[-1]
        suffix = f"-{echo['suffix']}" if echo.get("suffix") else ""
        output = f"{ACCOUNT}/{base}{suffix}-{secrets.token_hex(4)}"
        numlines = int((resolved.train_file.check or {}).get("nlines") or 1)
        dollars, train_tokens, eval_tokens = price_usd(
            resolved, echo["n_epochs"], echo["n_evals"], min_charge
        )
        wandb_url = None
        if resolved.wandb:
            host = echo.get("wandb_base_url") or "https://wandb.ai"
            wandb_url = f"{host.rstrip('/')}/{echo.get('wandb_entity') or 'together'}/{echo['wandb_project_name']}/runs/{job_id}"
        spec = timeline.JobSpec(
            job_id=job_id,
            model=echo["model"],
            output_name=output,
            created_v=now_v,
            n_epochs=echo["n_epochs"],
            n_checkpoints=echo["n_checkpoints"],
            n_evals=echo["n_evals"],
            steps_per_epoch=max(1, math.ceil(numlines / resolved.batch_size)),
            queue_ahead=self._active_jobs(now_v, limit=10),
            token_count=train_tokens + eval_tokens,
            param_count=int(resolved.entry.params_b * 1e9),
            lora=resolved.lora,
            has_validation=resolved.validation_file is not None,
            wandb_url=wandb_url,
            scenario=scenario,
            scenario_params=params,
            scenario_not_before=now_v,
        )
        record = JobRecord(
            spec, echo, self.clock.wall_of(now_v), round(dollars * 1e9), numlines, resolved.train_file.bytes
        )
        self.jobs[job_id] = record
        return record

    def _active_jobs(self, now_v: float, limit: int) -> int:
        """Jobs still in flight, counted up to ``limit`` (the queue model saturates there)."""
        count = 0
        for job in self.visible():
            if not self._terminal(job, now_v):
                count += 1
                if count >= limit:
                    break
        return count

    def _terminal(self, record: JobRecord, now_v: float) -> bool:
        return timeline.progress_at(record.spec, self.plan(record), now_v).status in _TERMINAL

    def status(self, record: JobRecord) -> str:
        """The raw status string now (may be an injected unknown value)."""
        return timeline.progress_at(record.spec, self.plan(record), self.clock.now()).status

    def cancel(self, job_id: str) -> JobRecord:
        """Request cancellation: ``cancel_requested`` now, ``cancelled`` shortly after."""
        record = self.get(job_id)
        now_v = self.clock.now()
        status = timeline.progress_at(record.spec, self.plan(record), now_v).status
        if status in _TERMINAL:
            raise APIError(
                400,
                f"Job {job_id} is already {status} and cannot be cancelled",
                param="id",
                code="invalid_state",
            )
        if record.spec.cancel_v is not None:
            return record  # a repeated cancel while the first one is in progress is not an error
        record.spec = dataclasses.replace(record.spec, cancel_v=now_v)
        record.plan_cache = record.events_cache = None
        return record

    def set_scenario(self, job_id: str, scenario: timeline.Scenario, params: dict[str, Any]) -> JobRecord:
        """Change how a running job ends, from now on (the past it already showed is kept)."""
        record = self.get(job_id)
        record.spec = dataclasses.replace(
            record.spec, scenario=scenario, scenario_params=params, scenario_not_before=self.clock.now()
        )
        record.plan_cache = record.events_cache = None
        return record

    def delete(self, job_id: str) -> JobRecord:
        """
        Delete a job from the API's point of view.

        The record stays, flagged, for the admin API: a test asserting "exactly one job was created" must
        still see a job that the code under test created and then deleted.
        """
        record = self.get(job_id)
        record.deleted = True
        return record

    def parent(self, name: str) -> dict[str, Any] | None:
        """
        The completed job ``name`` refers to (a job id or an output model name), for ``from_checkpoint``.

        :return: ``{"model", "lora"}`` of that job, or ``None`` if there is no such completed job.
        """
        now_v = self.clock.now()
        for record in self.visible():
            if name in (record.spec.job_id, record.spec.output_name):
                status = timeline.progress_at(record.spec, self.plan(record), now_v).status
                if status == JobStatus.COMPLETED.value:
                    return {"model": record.spec.model, "lora": record.spec.lora}
        return None

    def to_json(self, record: JobRecord, *, full: bool) -> dict[str, Any]:
        """Render the job object (``full`` adds the events, as ``GET /fine-tunes/{id}`` does)."""
        spec = record.spec
        result = self.plan(record)
        now_v = self.clock.now()
        now = timeline.progress_at(spec, result, now_v)
        speed = self.clock.speed
        terminal = now.status in _TERMINAL
        price = record.price_nano if now.started else 0
        if now.status in _FAILED:
            price = 0
        elif now.status == JobStatus.CANCELLED.value:
            price = record.price_nano * now.steps // max(spec.total_steps, 1)
        estimate = now.next_change is not None and result.freeze_v is None
        body: dict[str, Any] = {
            **record.echo,
            "id": spec.job_id,
            "job_id": spec.job_id,
            "object": "finetune",
            "status": now.status,
            "created_at": iso(record.created_wall),
            "updated_at": iso(self.clock.wall_of(now.stage_start)),
            "started_at": iso(self.clock.wall_of(now.stage_start)),
            "user_id": ACCOUNT,
            "owner_address": f"{ACCOUNT}@emulator.local",
            "model_output_name": spec.output_name,
            "token_count": spec.token_count if now.started else 0,
            "param_count": spec.param_count,
            "total_price": price,
            "total_steps": spec.total_steps,
            "steps_completed": now.steps,
            "epochs_completed": now.epochs,
            "evals_completed": now.evals,
            "eval_steps": 0 if spec.n_evals == 0 else max(1, spec.total_steps // spec.n_evals),
            "queue_depth": now.queue_depth,
            "trainingfile_numlines": record.numlines,
            "trainingfile_size": record.file_size,
            "progress": {
                "estimate_available": bool(estimate and not terminal),
                "seconds_remaining": 0
                if not estimate or now.next_change is None
                else max(0, math.ceil((now.next_change - now_v) / speed)),
            },
            "events": self.events(record, now_v) if full else [],
        }
        if now.status == JobStatus.COMPLETED.value:
            body["model_output_path"] = f"s3://together-emulator/finetune/{spec.job_id}/{spec.output_name}"
            if spec.lora:
                body["adapter_output_name"] = f"{spec.output_name}-adapter"
        if spec.wandb_url:
            body["wandb_url"] = spec.wandb_url
        return body

    def events(self, record: JobRecord, now_v: float | None = None) -> list[dict[str, Any]]:
        """Events that have happened, oldest first."""
        now_v = self.clock.now() if now_v is None else now_v
        # Rendered timestamps depend only on the plan and the clock's anchors: render once, filter per poll.
        anchors = len(self.clock.anchors)
        if record.events_cache is None or record.events_cache[0] != anchors:
            wall_of = self.clock.wall_of
            rendered = [
                (at, {**event, "created_at": iso(wall_of(at))}) for at, event in self.plan(record).events
            ]
            record.events_cache = (anchors, rendered)
        return [event for at, event in record.events_cache[1] if at <= now_v]

    def checkpoints(self, record: JobRecord) -> list[dict[str, Any]]:
        """Saved checkpoints, newest first (as the service lists them)."""
        now_v = self.clock.now()
        saved = [
            {**cp, "created_at": iso(self.clock.wall_of(at))}
            for at, cp in self.plan(record).checkpoints
            if at <= now_v
        ]
        return saved[::-1]

    def history(self, record: JobRecord) -> list[dict[str, Any]]:
        """Statuses the job went through so far, with when (for the admin API)."""
        now_v = self.clock.now()
        return [
            {"status": raw, "at": iso(self.clock.wall_of(at))}
            for raw, at in self.plan(record).stages
            if at <= now_v
        ]

    def metrics(
        self, record: JobRecord, step_from: int | None, step_to: int | None, resolution: int | None
    ) -> list[dict[str, float]]:
        """Training metrics up to the current step: a falling loss, the scheduled learning rate, eval loss."""
        now = timeline.progress_at(record.spec, self.plan(record), self.clock.now())
        lr = float(record.echo.get("learning_rate", 1e-5))
        evals = timeline.eval_losses(record.spec, now.steps)
        points = [
            {
                "train/loss": loss,
                "train/learning_rate": lr * (1 - step / max(record.spec.total_steps, 1)) + lr * 0.01,
                "train/global_step": float(step),
                # Logged only at evaluation steps, as W&B-style metrics are (a validation file and n_evals).
                **({"eval/loss": evals[step]} if step in evals else {}),
            }
            for step, loss in timeline.loss_curve(record.spec, now.steps)
            if (step_from is None or step >= step_from) and (step_to is None or step <= step_to)
        ]
        if resolution and len(points) > resolution:
            stride = len(points) / resolution
            points = [points[int(i * stride)] for i in range(resolution)]
        return points
