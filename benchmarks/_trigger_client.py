"""
One triggerer-like client process: N fine-tune triggers in one asyncio loop, as Airflow's triggerer runs them.

Like ``TriggerRunner.create_triggers`` / ``run_trigger``: each trigger is serialized, re-created from its
classpath and kwargs, and run as its own task (``greenback.ensure_portal()``, then ``async for event in
trigger.run()``, then ``cleanup()``); events are collected. The server runs in another process, so this
process's CPU time is the client's alone.

Measured window: from the moment the tasks are created until every trigger has fired (or, with
``--stop-after-polls``, until every trigger has polled that often, when the rest are cancelled the way a
triggerer shutdown cancels them). Prints one JSON line with the raw figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import logging
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procmem import reset_peak, status_kb


def _job_ids(args: argparse.Namespace) -> list[str]:
    if args.ids_file:
        return list(json.loads(Path(args.ids_file).read_text()))[: args.n]
    return [f"{args.id_prefix}{i:05d}" for i in range(args.n)]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run_trigger(trigger: object, events: list[dict], errors: list[str]) -> None:
    import greenback

    await greenback.ensure_portal()
    try:
        async for event in trigger.run():  # type: ignore[attr-defined]
            events.append(event.payload)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the benchmark counts it as a failure; the triggerer would log it
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        await trigger.cleanup()  # type: ignore[attr-defined]


async def _main(args: argparse.Namespace) -> dict:
    import _bench_triggers as bt

    ids = _job_ids(args)
    if args.variant == "null":  # before the RSS baseline: canned server answers are not client memory
        bt.prebuild_null_bodies(ids, args.rounds)
    gc.collect()
    reset_peak()  # VmHWM := VmRSS, so the peak read below is this run's
    rss0 = status_kb("VmRSS")

    cls = bt.VARIANTS[args.variant]
    bt.NULL_ROUNDS[0] = args.rounds
    triggers = []
    for job_id in ids:
        # Everything else at the trigger's defaults (retries of failed polls included), as an operator
        # would defer it; first_poll_jitter only when the run asks for a burst.
        options = {} if args.jitter is None else {"first_poll_jitter": args.jitter}
        classpath, kwargs = cls(job_id=job_id, poll_interval=args.interval, **options).serialize()
        module, _, name = classpath.rpartition(".")
        triggers.append(getattr(importlib.import_module(module), name)(**kwargs))

    events: list[dict] = []
    errors: list[str] = []
    cpu0 = _cpu()
    t0 = time.perf_counter()
    # No polling loop of our own (its CPU would count as the client's): the hook sets an event once every
    # job has polled --stop-after-polls times; gathering the tasks ends the run otherwise.
    bt.STOP.arm(len(ids), args.stop_after_polls)
    tasks = [asyncio.create_task(_run_trigger(t, events, errors)) for t in triggers]
    everything = asyncio.gather(*tasks, return_exceptions=True)
    stop = asyncio.ensure_future(bt.STOP.event.wait())
    finished, _ = await asyncio.wait(
        {everything, stop}, timeout=args.deadline, return_when=asyncio.FIRST_COMPLETED
    )
    stopped_early = everything not in finished
    if stopped_early:
        if stop not in finished:
            running = sum(not task.done() for task in tasks)
            errors.append(f"deadline of {args.deadline} s passed with {running} triggers still running")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    stop.cancel()
    stopped_early = stopped_early and stop in finished
    elapsed = time.perf_counter() - t0
    cpu = _cpu() - cpu0
    hwm = status_kb("VmHWM")

    polls_done = [p for p in bt.POLLS if not p.cancelled]
    by_job: dict[str, list] = defaultdict(list)
    for poll in polls_done:
        by_job[poll.job_id].append(poll)
    lateness: list[float] = []
    wake_lag: list[float] = []
    for polls in by_job.values():
        polls.sort(key=lambda p: p.start)
        # The first poll is due when the trigger starts (no jitter); each later one an interval after the
        # previous answer, which is when the trigger goes to sleep.
        # With a random first-poll delay the first poll's due time is unknown: only later polls count.
        if args.jitter == 0:
            lateness.append(polls[0].end - t0)
        for prev, cur in zip(polls, polls[1:], strict=False):
            due = prev.end + args.interval
            lateness.append(cur.end - due)
            wake_lag.append(cur.start - due)
    statuses: dict[str, int] = defaultdict(int)
    for event in events:
        statuses[str(event.get("status"))] += 1
    return {
        "variant": args.variant,
        "n": len(ids),
        "interval": args.interval,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "polls": len(polls_done),
        "polls_cancelled": len(bt.POLLS) - len(polls_done),
        "poll_errors": [p.error for p in polls_done if p.error][:5],
        "poll_error_count": sum(1 for p in polls_done if p.error),
        "naive_requests": bt.NAIVE_REQUESTS[0],
        "events": len(events),
        "event_statuses": dict(statuses),
        "task_errors": errors[:5],
        "task_error_count": len(errors),
        "stopped_early": stopped_early,
        "rss_baseline_kb": rss0,
        "rss_peak_kb": hwm,
        "lateness_s": lateness,
        "wake_lag_s": wake_lag,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=["ours", "naive", "null"], required=True)
    parser.add_argument("--rounds", type=int, default=3, help="null variant: polls until a job completes")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=6.0)
    parser.add_argument(
        "--jitter", type=float, default=None, help="first_poll_jitter (default: the trigger's)"
    )
    parser.add_argument("--id-prefix", default="ft-bench-")
    parser.add_argument("--ids-file", help="JSON list of job ids that exist at the server")
    parser.add_argument("--stop-after-polls", type=int, default=0)
    parser.add_argument("--deadline", type=float, default=300.0)
    parser.add_argument("--profile", help="write a cProfile of the run here (to find where client CPU goes)")
    args = parser.parse_args()
    # The triggerer logs each trigger's lines; keep that cost but send it nowhere visible.
    logging.basicConfig(level=logging.INFO, handlers=[logging.NullHandler()])
    # Import everything the triggers need before the baseline is taken (the triggerer has it loaded too).
    import _bench_triggers  # noqa: F401
    import greenback  # noqa: F401

    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        result = profiler.runcall(asyncio.run, _main(args))
        profiler.dump_stats(args.profile)
    else:
        result = asyncio.run(_main(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
