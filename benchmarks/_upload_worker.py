"""
One upload contender in its own process: ``ours`` (TogetherHook.upload_file) or ``sdk`` (together 3.1.1).

Times the upload call alone (imports and client construction excluded: they are the import benchmark's
business) and reports the RSS growth during the upload (VmHWM reset via ``/proc/self/clear_refs`` just
before, minus VmRSS then). The parent also records the process's whole peak RSS from ``wait4``.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from _procmem import reset_peak, status_kb


def _sha256_seconds(path: Path) -> float:
    """How long the checksum alone takes here (both ours and the SDK must hash before the PUT)."""
    t0 = time.perf_counter()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(4 << 20):
            digest.update(block)
    return time.perf_counter() - t0


def upload_ours(
    path: Path, base_url: str, api_key: str, threshold: int | None, part_size: int | None
) -> dict:
    os.environ["AIRFLOW_CONN_TOGETHER_DEFAULT"] = json.dumps(
        {"conn_type": "together", "password": api_key, "host": base_url, "extra": {"request_timeout": 600}}
    )
    from airflow_provider_together.hooks import TogetherHook

    options = {"multipart_threshold": threshold, "part_size": part_size}
    hook = TogetherHook(**{k: v for k, v in options.items() if v is not None})
    return _measured(lambda: hook.upload_file(path, purpose="fine-tune").id)


def upload_sdk(path: Path, base_url: str, api_key: str) -> dict:
    from together import Together

    # The v3 SDK puts /v1 in every path, so its base URL is the server root.
    client = Together(api_key=api_key, base_url=base_url.removesuffix("/v1"), max_retries=0, timeout=600)
    return _measured(lambda: client.files.upload(file=path, purpose="fine-tune", check=False).id)


def _measured(upload: Callable[[], str]) -> dict:
    """Run ``upload`` (returns the file id) alone in the measured window: time, CPU, RSS growth."""
    rss0 = status_kb("VmRSS")
    reset_peak()
    t0, cpu0 = time.perf_counter(), time.process_time()
    file_id = upload()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "rss_before_kb": rss0,
        "hwm_kb": status_kb("VmHWM"),
        "file_id": file_id,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("contender", choices=["ours", "sdk"])
    parser.add_argument("--file", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--multipart-threshold", type=int)
    parser.add_argument("--part-size", type=int)
    parser.add_argument("--hash-seconds", action="store_true")
    args = parser.parse_args()
    path = Path(args.file)
    if args.contender == "ours":
        out = upload_ours(path, args.base_url, args.api_key, args.multipart_threshold, args.part_size)
    else:
        out = upload_sdk(path, args.base_url, args.api_key)
    if args.hash_seconds:
        out["sha256_s"] = _sha256_seconds(path)
    out["size"] = path.stat().st_size
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
