"""
What the Together tab shows, gathered server-side: the job id from the task instance's XCom, then Together
through the provider's hook (the API key stays in the api-server).

:func:`locate` reads the metadata database; :func:`fine_tune_view` and :func:`evaluation_view` call Together.
Both are blocking: the app runs them in a thread. Every Together call is best-effort on its own, so a failing
``/metrics`` still shows the job, with the problem named on the page.

The tab refreshes every few seconds while a job runs, so it never asks Together for a price estimate per view:
the operator pushes the estimate it enforced (``estimated_price_usd`` XCom), and a job without one (a try that
reattached to an earlier try's job, or a job started by an older provider) is estimated once per api-server
process and remembered (:data:`ESTIMATES_KEPT` jobs at most).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_together.links import EVALUATION_ID_XCOM_KEY, JOB_ID_XCOM_KEY, PRICE_ESTIMATE_XCOM_KEY

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.models import (
        Checkpoint,
        EvaluationJob,
        EvaluationResult,
        FineTuneEvent,
        FineTuneJob,
    )
    from airflow_provider_together.plugins.svg import Point

__all__ = [
    "EvaluationView",
    "FineTuneView",
    "JobRef",
    "TaskRef",
    "evaluation_view",
    "fine_tune_view",
    "locate",
    "loss_points",
]

DEFAULT_CONN_ID = "together_default"
#: The evaluation operator's gate arguments, read back from the rendered template fields.
GATE_FIELDS = ("min_pass_percentage", "min_mean_score", "min_win_rate")
_RESULT_XCOM_KEY = "evaluation_result"
#: Newest events shown on the tab.
EVENTS_SHOWN = 15
#: Jobs whose fallback estimate an api-server process remembers (the least recently shown are forgotten).
ESTIMATES_KEPT = 256
_estimates: OrderedDict[str, float | None] = OrderedDict()
_estimates_lock = threading.Lock()


@dataclass(frozen=True)
class TaskRef:
    """One task instance, as the tab's URL names it (``map_index`` -1 when unmapped)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1


@dataclass(frozen=True)
class JobRef:
    """The Together job a task instance started, and what the api-server knows about it without Together."""

    kind: Literal["fine_tune", "evaluation"]
    job_id: str
    conn_id: str = DEFAULT_CONN_ID
    rendered: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    estimated_usd: float | None = None


