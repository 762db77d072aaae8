"""
Emulator helpers for the benchmarks: start one, fill it with real jobs, watch uploads on the wire.

The emulator is started through its documented CLI (``python -m airflow_provider_together.emulator``, base
URL on the first stdout line) as its own process, so its CPU is never the client's. Jobs are created
through the public API exactly as a user would (upload a training file, wait until it is processed,
``POST /v1/fine-tunes``), so the triggers poll jobs the emulator really tracks.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import airflow_env, python_for_project

if TYPE_CHECKING:
    from collections.abc import Iterator

MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"


@dataclass
class Emu:
    root: str
    base_url: str
    api_key: str
    pid: int
    port: int


@contextmanager
def emulator(api_key: str, *extra_args: str) -> Iterator[Emu]:
    """Run the emulator on a free loopback port for the duration of the block."""
    proc = subprocess.Popen(
        [
            python_for_project(),
            "-m",
            "airflow_provider_together.emulator",
            "--port",
            "0",
            "--api-key",
            api_key,
            *extra_args,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=airflow_env(),
    )
    try:
        assert proc.stdout is not None
        root = proc.stdout.readline().strip()
        if not root.startswith("http"):
            raise RuntimeError(f"emulator did not start (exit {proc.poll()})")
        # Keep draining its stdout so a chatty emulator can never block on a full pipe.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield Emu(
            root=root, base_url=root + "/v1", api_key=api_key, pid=proc.pid, port=int(root.rsplit(":", 1)[1])
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def upload_training_file(emu: Emu, path: Path) -> str:
    """Upload ``path`` with the plain v3 flow and wait until the emulator has validated it."""
    import hashlib

    import httpx

    headers = {"Authorization": f"Bearer {emu.api_key}"}
    with httpx.Client(base_url=emu.base_url, headers=headers, timeout=60) as client:
        data = path.read_bytes()
        form = {
            "purpose": "fine-tune",
            "file_name": path.name,
            "file_type": "jsonl",
            "checksum": hashlib.sha256(data).hexdigest(),
        }
        start = client.post("/files", files={k: (None, v) for k, v in form.items()}, follow_redirects=False)
        if start.status_code == 409:
            return str(start.json().get("file_id") or start.json()["error"]["file_id"])
        if start.status_code != 302:
            raise RuntimeError(f"POST /files answered {start.status_code}: {start.text[:300]}")
        file_id = start.headers["x-together-file-id"]
        httpx.put(start.headers["location"], content=data, timeout=60).raise_for_status()
        client.post(f"/files/{file_id}/preprocess").raise_for_status()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = client.get(f"/files/{file_id}").json().get("processing_status")
            if status == "COMPLETED":
                return file_id
            if status in ("FAILED", "INVALID_FORMAT"):
                raise RuntimeError(f"training file rejected by the emulator: {status}")
            time.sleep(0.1)
        raise RuntimeError("training file not processed within 60 s")


def create_jobs(emu: Emu, n: int, work: Path) -> list[str]:
    """Create ``n`` fine-tuning jobs through the API (sequentially: a create is never resent)."""
    import httpx
    from _gen_data import conversation_file

    file_id = upload_training_file(emu, conversation_file(1))
    ids = []
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    with httpx.Client(base_url=emu.base_url, headers=headers, timeout=60) as client:
        for i in range(n):
            resp = client.post(
                "/fine-tunes", json={"model": MODEL, "training_file": file_id, "suffix": f"bench-{i}"}
            )
            if resp.status_code != 200:
                raise RuntimeError(f"POST /fine-tunes answered {resp.status_code}: {resp.text[:300]}")
            ids.append(resp.json()["id"])
    return ids


def admin(emu: Emu, method: str, path: str, **kwargs: Any) -> Any:
    import httpx

    resp = httpx.request(method, f"{emu.root}/_emulator{path}", timeout=30, **kwargs)
    resp.raise_for_status()
    return resp.json()


# With a state filter ss drops the State column: "Recv-Q Send-Q local:port peer:port".
_SOCKET = re.compile(r"^\d+\s+\d+\s+(\S+):(\d+)\s+(\S+):(\d+)")
_ACKED = re.compile(r"bytes_acked:(\d+)")


class WireWatcher:
    """
    Sample, every ``period`` s, how many client connections to ``port`` are moving data (``ss -ti``).

    A socket counts as busy in a sample when its ``bytes_acked`` grew by at least ``min_bytes`` since the
    previous sample. The most busy sockets in one sample is how many uploads really were in flight at once,
    seen from the kernel, whatever the client or server claim.
    """

    def __init__(self, port: int, period: float = 0.05, min_bytes: int = 256 * 1024) -> None:
        self.port = port
        self.period = period
        self.min_bytes = min_bytes
        self.max_busy = 0
        self.samples = 0
        self.sockets: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WireWatcher:
        # Without ss (iproute2) nothing is sampled and max_busy stays 0: "not observed", never a guess.
        if shutil.which("ss"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _acked(self) -> dict[int, int]:
        out = subprocess.run(
            ["ss", "-tinH", "state", "established", f"( dport = :{self.port} )"],
            capture_output=True,
            text=True,
        ).stdout
        acked: dict[int, int] = {}
        local_port = None
        for line in out.splitlines():
            match = _SOCKET.match(line)
            if match:
                local_port = int(match.group(2))
                continue
            found = _ACKED.search(line)
            if found and local_port is not None:
                acked[local_port] = int(found.group(1))
                local_port = None
        return acked

    def _run(self) -> None:
        previous: dict[int, int] = {}
        while not self._stop.is_set():
            current = self._acked()
            busy = [p for p, n in current.items() if n - previous.get(p, 0) >= self.min_bytes]
            self.sockets.update(busy)
            self.max_busy = max(self.max_busy, len(busy))
            self.samples += 1
            previous = current
            time.sleep(self.period)
