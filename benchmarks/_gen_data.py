"""Deterministic synthetic training data for the benchmarks (shared by the checker and upload benchmarks).

``conversation_file(size_mb)`` writes, once, a JSONL file of multi-turn chat samples of about ``size_mb``
MiB under ``benchmarks/.work/`` and returns its path; the same size always produces the same bytes, so
every contender in every run reads an identical file. The samples are shaped like real SFT data: an
optional system prompt, one to four user/assistant turns, and about 1.1 kB per line (the 200 MB file of
the issue had 177,768 lines).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

WORK = Path(__file__).resolve().parent / ".work"
_VERSION = 2  # bump when the generated content changes, so cached files are rebuilt
_WORDS = (
    "the model data training loss token batch learning rate epoch gradient checkpoint adapter weight layer "
    "attention query answer question user assistant system prompt context window sample format valid file "
    "upload server check line message role content tool call result reason step job pipeline airflow task "
    "schedule retry status event price credit limit size memory stream block decode parse json schema field"
).split()


def _sentence(rng: random.Random, low: int, high: int) -> str:
    words = rng.choices(_WORDS, k=rng.randint(low, high))
    return " ".join(words).capitalize() + rng.choice((".", "?", "!", "."))


def _sample(rng: random.Random) -> dict[str, object]:
    messages: list[dict[str, str]] = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": _sentence(rng, 8, 20)})
    for _ in range(rng.randint(1, 4)):
        messages.append(
            {"role": "user", "content": " ".join(_sentence(rng, 5, 18) for _ in range(rng.randint(1, 3)))}
        )
        messages.append(
            {
                "role": "assistant",
                "content": " ".join(_sentence(rng, 6, 22) for _ in range(rng.randint(1, 4))),
            }
        )
    return {"messages": messages}


def conversation_file(size_mb: float, *, seed: int = 20261126) -> Path:
    """Return the path of a conversational JSONL file of about ``size_mb`` MiB, generating it if needed.

    :param size_mb: target size in MiB (the file ends at the first line past it).
    :param seed: random seed; the default is what the published figures use.
    """
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"conversation-{size_mb:g}mb-s{seed}-v{_VERSION}.jsonl"
    if path.exists():
        return path
    rng = random.Random(seed)
    target = int(size_mb * (1 << 20))
    # A private partial name, renamed atomically: two benchmarks generating the same file cannot collide.
    partial = path.with_suffix(f".{os.getpid()}.partial")
    written = 0
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with partial.open("w", encoding="utf-8") as out:
        while written < target:
            chunk = "".join(dumps(_sample(rng)) + "\n" for _ in range(1000))
            out.write(chunk)
            written += len(chunk.encode())
    os.replace(partial, path)
    return path


if __name__ == "__main__":
    import sys

    print(conversation_file(float(sys.argv[1]) if len(sys.argv) > 1 else 200))