@dataclass
class FineTuneView:
    """Everything the tab draws for a fine-tuning job."""

    job: FineTuneJob
    events: list[FineTuneEvent] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    train_loss: list[Point] = field(default_factory=list)
    eval_loss: list[Point] = field(default_factory=list)
    estimated_usd: float | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class EvaluationView:
    """Everything the tab draws for an evaluation: its figures and the gate the task applies."""

    job: EvaluationJob
    figures: EvaluationResult
    gate: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _json(value: Any) -> Any:
    # XCom and rendered fields are JSON columns; older rows (and some backends) hold the JSON as text.
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def locate(ref: TaskRef) -> JobRef | None:
    """Find the job of a task instance in the metadata database (its ``job_id`` / ``evaluation_id`` XCom)."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    keys = (JOB_ID_XCOM_KEY, EVALUATION_ID_XCOM_KEY, _RESULT_XCOM_KEY, PRICE_ESTIMATE_XCOM_KEY)
    with create_session() as session:
        rows = session.execute(
            select(XComModel.key, XComModel.value).where(
                XComModel.dag_id == ref.dag_id,
                XComModel.run_id == ref.run_id,
                XComModel.task_id == ref.task_id,
                XComModel.map_index == ref.map_index,
                XComModel.key.in_(keys),
            )
        ).all()
        rendered = session.scalar(
            select(RTIF.rendered_fields).where(
                RTIF.dag_id == ref.dag_id,
                RTIF.run_id == ref.run_id,
                RTIF.task_id == ref.task_id,
                RTIF.map_index == ref.map_index,
            )
        )
    xcoms = {key: _json(value) for key, value in rows}
    fields = _json(rendered)
    return job_ref(xcoms, fields if isinstance(fields, dict) else {})


def job_ref(xcoms: dict[str, Any], rendered: dict[str, Any]) -> JobRef | None:
    """Decide which job the XComs name (pure: the part of :func:`locate` that does not read the database)."""
    conn_id = rendered.get("together_conn_id")
    conn_id = conn_id if isinstance(conn_id, str) and conn_id else DEFAULT_CONN_ID
    job_id = xcoms.get(JOB_ID_XCOM_KEY)
    if isinstance(job_id, str) and job_id:
        from airflow_provider_together._fine_tune.price import dollars

        return JobRef(
            "fine_tune", job_id, conn_id, rendered, estimated_usd=dollars(xcoms.get(PRICE_ESTIMATE_XCOM_KEY))
        )
    evaluation_id = xcoms.get(EVALUATION_ID_XCOM_KEY)
    if isinstance(evaluation_id, str) and evaluation_id:
        result = xcoms.get(_RESULT_XCOM_KEY)
        return JobRef(
            "evaluation", evaluation_id, conn_id, rendered, result if isinstance(result, dict) else None
        )
    return None


def _attempt(problems: list[str], what: str, call: Callable[[], Any], default: Any) -> Any:
    from airflow_provider_together.exceptions import TogetherError

    try:
        return call()
    except TogetherError as exc:
        # The error classes carry Together's message and status, never the request's headers.
        problems.append(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")
        return default


def loss_points(metrics: list[dict[str, float]]) -> tuple[list[Point], list[Point]]:
    """Split ``/metrics`` rows into training and evaluation ``(step, loss)`` points."""
    train: list[Point] = []
    evaluation: list[Point] = []
    for index, row in enumerate(metrics):
        step = row.get("train/global_step", row.get("global_step", row.get("step", index + 1)))
        if not isinstance(step, (int, float)):
            continue
        for key, into in (("train/loss", train), ("eval/loss", evaluation)):
            value = row.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                into.append((float(step), float(value)))
    return train, evaluation


def _estimate(hook: TogetherHook, job: FineTuneJob) -> float | None:
    from airflow_provider_together._fine_tune.price import usable_price

    if not job.model or not job.training_file:
        return None
    request = {
        key: value
        for key, value in {
            "model": job.model,
            "training_file": job.training_file,
            "validation_file": job.validation_file,
            "n_epochs": job.n_epochs,
            "n_evals": job.n_evals,
            "training_method": job.training_method,
            "training_type": job.training_type,
        }.items()
        if value is not None
    }
    return usable_price(hook.estimate_fine_tune_price(request))[0]


def _remembered_estimate(hook: TogetherHook, job: FineTuneJob, problems: list[str]) -> float | None:
    """Estimate a job that has no estimate in XCom, once per process (a failed call is tried again next view)."""
    with _estimates_lock:
        if job.id in _estimates:
            _estimates.move_to_end(job.id)
            return _estimates[job.id]
    before = len(problems)
    price: float | None = _attempt(problems, "price estimate", lambda: _estimate(hook, job), None)
    if len(problems) == before:
        with _estimates_lock:
            _estimates[job.id] = price
            while len(_estimates) > ESTIMATES_KEPT:
                _estimates.popitem(last=False)
    return price


def fine_tune_view(hook: TogetherHook, job_id: str, estimated_usd: float | None = None) -> FineTuneView:
    """
    Fetch a fine-tuning job with its events, checkpoints and loss; add its price estimate.

    :param estimated_usd: the estimate the operator recorded in XCom; without one, the job is estimated once.
    """
    job = hook.get_fine_tune(job_id)
    view = FineTuneView(job=job)
    events = _attempt(view.problems, "events", lambda: hook.list_fine_tune_events(job_id), job.events)
    view.events = list(events)[-EVENTS_SHOWN:][::-1]
    view.checkpoints = _attempt(
        view.problems, "checkpoints", lambda: hook.list_fine_tune_checkpoints(job_id), []
    )
    metrics = _attempt(view.problems, "metrics", lambda: hook.get_fine_tune_metrics(job_id), [])
    view.train_loss, view.eval_loss = loss_points(metrics)
    view.estimated_usd = (
        estimated_usd if estimated_usd is not None else _remembered_estimate(hook, job, view.problems)
    )
    return view


def _gate(rendered: dict[str, Any]) -> dict[str, float]:
    gate: dict[str, float] = {}
    for name in GATE_FIELDS:
        value = rendered.get(name)
        try:
            if value not in (None, "", "None"):
                gate[name] = float(value)
        except (TypeError, ValueError):
            continue
    return gate


def evaluation_view(hook: TogetherHook, ref: JobRef) -> EvaluationView:
    """Fetch an evaluation and put its figures beside the gate the task was given."""
    job = hook.get_evaluation(ref.job_id)
    return EvaluationView(job=job, figures=job.summary(), gate=_gate(ref.rendered))
