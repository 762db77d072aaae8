"""
The triggerer benchmark's report: per-run figures from a client's raw output, and the table and targets.

Split from ``bench_triggerer.py``, which only orchestrates servers and client processes.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _common import fmt_ms, fmt_ratio, package_versions, percentile

TARGET_CPU_MS = 1.0
TARGET_RSS_KB = 100.0
TARGET_P99_S = 1.0


def summarize(
    server: str, raw: dict[str, Any], sc: dict[str, Any], server_stats: dict[str, Any] | None = None
) -> dict[str, Any]:
    polls = raw["polls"]
    failures = raw["poll_error_count"] + raw["task_error_count"]
    bad_events = sum(v for k, v in raw["event_statuses"].items() if k not in ("success", "cancelled"))
    return {
        "server": server,
        "variant": raw["variant"],
        "transport": sc.get("transport", "aiohttp"),
        "interval": sc.get("interval", raw["interval"]),
        "burst": sc["jitter"] == 0,
        "rounds": sc["rounds"],
        "n": raw["n"],
        "polls": polls,
        "polls_cancelled": raw["polls_cancelled"],
        "failures": failures + bad_events,
        "events": raw["events"],
        "event_statuses": raw["event_statuses"],
        "stopped_early": raw["stopped_early"],
        "cpu_per_poll_s": raw["cpu_s"] / polls if polls else float("nan"),
        "cpu_s": raw["cpu_s"],
        "elapsed_s": raw["elapsed_s"],
        "rss_per_trigger_kb": (raw["rss_peak_kb"] - raw["rss_baseline_kb"]) / raw["n"],
        "rss_baseline_kb": raw["rss_baseline_kb"],
        "rss_peak_kb": raw["rss_peak_kb"],
        "lateness_p50_s": percentile(raw["lateness_s"], 50),
        "lateness_p99_s": percentile(raw["lateness_s"], 99),
        "lateness_max_s": max(raw["lateness_s"], default=float("nan")),
        "wake_lag_p99_s": percentile(raw["wake_lag_s"], 99),
        "errors_sample": raw["poll_errors"] + raw["task_errors"],
        "server_stats": server_stats,
    }


def _ms(seconds: float) -> str:
    """Whole milliseconds, signed (an early poll is negative), never "-0"."""
    return f"{round(seconds * 1000) + 0:d} ms"


def hook_in_flight_default() -> int:
    """The hook's default bound on requests in flight (its pool size), for the notes."""
    from airflow_provider_together._transport.settings import TogetherSettings

    return TogetherSettings().max_in_flight


