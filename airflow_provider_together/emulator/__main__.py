"""
``python -m airflow_provider_together.emulator``: run the Together emulator.

The first line of stdout is the base URL (``http://127.0.0.1:PORT``; the API lives under ``/v1``), printed once
the server accepts connections. SIGTERM or Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from airflow_provider_together.emulator.timeline import Scenario

__all__ = ["main", "parser"]

DEFAULT_API_KEY = "emulator-key"


def parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(
        prog="python -m airflow_provider_together.emulator",
        description="A local Together-compatible files and fine-tuning API for tests and demos.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: loopback only)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: a free port, printed on start)")
    p.add_argument(
        "--api-key",
        default=os.environ.get("TOGETHER_EMULATOR_API_KEY", DEFAULT_API_KEY),
        help="the accepted Bearer key (default $TOGETHER_EMULATOR_API_KEY or 'emulator-key')",
    )
    p.add_argument(
        "--speed", type=float, default=1.0, help="virtual seconds per second (100 = jobs 100x faster)"
    )
    p.add_argument(
        "--state", type=Path, default=None, help="SQLite file: keep files and jobs across restarts"
    )
    p.add_argument("--seed", type=int, default=None, help="seed for probabilistic faults")
    p.add_argument("--credit-limit", type=float, default=100.0, help="user_limit of price estimates, in USD")
    p.add_argument("--min-charge", type=float, default=4.0, help="minimum charge per job, in USD")
    p.add_argument(
        "--multipart-threshold", type=int, default=5 * 2**30, help="largest single-PUT upload, bytes"
    )
    p.add_argument(
        "--min-part-size", type=int, default=5 * 2**20, help="smallest multipart part (but the last), bytes"
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ROUTE=KIND[:STATUS][,k=v...]",
        help="inject a fault, e.g. 'POST /v1/fine-tunes=ambiguous' or 'GET /v1/*=status:429,count=3,retry_after=1' "
        "(kinds: status, latency, drop, ambiguous; options: rate, count, latency_ms, retry_after, message)",
    )
    p.add_argument(
        "--scenario",
        choices=[s.value for s in Scenario],
        default=Scenario.COMPLETE.value,
        help="how every job ends unless an admin rule says otherwise",
    )
    p.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.add_argument("--access-log", action="store_true", help="log every request (slower)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, bind, serve until stopped; return the exit code."""
    args = parser().parse_args(argv)
    if args.speed <= 0:
        parser().error("--speed must be > 0")
    # Heavy imports after argument parsing, so --help is instant.
    from airflow_provider_together.emulator.faults import parse_fault_spec
    from airflow_provider_together.emulator.server import bind, serve
    from airflow_provider_together.emulator.state import EmulatorState, Settings

    try:
        faults = [parse_fault_spec(text) for text in args.fault]
    except ValueError as exc:
        parser().error(str(exc))
    settings = Settings(
        api_key=args.api_key,
        speed=args.speed,
        credit_limit_usd=args.credit_limit,
        min_charge_usd=args.min_charge,
        multipart_threshold_bytes=args.multipart_threshold,
        min_part_size_bytes=args.min_part_size,
    )
    store = None
    if args.state is not None:
        from airflow_provider_together.emulator.persistence import Persistence

        store = Persistence(args.state)
    state = EmulatorState(settings, store, seed=args.seed)
    state.faults.rules.extend(faults)
    state.faults.default_scenario = Scenario(args.scenario)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(f"cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        state.close()
        return 2
    serve(state, sock, log_level=args.log_level, access_log=args.access_log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
