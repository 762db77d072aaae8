"""
The tab's HTML: one self-contained page per state (fine-tune, evaluation, nothing yet), no script, no CDN.

Every value from Together or Airflow goes through :func:`html.escape`. While the job runs, a
``<meta http-equiv="refresh">`` reloads the page; the browser sends the session cookie again each time.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import TYPE_CHECKING, Any

from airflow_provider_together.plugins.svg import loss_curve_svg

if TYPE_CHECKING:
    from airflow_provider_together.plugins.data import EvaluationView, FineTuneView, TaskRef

__all__ = ["REFRESH_S", "error_page", "evaluation_page", "fine_tune_page", "nothing_page"]

#: Seconds between reloads while a job runs.
REFRESH_S = 10
_STYLE = """
body{font-family:system-ui,sans-serif;font-size:14px;margin:12px;color:#1b1f24}
h2{font-size:17px;margin:0 0 8px} h3{font-size:14px;margin:16px 0 6px}
table{border-collapse:collapse} td,th{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{color:#57606a;font-weight:600} .status{padding:1px 8px;border-radius:10px;background:#eaeef2}
.running{background:#ddf4ff} .completed,.pass{background:#dafbe1} .error,.user_error,.fail{background:#ffebe9}
.problems{color:#9a6700} ol{padding-left:18px;margin:0} li{margin:1px 0} .empty{color:#57606a}
code{font-size:12px}
"""


def _page(title: str, body: str, *, refresh: bool) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}<title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _v(value: Any) -> str:
    return "—" if value is None or value == "" else escape(str(value))


def _usd(value: float | None) -> str:
    return "—" if value is None else f"${value:,.2f}"


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    return str(dt.timedelta(seconds=int(seconds)))


def _rows(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _problems(problems: list[str]) -> str:
    if not problems:
        return ""
    items = "".join(f"<li>{escape(p)}</li>" for p in problems)
    return f'<h3>Not available</h3><ul class="problems">{items}</ul>'


def fine_tune_page(view: FineTuneView, *, dashboard_url: str, running: bool) -> str:
    """Render a fine-tuning job: summary, loss curve, checkpoints and the newest events."""
    job = view.job
    status = job.status_raw or job.status.value
    final = job.total_price / 1e9 if job.total_price is not None else None
    progress = job.progress
    eta = (
        progress.seconds_remaining
        if progress is not None and progress.estimate_available is not False
        else None
    )
    summary = _rows(
        [
            ("Job", f"<code id='job-id'>{escape(job.id)}</code>"),
            ("Status", f'<span class="status {escape(status)}" id="job-status">{escape(status)}</span>'),
            ("Together", f'<a href="{escape(dashboard_url)}" target="_blank" rel="noopener">{escape(dashboard_url)}</a>'),
            ("Model", f"{_v(job.model)} → <b>{_v(job.model_output_name)}</b>"),
            ("Price", f"estimated {_usd(view.estimated_usd)}; {'so far' if running else 'final'} {_usd(final)}"),
            ("Tokens", _v(f"{job.token_count:,}" if job.token_count is not None else None)),
            ("Steps", f"{_v(job.steps_completed)} / {_v(job.total_steps)}"),
            ("Epochs", f"{_v(job.epochs_completed)} / {_v(job.n_epochs)}"),
            ("Time left", _duration(eta) if running else "—"),
        ]
    )  # fmt: skip
    curve = loss_curve_svg(view.train_loss, view.eval_loss)
    if view.checkpoints:
        cps = "".join(
            f"<tr><td>{_v(cp.step)}</td><td>{_v(cp.checkpoint_type)}</td><td>{_v(cp.created_at)}</td>"
            f"<td><code>{_v(cp.path)}</code></td></tr>"
            for cp in view.checkpoints
        )
        checkpoints = f'<table id="checkpoints"><tr><th>Step</th><th>Type</th><th>Saved</th><th>Path</th></tr>{cps}</table>'
    else:
        checkpoints = '<p class="empty" id="checkpoints">No checkpoint yet.</p>'
    events = "".join(
        f"<li><code>{_v(e.created_at)}</code> [{_v(e.type)}] {_v(e.message)}</li>" for e in view.events
    )
    events_html = (
        f'<ol id="events">{events}</ol>' if events else '<p class="empty" id="events">No event yet.</p>'
    )
    body = (
        f"<h2>Together fine-tuning job</h2>{summary}<h3>Loss</h3>{curve}<h3>Checkpoints</h3>{checkpoints}"
        f"<h3>Latest events</h3>{events_html}{_problems(view.problems)}"
    )
    return _page(f"Together job {job.id}", body, refresh=running)


#: Figure of the result each gate argument bounds from below.
_GATED = {
    "min_pass_percentage": "pass_percentage",
    "min_mean_score": "mean_score",
    "min_win_rate": "win_rate",
}
_FIGURES = ("pass_percentage", "mean_score", "std_score", "win_rate", "a_wins", "b_wins", "ties",
            "generation_fail_count", "judge_fail_count")  # fmt: skip


def evaluation_page(view: EvaluationView, *, dashboard_url: str, running: bool) -> str:
    """Render an evaluation: status and each figure beside the gate's threshold, when one is set."""
    job = view.job
    status = job.status_raw or job.status.value
    summary = _rows(
        [
            ("Evaluation", f"<code id='job-id'>{escape(job.workflow_id)}</code>"),
            ("Type", _v(job.type)),
            ("Status", f'<span class="status {escape(status)}" id="job-status">{escape(status)}</span>'),
            ("Together", f'<a href="{escape(dashboard_url)}" target="_blank" rel="noopener">{escape(dashboard_url)}</a>'),
        ]
    )  # fmt: skip
    thresholds = {figure: view.gate[arg] for arg, figure in _GATED.items() if arg in view.gate}
    rows = []
    figures: dict[str, Any] = dict(view.figures)
    for name in _FIGURES:
        value = figures.get(name)
        if value is None and name not in thresholds:
            continue
        gate, verdict = "—", ""
        if name in thresholds:
            gate = f"≥ {thresholds[name]:g}"
            ok = isinstance(value, (int, float)) and value >= thresholds[name]
            verdict = (
                f'<span class="status {"pass" if ok else "fail"}">{"pass" if ok else "below the gate"}</span>'
            )
        shown = f"{value:.4g}" if isinstance(value, float) else _v(value)
        rows.append(f"<tr><td>{escape(name)}</td><td>{shown}</td><td>{gate}</td><td>{verdict}</td></tr>")
    if figures.get("label_counts"):
        counts = ", ".join(f"{escape(str(k))}: {v:g}" for k, v in figures["label_counts"].items())
        rows.append(f"<tr><td>label_counts</td><td colspan='3'>{counts}</td></tr>")
    table = (
        f'<table id="figures"><tr><th>Figure</th><th>Value</th><th>Gate</th><th></th></tr>{"".join(rows)}</table>'
        if rows
        else '<p class="empty" id="figures">No figures yet.</p>'
    )
    body = f"<h2>Together evaluation</h2>{summary}<h3>Figures</h3>{table}{_problems(view.problems)}"
    return _page(f"Together evaluation {job.workflow_id}", body, refresh=running)


def nothing_page(ref: TaskRef) -> str:
    """Render the tab of a task instance that has no Together job (yet): other tasks, or not started."""
    body = (
        "<h2>Together</h2>"
        f'<p class="empty" id="no-job">No Together job for task <code>{escape(ref.task_id)}</code> of run '
        f"<code>{escape(ref.run_id)}</code> (yet). Fine-tune and evaluation tasks show their job here once "
        "they have submitted it.</p>"
    )
    return _page("Together", body, refresh=True)


def error_page(message: str) -> str:
    """Render a failure to reach Together (the message never holds the API key: see data.py)."""
    return _page("Together", f"<h2>Together</h2><p class='problems'>{escape(message)}</p>", refresh=True)
