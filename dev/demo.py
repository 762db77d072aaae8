"""``make demo``: run the weekly retraining example DAG end to end against the local Together emulator.

Then the evaluation gate: ``together_retrain_evaluate_promote`` runs twice, printing the win rate and the
decision; in the first run the new model beats production and is promoted, in the second the emulated judge
rates the newly trained model worse and the gate refuses it (production keeps its model).

What it shows, in under two minutes and without an account or a GPU: each stage of the pipeline, the job id
and its dashboard link, Together's training events streamed by the trigger, the estimated and final price,
the output model name, and where the full logs are. Nothing keeps running afterwards.

How: the emulator runs as a real subprocess on a free 127.0.0.1 port; a fresh AIRFLOW_HOME (SQLite) is
migrated; then a child process runs the DAG with ``dag.test()``, which executes every task through the Task
SDK runner and the deferred fine-tune's trigger inline (airflow-3.md B11). The child's raw output goes to a log
file; this script prints the lines a user cares about. ``make airflow`` shows the same DAG in a real Airflow.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DAG_FILE = REPO / "example_dags" / "together_weekly_retraining.py"
DAG_ID = "together_weekly_retraining"
GATE_DAG_FILE = REPO / "example_dags" / "together_retrain_evaluate_promote.py"
GATE_DAG_ID = "together_retrain_evaluate_promote"
#: The emulator's fine-tuned model names start with its account (see emulator/jobs.py).
FINE_TUNED = "emulator_7e3a/*"
#: The gate DAG's own fine-tunes and evaluations run faster: the first demo already showed a job's stages.
GATE_SPEED = 25.0
RESULT_MARK = "DEMO_RESULT "
#: Simulated training runs this many times faster than real time: a ~1 minute job takes a few seconds while
#: the trigger still sees it progress through every stage.
SPEED = 5.0
CHILD_TIMEOUT_S = 240.0

# structlog's console line: "2026-...Z [info     ] message [logger.name] key=value ..."
_LINE = re.compile(r"^\S+Z \[(?P<level>\w+)\s*\] (?P<msg>.*) \[(?P<logger>[\w.]+)\](?: .*)?$")
_STAGE_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
_STAGE_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+)")
_ESTIMATE = re.compile(r"Estimated price: \$([\d.,]+)")


def _say(text: str = "") -> None:
    print(text, flush=True)


class _Presenter:
    """Turn the child's raw Airflow output into the few lines a user wants to read."""

    def __init__(self) -> None:
        self.estimate: str | None = None
        self.result: dict[str, Any] | None = None
        self.results: list[dict[str, Any]] = []
        self._started = time.monotonic()

    def _show(self, text: str) -> None:
        # Seconds since the DAG run started: shows the events arriving while the job trains.
        _say(f"  {time.monotonic() - self._started:5.1f}s {text}")

    def feed(self, raw: str) -> None:
        line = raw.rstrip("\n")
        if line.startswith(RESULT_MARK):
            self.result = json.loads(line[len(RESULT_MARK) :])
            self.results.append(self.result)
            return
        match = _LINE.match(line)
        if match is None:
            if line.strip():
                self._show(f"    {line}")  # a task's own print(), e.g. the report task's summary
            return
        msg, logger, level = match["msg"].rstrip(), match["logger"], match["level"]
        if start := _STAGE_START.search(msg):
            self._show(f"> stage {start[1]}")
        elif end := _STAGE_END.search(msg):
            self._show(f"  stage {end[1]} done")
        elif "running trigger in line" in msg:
            self._show("    (deferred: the trigger polls Together and streams the job's events)")
        elif "airflow_provider_together" in logger:
            if estimate := _ESTIMATE.search(msg):
                self.estimate = estimate[1]
            self._show(f"    {msg}")
        elif level in {"error", "critical"} or (level == "warning" and logger != "py.warnings"):
            self._show(f"    {level.upper()}: {msg}")


def _child_main(dag_file: Path, dag_id: str, weeks: int = 1) -> int:
    """Run the DAG with ``dag.test()`` (inside the prepared AIRFLOW_HOME) and print a JSON summary line.

    With ``weeks`` > 1 the DAG runs again in the same process (Airflow's in-process API starts only once), the
    emulated judge's world changed in between (:func:`_next_week`).
    """
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(dag_file))
    if bag.import_errors:
        print(f"import errors: {bag.import_errors}", flush=True)
        return 2
    dag = bag.get_dag(dag_id)
    code = 0
    xcoms: dict[str, Any] = {}
    for week in range(weeks):
        if week:
            _next_week(xcoms)
        xcoms, ok = _test_once(dag, dag_id)
        code = code or (0 if ok else 1)
    return code


