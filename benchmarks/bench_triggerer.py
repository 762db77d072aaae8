"""
Triggerer scale: 1,000 TogetherFineTuneTriggers in one event loop, ours against a naive client, one run.

For each server (the emulator, and ``_fixed_server.py``, a raw-asyncio fixed-response server that takes the
server's cost out) and each client (our hook; the same trigger on a new ``httpx.AsyncClient`` per request),
a fresh client process (``_trigger_client.py``) runs N triggers like Airflow's triggerer and reports client
CPU per poll, peak RSS per trigger and poll lateness against schedule. The server always runs in its own
process, so its CPU is never counted as the client's.

Poll interval: the headline run polls at the production 30 s (``--production-interval``), 1,000 triggers x
3 rounds, with the trigger's default random first-poll delay: the sparsest pattern, where each poll pays
the most for waking the process. The other runs are compressed to ``--interval`` (default 6 s) so that
3 rounds of each fit the ``make bench`` budget: the same triggers with the default start (also on httpx's
default transport, for the ratio), a burst with no delay (every poll of a round at the same instant, the
worst case for lateness, which does not depend on the interval as long as a round ends within it), the
emulator, and the naive client. Denser polls cost a little less CPU each (fewer idle wake-ups), which is
why the 30 s run is the one the CPU target is also judged on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from _common import (
    BENCH_DIR,
    add_common_args,
    airflow_env,
    last_json_line,
    python_for_project,
    run_measured,
    work_dir,
    write_result,
)
from _triggerer_report import build_result, summarize

if TYPE_CHECKING:
    from collections.abc import Iterator

API_KEY = "bench-key-0123456789abcdef"


@contextmanager
def fixed_server(python: str, rounds: int) -> Iterator[str]:
    """Start ``_fixed_server.py`` in its own process; yield its base URL (with /v1)."""
    proc = subprocess.Popen(
        [python, str(BENCH_DIR / "_fixed_server.py"), "--rounds", str(rounds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        if not base.startswith("http"):
            raise RuntimeError("fixed server did not start")
        yield base + "/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def fixed_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/_stats", timeout=10) as resp:
        return json.loads(resp.read())


def run_client(
    python: str,
    variant: str,
    base_url: str,
    args: argparse.Namespace,
    transport: str = "aiohttp",
    interval: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    conn = {
        "conn_type": "together",
        "password": API_KEY,
        "host": base_url,
        "extra": {"request_timeout": 60, "async_transport": transport},
    }
    cmd = [
        python,
        str(BENCH_DIR / "_trigger_client.py"),
        "--variant",
        variant,
        "--n",
        str(args.n),
        "--interval",
        str(interval or args.interval),
        "--deadline",
        str(args.deadline),
    ]
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    measured = run_measured(
        cmd, env=airflow_env({"AIRFLOW_CONN_TOGETHER_DEFAULT": json.dumps(conn)}), timeout=args.deadline + 120
    )
    if measured.returncode != 0:
        raise RuntimeError(f"trigger client ({variant}) failed:\n{measured.stderr[-4000:]}")
    result = last_json_line(measured.stdout)
    result["process_maxrss_kb"] = measured.maxrss_kb
    return result


def scenarios(args: argparse.Namespace) -> list[dict[str, Any]]:
    """
    The runs, per server: ours with the trigger's defaults (its random first-poll delay of up to one
    interval included: that is how an operator defers it); ours in a burst (no delay: every poll of a round
    at the same instant, the worst case, as after a triggerer restart without jitter); and the naive client
    in the same burst, for one round. One naive round of 1,000 polls costs half a minute of CPU, and its
    per-poll figures are what a round shows; ratios compare it with ours in the same burst. First, ours
    with no network at all (a canned job body): the trigger's and the event loop's share of a poll.
    """
    out = [{"server": "none", "variant": "null", "jitter": None, "rounds": 2}]
    for server in args.servers.split(","):
        if server == "fixed" and args.production_interval:
            # The headline: the production interval, the trigger's own start (~90 s of the budget).
            out.append(
                {
                    "server": server,
                    "variant": "ours",
                    "jitter": None,
                    "rounds": args.rounds,
                    "interval": args.production_interval,
                }
            )
        out.append({"server": server, "variant": "ours", "jitter": None, "rounds": args.rounds})
        if server == "fixed":
            # The burst of ours once, where the server's cost is out of the way; and ours on httpx's default
            # transport (connection extra async_transport=httpx), to show what aiohttp saves.
            out.append({"server": server, "variant": "ours", "jitter": 0.0, "rounds": args.rounds})
            out.append(
                {
                    "server": server,
                    "variant": "ours",
                    "jitter": None,
                    "rounds": args.rounds,
                    "transport": "httpx",
                }
            )
        if "naive" in args.variants:
            out.append({"server": server, "variant": "naive", "jitter": 0.0, "rounds": 1})
    for sc in out:
        sc.setdefault("transport", "aiohttp")
        sc.setdefault("interval", args.interval)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    add_common_args(parser)
    parser.add_argument("--n", type=int, default=None, help="triggers (default 1000, smoke 20)")
    parser.add_argument("--rounds", type=int, default=None, help="polls per trigger (default 3)")
    parser.add_argument(
        "--interval", type=float, default=None, help="poll interval, s (default 6, smoke 0.3)"
    )
    parser.add_argument(
        "--production-interval",
        type=float,
        default=None,
        help="interval of the headline run, s (default 30; smoke 0.6; 0 skips it)",
    )
    parser.add_argument("--deadline", type=float, default=180.0, help="per client run, s")
    parser.add_argument("--servers", default="fixed,emulator")
    parser.add_argument("--variants", default="ours,naive")
    args = parser.parse_args(argv)
    args.n = args.n or (20 if args.smoke else 1000)
    args.rounds = args.rounds or 3
    args.interval = args.interval or (0.3 if args.smoke else 6.0)
    if args.production_interval is None:
        args.production_interval = 0.6 if args.smoke else 30.0
    python = python_for_project()
    work = work_dir(args.work)
    plan = scenarios(args)
    runs: list[dict[str, Any]] = []

    for sc in (p for p in plan if p["server"] == "none"):
        raw = run_client(
            python,
            sc["variant"],
            "http://127.0.0.1:9/v1",
            args,
            sc["transport"],
            sc["interval"],
            rounds=sc["rounds"],
            **_jitter(sc),
        )
        runs.append(summarize("none (no HTTP)", raw, sc))
    if any(sc["server"] == "fixed" for sc in plan):
        with fixed_server(python, args.rounds) as base:
            for i, sc in enumerate(p for p in plan if p["server"] == "fixed"):
                before = fixed_stats(base)
                # The fixed server reads each job's number of rounds from its id ("-r3-").
                prefix = f"ft-{i}{sc['variant']}-r{sc['rounds']}-"
                raw = run_client(
                    python,
                    sc["variant"],
                    base,
                    args,
                    sc["transport"],
                    sc["interval"],
                    id_prefix=prefix,
                    **_jitter(sc),
                )
                after = fixed_stats(base)
                stats = {
                    "requests": after["requests"] - before["requests"] - 1,
                    "connections": after["connections"] - before["connections"],
                    "server_cpu_s": after["cpu_s"] - before["cpu_s"],
                }
                runs.append(summarize("fixed-response", raw, sc, stats))
            floor = httpx_floor(python, base, 200 if args.smoke else 2000)
    else:
        floor = {}
    if any(sc["server"] == "emulator" for sc in plan):
        from _emulator_jobs import create_jobs, emulator

        # "stall": jobs stay running, so every trigger keeps polling until the client stops it. The same
        # jobs serve every run: a run stops its triggers, never the jobs.
        with emulator(API_KEY, "--scenario", "stall") as emu:
            ids_file = work / "trigger-ids.json"
            ids_file.write_text(json.dumps(create_jobs(emu, args.n, work)))
            for sc in (p for p in plan if p["server"] == "emulator"):
                raw = run_client(
                    python,
                    sc["variant"],
                    emu.base_url,
                    args,
                    sc["transport"],
                    sc["interval"],
                    ids_file=ids_file,
                    stop_after_polls=sc["rounds"],
                    **_jitter(sc),
                )
                runs.append(summarize("emulator", raw, sc))

    result = build_result(args, runs, python, floor)
    write_result(args.json, result)
    return result


def _jitter(sc: dict[str, Any]) -> dict[str, Any]:
    return {} if sc["jitter"] is None else {"jitter": sc["jitter"]}


def httpx_floor(python: str, base_url: str, n: int) -> dict[str, dict[str, float]]:
    """
    CPU per request of plain ``httpx.AsyncClient`` GETs at 1, 8 and 32 in flight (``_httpx_floor.py``), on
    httpx's default transport and on aiohttp (the hook's default): {transport: {in flight: seconds}}.
    """
    out: dict[str, dict[str, float]] = {}
    for transport in ("httpx", "aiohttp"):
        cmd = [python, str(BENCH_DIR / "_httpx_floor.py"), "--base-url", base_url, "--n", str(n)]
        measured = run_measured([*cmd, "--transport", transport], timeout=300)
        if measured.returncode != 0:
            raise RuntimeError(f"httpx floor failed:\n{measured.stderr[-3000:]}")
        raw = last_json_line(measured.stdout)["cpu_per_request_s"]
        out[transport] = {k: float(v) for k, v in raw.items()}
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
