"""
Time from task start to the first upload byte, for a 1 GiB training file: one read before the upload.

Before the first byte of a local training file leaves the machine, the fine-tune operator must check it
(the training-file checker) and hash it (the upload's SHA-256). Two contenders, side by side in one process,
against one emulator that is reset before every run (so a duplicate checksum never short-cuts an upload):

* ``before`` (0.1.0): what the operator used to do: ``check_file``, then a separate SHA-256 pass for the
  "already uploaded?" memory, then ``upload_file``, whose file inspection hashed the file a third time;
* ``after`` (now): ``TogetherFineTuneOperator.execute`` itself: the checker computes the SHA-256 in the same
  streaming read, the model limits and the data's kind are checked, and the hook is handed the digest.

The clock starts when the contender starts and stops when the upload's body iterator hands its first
chunk to httpx; the run then stops (the rest of the transfer is the upload benchmark's business). Each
figure is the best of ``--reps`` interleaved runs, with the file in the page cache for both. The verdict is
on CPU time (the machine is shared; wall time is shown beside it): the checker itself dominates both
contenders, so the saving is the two SHA-256 passes it no longer needs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import add_common_args, fmt_ratio, work_dir, write_result

API_KEY = "bench-key-0123456789abcdef"
MIB = 1 << 20


class FirstByte(BaseException):
    """Raised from the upload body at its first chunk; a BaseException so no retry loop catches it."""


def stop_at_first_byte() -> dict[str, float]:
    """Make the upload body raise :class:`FirstByte` at its first chunk; return where the time is noted."""
    from airflow_provider_together._transport import drivers

    seen: dict[str, float] = {}
    real = drivers.file_chunks

    def first_chunk_then_stop(region: Any) -> Any:
        for _chunk in real(region):
            seen["t"] = time.perf_counter()
            raise FirstByte
        yield b""  # pragma: no cover (a generator, like the real one)

    drivers.file_chunks = first_chunk_then_stop  # type: ignore[assignment]
    return seen


def before(path: Path) -> None:
    """0.1.0's order: check, hash for the upload memory, then upload (whose inspection hashes again)."""
    from airflow_provider_together.datasets import check_file
    from airflow_provider_together.hooks import TogetherHook

    report = check_file(path)
    assert report.ok, report.summary()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(MIB):
            digest.update(chunk)
    TogetherHook().upload_file(path)


def after(path: Path) -> None:
    """The operator as shipped, from ``execute`` to the first upload byte."""
    from types import SimpleNamespace

    from airflow_provider_together.operators import TogetherFineTuneOperator

    ti = SimpleNamespace(
        dag_id="bench", run_id="r", task_id="ft", map_index=-1, try_number=1, start_date=None
    )
    op = TogetherFineTuneOperator(
        task_id="ft",
        training_file=str(path),
        model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        deferrable=False,
    )
    op.execute({"ti": ti})  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    add_common_args(parser)
    parser.add_argument("--size-mib", type=int, default=None, help="file size (default 1024, smoke 8)")
    parser.add_argument("--reps", type=int, default=None, help="runs per contender (default 3, smoke 1)")
    args = parser.parse_args(argv)
    size_mib = args.size_mib or (8 if args.smoke else 1024)
    reps = args.reps or (1 if args.smoke else 3)
    from _emulator_jobs import admin, emulator
    from bench_upload import make_file

    path = make_file(work_dir(args.work), size_mib)
    size = path.stat().st_size
    seen = stop_at_first_byte()
    contenders = {"before": before, "after": after}
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    with emulator(API_KEY) as emu:
        os.environ["AIRFLOW_CONN_TOGETHER_DEFAULT"] = json.dumps(
            {"conn_type": "together", "password": API_KEY, "host": emu.base_url}
        )
        with path.open("rb") as fh:  # warm the page cache so neither contender pays for the disk
            while fh.read(16 * MIB):
                pass
        warm = make_file(work_dir(args.work), 1)  # and the imports, so neither pays for them
        for contender in contenders.values():
            admin(emu, "POST", "/reset")
            try:
                contender(warm)
            except FirstByte:
                pass
        for rep in range(reps):
            names = list(contenders) if rep % 2 == 0 else list(reversed(contenders))
            for name in names:
                admin(emu, "POST", "/reset")
                seen.clear()
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    contenders[name](path)
                except FirstByte:
                    pass
                if "t" not in seen:
                    raise RuntimeError(f"{name}: the upload never started")
                elapsed = seen["t"] - t0
                best[name] = min(best.get(name, elapsed), elapsed)
                cpu[name] = min(cpu.get(name, float("inf")), time.process_time() - c0)
    ratio = best["before"] / best["after"]
    cpu_ratio = cpu["before"] / cpu["after"]
    rows = [
        [name, f"{best[name]:.2f} s", f"{cpu[name]:.2f} s", f"{size / MIB / best[name]:.0f} MiB/s"]
        for name in ("before", "after")
    ]
    return {
        "name": "first_byte",
        "title": f"Task start to first upload byte, {size / MIB / 1024:.3g} GiB file",
        "smoke": args.smoke,
        "columns": ["contender", "to first byte (best)", "CPU (best)", "file size / time"],
        "rows": rows,
        "targets": [
            {
                "target": "after needs less CPU than before to reach the first upload byte (one read, not three)",
                "value": f"{fmt_ratio(cpu_ratio)} less CPU ({cpu['before']:.2f} s -> {cpu['after']:.2f} s)",
                "met": cpu_ratio > 1.0,
            },
            {
                "target": "time to the first upload byte, before / after (wall time; load-sensitive)",
                "value": f"{fmt_ratio(ratio)} ({best['before']:.2f} s -> {best['after']:.2f} s)",
                "met": None,
            },
        ],
        "notes": [
            f"best of {reps} interleaved runs each, file in the page cache, emulator reset before each run",
            "before = 0.1.0's sequence (check_file, SHA-256 pass, upload_file hashing again); after = "
            "TogetherFineTuneOperator.execute as shipped (also fetches the model limits before uploading)",
        ],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    add_common_args(parser)
    known, _ = parser.parse_known_args()
    result = main(sys.argv[1:])
    write_result(known.json, result)