def _next_week(previous: dict[str, Any]) -> None:
    """Gate demo, between the weeks: this week's fine-tune is worse than the model promoted last week."""
    from airflow_provider_together.emulator.admin import AdminClient

    admin = AdminClient(os.environ["TOGETHER_DEMO_EMULATOR_URL"])
    try:
        admin.clear_evaluation_quality()
        admin.set_evaluation_quality(FINE_TUNED, 0.3)
        promoted = previous.get("promote.return_value")
        if promoted:
            admin.set_evaluation_quality(str(promoted), 0.8)  # the last matching rule wins
    finally:
        admin.close()


def _test_once(dag: Any, dag_id: str) -> tuple[dict[str, Any], bool]:
    """One ``dag.test()`` run; print its state and XComs as a JSON line and return the XComs."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    run = dag.test()
    xcoms: dict[str, Any] = {}
    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run.run_id)
        for row in rows:
            value = row.value
            with contextlib.suppress(TypeError, ValueError):
                value = json.loads(value) if isinstance(value, (str, bytes)) else value
            xcoms[f"{row.task_id}.{row.key}"] = value
    print(
        RESULT_MARK + json.dumps({"state": str(run.state), "run_id": run.run_id, "xcoms": xcoms}, default=str)
    )
    return xcoms, str(run.state).endswith("success")


def _migrate(env: dict[str, str], log_path: Path) -> None:
    with log_path.open("ab") as log:
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=180,
            check=True,
        )


def _run_child(
    env: dict[str, str],
    dag_file: Path,
    log_path: Path,
    presenter: _Presenter,
    dag_id: str = DAG_ID,
    weeks: int = 1,
) -> int:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(dag_file), "--dag-id", dag_id]
    command += ["--weeks", str(weeks)]
    # Its own process group, so that Ctrl-C or a timeout stops it and anything it started.
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True
    )
    deadline = time.monotonic() + CHILD_TIMEOUT_S * weeks
    try:
        with log_path.open("a", encoding="utf-8") as log:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                presenter.feed(line)
                if time.monotonic() > deadline:
                    _say(f"  the DAG run did not finish within {CHILD_TIMEOUT_S:.0f}s; stopping it")
                    break
        return proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _summary(presenter: _Presenter, home: Path, log_path: Path, emu: Any) -> int:
    result = presenter.result
    if result is None:
        _say(f"\nThe DAG run did not report a result; see {log_path}")
        return 1
    xcoms = result["xcoms"]
    outcome = xcoms.get("fine_tune.return_value") or {}
    final = outcome.get("total_price_usd")
    _say("\n== Result ==")
    _say(f"  DAG run          {DAG_ID} / {result['run_id']}: {result['state']}")
    _say(f"  Fine-tuning job  {xcoms.get('fine_tune.job_id')}  status {outcome.get('status')}")
    _say(f"  Job link         {xcoms.get('fine_tune.job_url')}")
    _say(f"  Estimated price  ${presenter.estimate}" if presenter.estimate else "  Estimated price  n/a")
    _say(f"  Final price      ${final:.2f}" if isinstance(final, (int, float)) else "  Final price      n/a")
    _say(f"  Output model     {outcome.get('model_output_name')}")
    _say(f"  Trained tokens   {outcome.get('token_count')}   checkpoints {outcome.get('checkpoint_count')}")
    jobs = emu.admin.jobs()
    _say(f"  Jobs at the emulator: {len(jobs)} (one fine-tune task, one job)")
    _say("\n== Logs ==")
    _say(f"  Full run log     {log_path}")
    _say(f"  AIRFLOW_HOME     {home}  (SQLite DB; delete the folder when done)")
    _say("  See the same DAG in a real Airflow UI with `make airflow`.")
    return 0 if str(result["state"]).endswith("success") else 1


def _report_week(label: str, result: dict[str, Any]) -> bool:
    """Print one week's evaluation figures and decision; return whether the model was promoted."""
    xcoms = result["xcoms"]
    figures = xcoms.get("evaluate.evaluation_result") or {}
    trained = (xcoms.get("fine_tune.return_value") or {}).get("model_output_name")
    production = xcoms.get("current_production_model.return_value")
    rate = figures.get("win_rate")
    shown = f"{rate:.2f}" if isinstance(rate, (int, float)) else "n/a"
    _say(f"  {label}: new model {trained}  vs  production {production}")
    _say(
        f"    judge verdicts: A (new) wins {figures.get('a_wins')}, B (production) wins {figures.get('b_wins')}, "
        f"ties {figures.get('ties')}  ->  win rate {shown} (gate: min_win_rate 0.55)"
    )
    promoted = xcoms.get("promote.return_value")
    if promoted:
        _say(f"    decision: PROMOTED {promoted}: the production_model asset event carries its name")
    else:
        _say(
            f"    decision: REFUSED: evaluate was skipped (soft_fail), promote did not run; production stays {production}"
        )
    _say(f"    evaluation {figures.get('evaluation_id')}  DAG run {result['run_id']}: {result['state']}")
    return bool(promoted)


