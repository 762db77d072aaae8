"""Helpers for the emulator's own tests: sample data, the upload dance, bounded polling."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import httpx


def conversation_lines(n: int = 40) -> bytes:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": f"answer {i}"},
            ]
        }
        for i in range(n)
    ]
    return ("\n".join(json.dumps(row) for row in rows) + "\n").encode()


def preference_lines(n: int = 10) -> bytes:
    rows = [
        {
            "input": {"messages": [{"role": "user", "content": f"q{i}"}]},
            "preferred_output": [{"role": "assistant", "content": "good"}],
            "non_preferred_output": [{"role": "assistant", "content": "bad"}],
        }
        for i in range(n)
    ]
    return ("\n".join(json.dumps(row) for row in rows) + "\n").encode()


def upload(api: httpx.Client, data: bytes, name: str = "train.jsonl", purpose: str = "fine-tune") -> str:
    """Run the v3 upload dance; return the file id (not waiting for validation)."""
    form = {
        "purpose": purpose,
        "file_name": name,
        "file_type": name.rsplit(".", 1)[-1],
        "checksum": hashlib.sha256(data).hexdigest(),
    }
    answer = api.post("/files", data=form, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    file_id = answer.headers["X-Together-File-Id"]
    put = httpx.put(answer.headers["Location"], content=data)
    assert put.status_code == 200, put.text
    assert api.post(f"/files/{file_id}/preprocess").status_code == 200
    return file_id


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll ``check`` until it returns a truthy value (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


def ready_file(api: httpx.Client, data: bytes | None = None, name: str = "train.jsonl") -> str:
    """Upload and wait until the file is COMPLETED."""
    file_id = upload(api, data or conversation_lines(), name)
    wait_for(lambda: api.get(f"/files/{file_id}").json()["processing_status"] == "COMPLETED")
    return file_id


def wait_status(api: httpx.Client, job_id: str, statuses: set[str], timeout: float = 20.0) -> dict[str, Any]:
    """Poll a job until its status is in ``statuses``; return the job."""

    def check() -> dict[str, Any] | None:
        job = api.get(f"/fine-tunes/{job_id}").json()
        return job if job["status"] in statuses else None

    result: dict[str, Any] = wait_for(check, timeout)
    return result
