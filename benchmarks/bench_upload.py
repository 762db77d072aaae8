"""
Upload throughput and memory: TogetherHook.upload_file next to the v3 SDK and curl, same bytes, same server.

A 2 GiB JSONL file (``_gen_data.conversation_file`` blocks, concatenated) goes to the emulator's upload
endpoint three ways, each contender in its own process, against one emulator process that is reset before
every upload (so a duplicate checksum never short-cuts an upload with a 409):

* ours: ``TogetherHook.upload_file`` (the whole v3 flow: sha256, ``POST /files``, PUT, preprocess);
* sdk: ``together==3.1.1`` ``client.files.upload(..., check=False)`` (the same flow; its local format check
  is off because the hook does not run one either);
* curl: ``curl -T`` PUT of the file to the presigned ``Location`` (obtained beforehand, untimed): the
  transfer alone, the ceiling any client can reach against this server.

Then ours again on the multipart path (threshold lowered so the 2 GiB file goes in parts), with the
kernel's socket table (``ss``) showing how many part PUTs moved data at the same time. Each figure is the best of
``--reps`` interleaved runs (the machine is shared; the best run is the least disturbed one).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    add_common_args,
    airflow_env,
    fmt_mb,
    fmt_ratio,
    last_json_line,
    package_versions,
    python_for_project,
    run_measured,
    work_dir,
    write_result,
)

API_KEY = "bench-key-0123456789abcdef"
MIB = 1 << 20
TARGET_VS_CURL = 0.8
TARGET_RSS_MB = 100.0


def make_file(work: Path, size_mib: int) -> Path:
    """A ``size_mib`` MiB JSONL training file made of repeated generated blocks (fast, deterministic)."""
    from _gen_data import conversation_file

    path = work / f"upload-{size_mib}mib.jsonl"
    if path.exists() and path.stat().st_size >= size_mib * MIB:
        return path
    block_mib = min(64, max(1, size_mib // 4))
    block = conversation_file(block_mib).read_bytes()
    target = size_mib * MIB
    partial = path.with_suffix(".partial")
    written = 0
    with partial.open("wb") as out:
        while written < target:
            out.write(block)
            written += len(block)
    partial.rename(path)
    return path


def sha256_of(path: Path) -> str:
    sidecar = path.with_suffix(".sha256")
    if sidecar.exists() and sidecar.stat().st_mtime >= path.stat().st_mtime:
        return sidecar.read_text().strip()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(4 * MIB):
            digest.update(block)
    sidecar.write_text(digest.hexdigest())
    return digest.hexdigest()


def run_curl(emu: Any, path: Path) -> dict[str, Any]:
    """Get an upload URL the way the SDKs do (untimed), then let curl PUT the bytes."""
    import httpx

    form = {"purpose": "fine-tune", "file_name": path.name, "file_type": "jsonl", "checksum": sha256_of(path)}
    with httpx.Client(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
    ) as client:
        start = client.post("/files", files={k: (None, v) for k, v in form.items()}, follow_redirects=False)
        if start.status_code != 302:
            raise RuntimeError(f"POST /files answered {start.status_code}: {start.text[:500]}")
        location, file_id = start.headers["location"], start.headers["x-together-file-id"]
        # "Expect:" off: curl would otherwise wait for a 100 Continue before sending the body.
        measured = run_measured(
            [
                "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-T", str(path),
                "-H", "Expect:", "-H", "Content-Type: application/octet-stream", location,
            ],
            timeout=900,
        )  # fmt: skip
        code, seconds = measured.stdout.split()
        if code != "200":
            raise RuntimeError(f"curl PUT answered {code}: {measured.stderr[-500:]}")
        done = client.post(f"/files/{file_id}/preprocess")
        done.raise_for_status()
    return {
        "seconds": float(seconds),
        "cpu_s": measured.cpu_s,
        "maxrss_kb": measured.maxrss_kb,
        "upload_rss_kb": measured.maxrss_kb,
        "file_id": file_id,
    }


def run_worker(python: str, contender: str, emu: Any, path: Path, **extra: Any) -> dict[str, Any]:
    cmd = [
        python, str(BENCH_DIR / "_upload_worker.py"), contender,
        "--file", str(path), "--base-url", emu.base_url, "--api-key", API_KEY,
    ]  # fmt: skip
    for key, value in extra.items():
        if value is True:
            cmd.append(f"--{key.replace('_', '-')}")
        elif value is not None and value is not False:
            cmd += [f"--{key.replace('_', '-')}", str(value)]
    measured = run_measured(cmd, env=airflow_env(), timeout=900)
    if measured.returncode != 0:
        raise RuntimeError(f"{contender} upload failed:\n{measured.stderr[-4000:]}")
    out = last_json_line(measured.stdout)
    out["maxrss_kb"] = measured.maxrss_kb
    out["upload_rss_kb"] = out["hwm_kb"] - out["rss_before_kb"]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    add_common_args(parser)
    parser.add_argument("--size-mib", type=int, default=None, help="file size (default 2048, smoke 20)")
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help="runs per contender, interleaved; the best counts (default 3, smoke 1)",
    )
    parser.add_argument(
        "--part-mib", type=int, default=None, help="multipart part size (default 256, smoke 6)"
    )
    args = parser.parse_args(argv)
    size_mib = args.size_mib or (20 if args.smoke else 2048)
    reps = args.reps or (1 if args.smoke else 3)
    part_mib = args.part_mib or (6 if args.smoke else 256)
    python = python_for_project()
    work = work_dir(args.work)
    path = make_file(work, size_mib)
    size = path.stat().st_size
    sha256_of(path)  # cached; also warms the page cache so the first contender reads from memory too

    from _emulator_jobs import WireWatcher, admin, emulator

    contenders = ["curl", "ours", "sdk"] if shutil.which("curl") else ["ours", "sdk"]
    samples: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders + ["ours-multipart"]}
    overlap: dict[str, Any] = {}
    with emulator(API_KEY) as emu:
        for rep in range(reps):
            # Each round starts with another contender: whoever runs right after a 2 GiB upload shares the
            # disk with its write-back, so a fixed order would hand that handicap to the same one each time.
            order = contenders[rep % len(contenders) :] + contenders[: rep % len(contenders)]
            # The multipart run checks a code path (and its concurrency), so once is enough.
            for contender in order + (["ours-multipart"] if rep == 0 else []):
                # Forget every file first: the same checksum would otherwise short-cut the upload with a 409.
                admin(emu, "POST", "/reset")
                os.sync()  # and start with no dirty pages of an earlier upload still being written back
                if contender == "curl":
                    samples[contender].append(run_curl(emu, path))
                elif contender == "ours-multipart":
                    with WireWatcher(emu.port, min_bytes=64 * 1024) as wire:
                        samples[contender].append(
                            run_worker(
                                python,
                                "ours",
                                emu,
                                path,
                                multipart_threshold=part_mib * MIB // 2,
                                part_size=part_mib * MIB,
                            )
                        )
                    routes = admin(emu, "GET", "/requests")["routes"]
                    parts = sum(v for k, v in routes.items() if k.startswith("PUT") and "parts" in k)
                    overlap = {
                        "parts": parts,
                        "max_concurrent": wire.max_busy,
                        "connections": len(wire.sockets),
                    }
                else:
                    samples[contender].append(
                        run_worker(python, contender, emu, path, hash_seconds=contender == "ours")
                    )

    best = {c: min(s, key=lambda x: x["seconds"]) for c, s in samples.items() if s}
    mbps = {c: size / MIB / b["seconds"] for c, b in best.items()}
    labels = {
        "curl": "curl -T (PUT only)",
        "ours": "TogetherHook.upload_file",
        "sdk": "together 3.1.1 files.upload",
        "ours-multipart": f"TogetherHook.upload_file, multipart ({part_mib} MiB parts)",
    }
    rows = []
    for contender, b in best.items():
        rows.append(
            [
                labels[contender],
                f"{b['seconds']:.2f} s",
                f"{mbps[contender]:.0f} MiB/s",
                fmt_ratio(mbps[contender] / mbps["curl"]) if "curl" in mbps else "n/a",
                fmt_ratio(mbps[contender] / mbps["sdk"]),
                f"{b['cpu_s']:.2f} s",
                fmt_mb(b["upload_rss_kb"]) if contender != "curl" else "-",
                fmt_mb(b["maxrss_kb"]),
            ]
        )
    ours = best["ours"]
    hash_s = float(ours.get("sha256_s", float("nan")))
    upload_rss_mb = max(best[c]["upload_rss_kb"] for c in ("ours", "ours-multipart")) / 1024
    targets = [
        {
            "target": f"ours >= {TARGET_VS_CURL}x curl's throughput",
            "value": fmt_ratio(mbps["ours"] / mbps["curl"]) if "curl" in mbps else "curl absent",
            "met": bool(mbps["ours"] / mbps["curl"] >= TARGET_VS_CURL) if "curl" in mbps else None,
        },
        {
            "target": "ours >= the SDK's throughput",
            "value": fmt_ratio(mbps["ours"] / mbps["sdk"]),
            "met": bool(mbps["ours"] >= mbps["sdk"]),
        },
        {
            "target": f"RSS growth during the upload <= {TARGET_RSS_MB:.0f} MB (single and multipart)",
            "value": f"{upload_rss_mb:.1f} MB for a {size / MIB:.0f} MiB file",
            "met": bool(upload_rss_mb <= TARGET_RSS_MB),
        },
        {
            "target": "multipart parts upload concurrently",
            "value": f"{overlap.get('max_concurrent', 0)} of {overlap.get('parts', 0)} part PUTs in flight at once",
            "met": bool(overlap.get("max_concurrent", 0) > 1),
        },
    ]
    notes = [
        f"File: {size / MIB:.0f} MiB JSONL, best of {reps} interleaved run(s) per contender, each round starting with"
        " the next contender, after os.sync() (multipart: one), the emulator reset"
        " before every upload; the file is in the page cache for every contender.",
        "Time: the upload call alone, in the contender's process (imports and client set-up excluded); for curl"
        " its own time_total of the PUT. Ours and the SDK also hash the file (sha256) before the PUT;"
        f" hashing alone takes {hash_s:.2f} s here, which curl does not pay: without it ours would move the"
        f" bytes at about {size / MIB / max(ours['seconds'] - hash_s, 1e-9):.0f} MiB/s.",
        "Client CPU: CPU time of the uploading process during the upload (hash included; for curl its whole"
        " process), the least load-sensitive figure here: throughput on this shared machine varies by up to"
        " 2x between runs of the same contender (every run is in the JSON).",
        "RSS growth: peak RSS during the upload minus RSS just before it (the Airflow worker already has Airflow"
        " loaded); process peak: the whole process under GNU time, Airflow import included for ours.",
        "Multipart: the emulator concatenates the parts into one file inside the `complete` call (a full copy"
        " of the file), and all parts arrive at one single-threaded server; both count in its time.",
    ]
    result = {
        "name": "upload",
        "title": f"Upload of a {size / MIB / 1024:.3g} GiB file to the emulator",
        "smoke": args.smoke,
        "columns": [
            "contender",
            "time",
            "throughput",
            "x curl",
            "x SDK",
            "client CPU",
            "RSS growth",
            "process peak RSS",
        ],
        "rows": rows,
        "targets": targets,
        "notes": notes,
        "data": {
            "size": size,
            "samples": samples,
            "overlap": overlap,
            "versions": package_versions(python, ["httpx", "together", "uvicorn", "fastapi", "h11"]),
            "timestamp": time.time(),
        },
    }
    write_result(args.json, result)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
