"""
``GET /finetune/download``: a small but real ``.tar.gz`` per job and checkpoint, served with Range support
(the v3 SDK first asks for ``bytes=0-1`` to learn the size, then resumes with ``bytes=N-`` after errors).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from functools import lru_cache

from airflow_provider_together.emulator.errors import APIError

__all__ = ["build_archive", "parse_range"]


@lru_cache(maxsize=64)
def build_archive(job_id: str, output_name: str, model: str, variant: str, step: int) -> bytes:
    """
    Build the archive of one checkpoint: a config, a README and deterministic pseudo-weights.

    The bytes depend only on the arguments, so repeated and resumed downloads see the same file.
    """
    seed = hashlib.sha256(f"{job_id}:{variant}:{step}".encode()).digest()
    weights = (seed * 2048)[: 64 * 1024]
    files = {
        "config.json": json.dumps(
            {
                "base_model": model,
                "fine_tune_job": job_id,
                "model_output_name": output_name,
                "checkpoint": variant,
                "step": step,
            },
            indent=2,
        ).encode(),
        "README.md": f"# {output_name}\n\nFine-tuned from {model} by the Together emulator (job {job_id}).\n".encode(),
        ("adapter_model.safetensors" if variant == "adapter" else "model.safetensors"): weights,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{output_name.split('/')[-1]}/{name}")
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """
    Parse a single ``Range: bytes=...`` header into an inclusive ``(start, end)``; ``None`` means the whole body.

    Multiple ranges are not supported (the SDKs never send them); an unsatisfiable range raises the 416.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            start, end = max(0, size - int(last)), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    if start >= size or start > end:
        raise APIError(
            416,
            f"Requested range {spec} not satisfiable for {size} bytes",
            param="Range",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end