def build_result(
    args: argparse.Namespace, runs: list[dict[str, Any]], python: str, floor: dict[str, float]
) -> dict[str, Any]:
    rows = []
    targets = []
    for run in runs:
        # Compare like with like: the same server and, where measured, the same start pattern (else ours
        # with the trigger's default start, which costs more per poll: the ratio then errs against ours).
        same_server = [
            r
            for r in runs
            if r["server"] == run["server"] and r["variant"] == "ours" and r["transport"] == "aiohttp"
        ]
        ours = (
            next(
                (r for r in same_server if (r["burst"], r["interval"]) == (run["burst"], run["interval"])),
                None,
            )
            or next((r for r in same_server if r["burst"] == run["burst"]), None)
            or next(iter(same_server), None)
        )
        ratio = run["cpu_per_poll_s"] / ours["cpu_per_poll_s"] if ours and ours["polls"] else float("nan")
        client = {
            "ours": "ours (shared client)",
            "naive": "naive (client per request)",
            "null": "ours, canned job (no HTTP)",
        }[run["variant"]]
        if run["variant"] == "ours" and run["transport"] != "aiohttp":
            client = "ours on httpx's default transport (async_transport=httpx)"
        rows.append(
            [
                run["server"],
                client,
                "burst (no jitter)" if run["burst"] else "trigger default",
                f"{run['interval']:g} s",
                f"{run['n']} x {run['rounds']}",
                f"{run['polls']}",
                f"{run['failures']}",
                fmt_ms(run["cpu_per_poll_s"]),
                fmt_ratio(ratio),
                f"{run['rss_per_trigger_kb']:.1f} KB",
                _ms(run["lateness_p50_s"]),
                _ms(run["lateness_p99_s"]),
                f"{run['elapsed_s']:.1f} s",
            ]
        )
        if run["variant"] != "ours" or run["transport"] != "aiohttp":
            continue  # targets are about ours as shipped; the others are the comparison and the floor
        where = f"{run['server']}, {run['interval']:g} s{', burst' if run['burst'] else ''}"
        targets += [
            {
                "target": f"[{where}] all {run['n']} triggers poll without a single failure",
                "value": f"{run['failures']} failures in {run['polls']} polls; events {run['event_statuses']}",
                "met": run["failures"] == 0 and run["polls"] >= run["n"] * run["rounds"],
            },
            {
                "target": f"[{where}] CPU per poll <= {TARGET_CPU_MS:.0f} ms",
                "value": fmt_ms(run["cpu_per_poll_s"]),
                "met": run["cpu_per_poll_s"] * 1000 <= TARGET_CPU_MS,
            },
            {
                "target": f"[{where}] RSS per trigger <= {TARGET_RSS_KB:.0f} KB",
                "value": f"{run['rss_per_trigger_kb']:.1f} KB",
                "met": run["rss_per_trigger_kb"] <= TARGET_RSS_KB,
            },
            {
                "target": f"[{where}] p99 poll lateness <= {TARGET_P99_S:.0f} s",
                "value": f"{run['lateness_p99_s'] * 1000:.0f} ms (max {run['lateness_max_s'] * 1000:.0f} ms)",
                "met": run["lateness_p99_s"] <= TARGET_P99_S,
            },
        ]
    labels = {"httpx": "httpx's default transport", "aiohttp": "aiohttp (the hook's default)"}
    for transport, by_in_flight in floor.items():
        for in_flight, cpu in by_in_flight.items():
            rows.append(
                ["fixed-response", f"plain GET, {labels[transport]}, {in_flight} in flight (no trigger)"]
                + ["-", "-", "-", "-", "-", fmt_ms(cpu), "-", "-", "-", "-", "-"]
            )
    on_httpx = next((r for r in runs if r["variant"] == "ours" and r["transport"] == "httpx"), None)
    plain = on_httpx and next(
        (
            r
            for r in runs
            if r["server"] == on_httpx["server"]
            and r["variant"] == "ours"
            and not r["burst"]
            and r["interval"] == on_httpx["interval"]
            and r["transport"] == "aiohttp"
        ),
        None,
    )
    if plain and on_httpx:
        heavier = on_httpx["cpu_per_poll_s"] / plain["cpu_per_poll_s"]
        targets.append(
            {
                "target": "[fixed-response] ours as shipped (aiohttp) >= 2x lighter than on httpx's default"
                " transport, same start",
                "value": f"{heavier:.2f}x the CPU per poll on httpx's default"
                f" ({fmt_ms(on_httpx['cpu_per_poll_s'])} vs {fmt_ms(plain['cpu_per_poll_s'])})",
                "met": heavier >= 2.0,
            }
        )
    shipped = [r for r in runs if r["transport"] == "aiohttp"]
    for server in sorted({r["server"] for r in runs}):
        ours = next(
            (r for r in shipped if r["server"] == server and r["variant"] == "ours" and r["burst"]), None
        )
        naive = next((r for r in runs if r["server"] == server and r["variant"] == "naive"), None)
        ours = ours or next((r for r in shipped if r["server"] == server and r["variant"] == "ours"), None)
        if ours and naive:
            targets.append(
                {
                    "target": f"[{server}] naive client (new AsyncClient per request) vs ours, same burst",
                    "value": f"{naive['cpu_per_poll_s'] / ours['cpu_per_poll_s']:.1f}x the CPU per poll,"
                    f" {naive['rss_per_trigger_kb'] / ours['rss_per_trigger_kb']:.0f}x the RSS per trigger,"
                    f" p99 lateness {naive['lateness_p99_s']:.1f} s vs {ours['lateness_p99_s']:.1f} s,"
                    f" {naive['failures']} vs {ours['failures']} failures",
                    "met": None,
                }
            )
    notes = [
        f"{args.n} triggers per run. Poll interval: the production {args.production_interval:g} s for the"
        f" headline run, {args.interval:g} s for the others (compressed so that {args.rounds} rounds of each fit"
        " the budget; see the module docstring). 'trigger default': the trigger's own random first-poll delay of up to one interval,"
        " i.e. how an operator defers it; 'burst': first_poll_jitter=0, every poll of a round at the same"
        " instant (the worst case). 'x ours' compares with ours on the same server, in the same pattern where"
        " measured (else with ours' default start, which costs more per poll, so the ratio errs against ours)."
        " Failed polls are retried as the trigger does by default (up to 5 in a row).",
        "CPU per poll: user+sys CPU of the client process over the run / completed polls (includes the"
        " trigger's own work: JSON parsing, models, classify, logging, timers). RSS per trigger: (peak RSS"
        " during the run - RSS before the triggers were built) / triggers.",
        "Lateness: when a poll's answer arrived minus when it was due (the previous answer + the interval;"
        " in a burst also the first poll, due at start). With the random first-poll delay the first poll's"
        " due time is unknown, so only later polls count.",
        "Fixed-response server: answers 'running' until a job's last round, then 'completed', so every"
        " trigger fires one success event. Emulator (--scenario stall): 1,000 real jobs created through the"
        " API; the client stops the triggers (as a triggerer shutdown does) once each has polled its rounds,"
        " so no events; polls cut short by that stop are not counted.",
    ]
    notes.append(
        "Lateness includes the wake-up grid: the trigger moves each wake-up to the nearest point of a grid of"
        " min(0.5 s, interval / 10) on the loop clock (the same 0.5 s at 6 s and at 30 s), so that triggers"
        " due in the same half second wake and poll together: a poll comes up to 0.25 s early (negative"
        " lateness) or late. A lone wake-up of an idle loop costs ~0.25 ms of CPU on this machine, as much"
        " as a poll's HTTP. See docs/benchmarks.md."
    )
    if floor:
        notes.append(
            "Where the CPU per poll goes: the no-HTTP row is the trigger and the event loop alone; the plain"
            " GET rows are the HTTP client alone (no trigger, hook or parsing). On httpx's default transport the"
            " cost per request grows with the connections in its pool (httpcore re-checks every pooled"
            " connection on each request); the hook's async client sends through aiohttp instead"
            " (_transport/aio.py: aiohttp's C parser and pool behind httpx's transport interface), whose cost"
            " does not grow with the pool."
            f" The hook allows {hook_in_flight_default()} requests in flight by default, with a pool as large."
        )
    for run in runs:
        if run["server_stats"]:
            s = run["server_stats"]
            notes.append(
                f"fixed server during the {run['variant']}{' burst' if run['burst'] else ''}"
                f"{' (httpx transport)' if run['transport'] != 'aiohttp' else ''} run:"
                f" {s['requests']} requests on {s['connections']} connections, server CPU {s['server_cpu_s']:.2f} s"
            )
        if run["errors_sample"]:
            notes.append(f"{run['server']}/{run['variant']} errors (sample): {run['errors_sample'][:3]}")
    return {
        "name": "triggerer",
        "title": f"Triggerer scale: {args.n} triggers in one event loop",
        "smoke": args.smoke,
        "columns": [
            "server",
            "client",
            "first poll",
            "interval",
            "triggers x rounds",
            "polls",
            "failures",
            "CPU / poll",
            "x ours (CPU)",
            "RSS / trigger",
            "lateness p50",
            "lateness p99",
            "wall",
        ],
        "rows": rows,
        "targets": targets,
        "notes": notes,
        "data": {
            "runs": runs,
            "args": {k: v for k, v in vars(args).items() if k not in ("json",)},
            "versions": package_versions(
                python, ["httpx", "httpcore", "aiohttp", "apache-airflow", "airflow-provider-together"]
            ),
            "timestamp": time.time(),
        },
    }
