"""
Shared plumbing for the benchmark scripts: result files, measured subprocesses, machine facts.

Every benchmark writes one JSON result (``--json PATH``) with the same shape, which ``run_all.py`` turns
into a section of ``RESULTS.md``::

    {
        "name": ...,
        "title": ...,
        "smoke": bool,
        "columns": [...],
        "rows": [[...], ...],
        "targets": [{"target": ..., "value": ..., "met": bool | None}],
        "notes": [...],
        "data": {...},
    }

``rows`` hold display strings (the table is the product); ``data`` keeps the raw figures for anyone who
wants to recompute a ratio. Nothing here imports Airflow or the provider: the scripts that do are the ones
being measured, and the orchestration must not add to what it measures.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK = BENCH_DIR / ".work"
PROJECT_PY = ROOT / ".venv" / "bin" / "python"
COMPARE_VENV = WORK / "venv-compare"
COMPARE_PY = COMPARE_VENV / "bin" / "python"
GNU_TIME = "/usr/bin/time"


def work_dir(override: str | None = None) -> Path:
    """The scratch folder for generated data (gitignored); created on demand."""
    path = Path(override) if override else WORK
    path.mkdir(parents=True, exist_ok=True)
    return path


def airflow_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """
    Environment for child processes that import Airflow.

    Airflow writes its config and logs under AIRFLOW_HOME on first import; a private home under .work keeps
    the user's ~/airflow untouched and makes every contender pay the same (already initialised) start-up.
    """
    env = dict(os.environ)
    home = work_dir() / "airflow-home"
    home.mkdir(exist_ok=True)
    env.setdefault("AIRFLOW_HOME", str(home))
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env.setdefault("PYTHONDONTWRITEBYTECODE", "0")
    if extra:
        env.update(extra)
    return env


@dataclass
class Measured:
    """
    What the kernel says about one finished child process.

    :param maxrss_kb: the command's own peak RSS. Not ``wait4``'s ``ru_maxrss`` alone: at ``exec`` Linux
        folds the pre-exec memory's high-water mark into it, and a child forked (or vforked) from Python
        starts as a copy of the parent, so ``ru_maxrss`` would report at least the *orchestrator's* RSS.
        The command therefore runs under GNU ``time``, whose own tiny fork is what the command replaces;
        without ``/usr/bin/time`` the ``wait4`` figure is kept and ``maxrss_exact`` is False.
    """

    returncode: int
    wall_s: float
    cpu_s: float
    maxrss_kb: int
    stdout: str
    stderr: str
    maxrss_exact: bool = True


def run_measured(
    cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 600.0, cwd: Path | None = None
) -> Measured:
    """
    Run ``cmd`` to completion and return its own peak RSS and CPU from ``wait4``.

    ``wait4`` reports the rusage of exactly that child (not of every child this process ever had, as
    ``RUSAGE_CHILDREN`` would), so contenders run one after another can be compared directly.
    """
    out_path = work_dir() / f".out-{os.getpid()}-{time.monotonic_ns()}"
    err_path = out_path.with_suffix(".err")
    rss_path = out_path.with_suffix(".rss")
    exact = os.path.exists(GNU_TIME)
    if exact:
        cmd = [GNU_TIME, "-q", "-f", "%M", "-o", str(rss_path), *cmd]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        # Own session: on timeout the whole group goes (GNU time and the command under it).
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd, start_new_session=True)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    maxrss = usage.ru_maxrss
    if exact:
        try:
            maxrss = int(rss_path.read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            exact = False
    for path in (out_path, err_path, rss_path):
        path.unlink(missing_ok=True)
    return Measured(
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        maxrss_kb=maxrss,
        stdout=stdout,
        stderr=stderr,
        maxrss_exact=exact,
    )


def last_json_line(text: str) -> dict[str, Any]:
    """The last line of ``text`` that parses as a JSON object (workers print their result last)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    raise ValueError(f"no JSON result line in output:\n{text[-2000:]}")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); exact for the p50/p99 we print."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds == seconds else "n/a"


def fmt_mb(kb: float) -> str:
    return f"{kb / 1024:.1f} MB" if kb == kb else "n/a"


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x" if x == x and x not in (float("inf"), float("-inf")) else "n/a"


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, kernel and the tool versions the figures depend on."""
    cpu = "unknown"
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        cpu = match.group(1).strip() if match else platform.processor() or "unknown"
    except OSError:
        pass
    mem_gib = float("nan")
    try:
        match = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        if match:
            mem_gib = int(match.group(1)) / 1024 / 1024
    except OSError:
        pass
    curl = shutil.which("curl")
    curl_version = (
        subprocess.run([curl, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        if curl
        else "absent"
    )
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "curl": " ".join(curl_version.split()[:2]),
        "loadavg_at_start": [round(x, 2) for x in load],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def package_versions(python: Path | str, names: list[str]) -> dict[str, str]:
    """Installed versions of ``names`` in the interpreter ``python`` (``"-"`` when absent)."""
    code = (
        "import json, sys\n"
        "from importlib.metadata import version, PackageNotFoundError\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try:\n        out[n] = version(n)\n"
        "    except PackageNotFoundError:\n        out[n] = '-'\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else {n: "?" for n in names}


def write_result(path: str | None, result: dict[str, Any]) -> None:
    """Write the benchmark's result JSON (and echo its table to stdout for whoever runs it by hand)."""
    text = json.dumps(result, indent=2, default=str)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    print(render_table(result["columns"], result["rows"]))
    for target in result.get("targets", []):
        print(f"  target: {target['target']}: {target['value']} -> {met_word(target.get('met'))}")


def met_word(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "info"}[met]


def render_table(columns: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def add_common_args(parser: Any) -> None:
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds; checks the harness only")
    parser.add_argument("--json", help="write the result JSON here")
    parser.add_argument("--work", help="scratch folder for generated data (default benchmarks/.work)")


def python_for_project() -> str:
    """The interpreter with the provider installed: the project venv, else whatever runs us."""
    return str(PROJECT_PY) if PROJECT_PY.exists() else sys.executable
