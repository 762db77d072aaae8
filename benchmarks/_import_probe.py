"""
Measure the cost of importing modules *after* ``airflow.sdk``; runs inside the interpreter being measured.

Two modes, both giving every sample a process that has never imported the measured module:

* fork (default): this process imports ``airflow.sdk`` once, then forks one child per sample; the child
  imports the module and reports. Saves the ~3 s Airflow start-up per sample, so 10+ samples of 8 modules
  fit the ``make bench`` budget. A forked child is fresh for the measured import: nothing of it is in
  ``sys.modules`` and the page cache is as warm as for an exec'd process after the first sample.
* ``--single MOD``: a brand-new interpreter imports ``airflow.sdk`` then MOD (``bench_import.py --exec``
  uses it to cross-check the fork figures).

Peak memory: ``/proc/self/clear_refs`` ``5`` resets VmHWM to the current RSS, so VmHWM after the import
minus VmRSS before it is the import's own peak, unpolluted by whatever the parent peaked at earlier.
Prints one JSON object per sample, one per line.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import random
import sys
import time

from _procmem import reset_peak, status_kb


def measure(module: str) -> dict[str, object]:
    """Import ``module`` here and now; report time, peak-RSS growth and modules pulled in."""
    reset = reset_peak()
    rss0 = status_kb("VmRSS")
    hwm0 = status_kb("VmHWM")
    n0 = len(sys.modules)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    error = None
    try:
        importlib.import_module(module)
    except Exception as exc:  # a contender that is not installed is a row, not a crash
        error = f"{type(exc).__name__}: {exc}"
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - t0
    hwm1 = status_kb("VmHWM")
    return {
        "module": module,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_kb": hwm1 - (rss0 if reset else hwm0),
        "modules_added": len(sys.modules) - n0,
        "error": error,
    }


def _fork_sample(module: str) -> dict[str, object]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: measure, report through the pipe, leave without running atexit handlers
        os.close(read_fd)
        try:
            payload = json.dumps(measure(module)).encode()
        except BaseException as exc:  # report, never let the child fall back into the parent's loop
            payload = json.dumps({"module": module, "error": repr(exc)}).encode()
        os.write(write_fd, payload)
        os.close(write_fd)
        os._exit(0)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--modules", default="")
    parser.add_argument("--single", help="measure this one module in this process and exit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    t0 = time.perf_counter()
    import airflow.sdk  # noqa: F401  - the baseline every contender is measured on top of

    base = {
        "baseline": "airflow.sdk",
        "baseline_s": time.perf_counter() - t0,
        "baseline_rss_kb": status_kb("VmRSS"),
    }
    if args.single:
        print(json.dumps({**measure(args.single), **base}), flush=True)
        return
    print(json.dumps(base), flush=True)
    # Keep the collector off the parent's objects in the children: without this, the first collection in
    # a child writes to every tracked object's header and copies those pages (copy-on-write), a cost a
    # fresh interpreter does not pay.
    gc.collect()
    gc.freeze()
    modules = [m for m in args.modules.split(",") if m]
    rng = random.Random(args.seed)
    for run in range(args.runs):
        # A fresh order each round so no contender always runs first (cold page cache) or last.
        order = modules[:]
        rng.shuffle(order)
        for module in order:
            print(json.dumps({**_fork_sample(module), "run": run}), flush=True)


if __name__ == "__main__":
    main()