def _gate_demo(env: dict[str, str], home: Path, log_path: Path, emu: Any) -> int:
    """Two weekly runs of the retrain -> evaluate -> promote DAG: one the gate passes, one it refuses."""
    if not GATE_DAG_FILE.is_file():
        _say(f"\n{GATE_DAG_FILE} is missing; skipping the evaluation gate demo")
        return 1
    dag_file = Path(shutil.copy2(GATE_DAG_FILE, home / "dags" / GATE_DAG_FILE.name))
    emu.admin.update_settings(speed=GATE_SPEED)
    _say(
        f"\n== The evaluation gate: DAG {GATE_DAG_ID} (retrain -> compare with production -> promote if better) =="
    )
    _say("  The emulated LLM judge rates each model with a quality the demo sets (see docs/evaluation.md):")
    _say(
        "  week 1 this week's fine-tune is better than the base model in production, week 2 it is worse than"
    )
    _say(
        "  the model promoted in week 1. Running both weeks (prepare, upload, fine-tune, evaluate, promote) ..."
    )
    emu.admin.clear_evaluation_quality()
    emu.admin.set_evaluation_quality(FINE_TUNED, 0.8)
    emu.admin.set_evaluation_quality(os.environ.get("TOGETHER_EXAMPLE_BASE_MODEL", "meta-llama/*"), 0.35)
    presenter = _Presenter()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        try:
            _run_child(
                {**env, "TOGETHER_DEMO_EMULATOR_URL": emu.root_url},
                dag_file,
                log_path,
                presenter,
                dag_id=GATE_DAG_ID,
                weeks=2,
            )
        except subprocess.TimeoutExpired:
            pass  # reported below: a week without a result
    if len(presenter.results) < 2:
        _say(f"  The DAG runs did not all report a result; see {log_path}")
        return 1
    first, second = presenter.results[:2]
    promoted = _report_week("Week 1", first)
    refused = not _report_week("Week 2", second)
    return 0 if promoted and refused and str(second["state"]).endswith("success") else 1


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dag-id", default=DAG_ID, help=argparse.SUPPRESS)
    parser.add_argument("--weeks", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--gate-only", action="store_true", help="run only the evaluation gate demo")
    parser.add_argument("--speed", type=float, default=SPEED, help="emulator speed-up of simulated training")
    args = parser.parse_args(argv)
    if args.child is not None:
        return _child_main(args.child, args.dag_id, args.weeks)
    if not DAG_FILE.is_file():
        parser.error(f"{DAG_FILE} is missing")

    from airflow_provider_together.emulator import run_emulator

    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="together-demo-"))
    (home / "dags").mkdir()
    dag_file = Path(shutil.copy2(DAG_FILE, home / "dags" / DAG_FILE.name))
    log_path = home / "demo-run.log"
    api_key = "tk-demo-" + secrets.token_hex(12)
    _say("== Together AI fine-tuning with Airflow: demo against the local emulator (no account, no GPU) ==")
    with run_emulator(api_key=api_key, speed=args.speed) as emu:
        _say(f"[1/3] Emulator running on {emu.base_url} (training simulated {args.speed:g}x faster)")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW_CONN_TOGETHER_DEFAULT": emu.conn_json(),
                "TOGETHER_EXAMPLE_POLL_INTERVAL": "1",
                "TOGETHER_EXAMPLE_DATA_DIR": str(home / "data"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        _say(f"[2/3] Creating a fresh Airflow metadata DB (SQLite) in {home}")
        _migrate(env, log_path)
        if args.gate_only:
            return _gate_demo(env, home, log_path, emu)
        _say(f"[3/3] Running DAG {DAG_ID} with dag.test(): prepare data -> upload -> fine-tune -> report")
        presenter = _Presenter()
        rc = _run_child(env, dag_file, log_path, presenter)
        code = _summary(presenter, home, log_path, emu)
        code = code or _gate_demo(env, home, log_path, emu)
    _say(f"\nDone in {time.monotonic() - started:.0f}s; the emulator is stopped, nothing is left running.")
    return code or rc


if __name__ == "__main__":
    sys.exit(main())
