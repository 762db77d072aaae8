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
    messages: list[dict[str, object]] = []
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


_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a term up in the team wiki.",
        "parameters": {"type": "object", "properties": {"term": {"type": "string"}}, "required": ["term"]},
    },
}


def _rich_sample(rng: random.Random) -> dict[str, object]:
    """A sample using the features the v3 API accepts: weights, a tool round, reasoning."""
    sample = _sample(rng)
    messages: list[dict[str, object]] = sample["messages"]  # type: ignore[assignment]
    if rng.random() < 0.5:
        for message in messages:
            message["weight"] = 1 if message["role"] == "assistant" else 0
    if rng.random() < 0.3:
        sample["weight"] = round(rng.uniform(0.2, 2.0), 2)
    if rng.random() < 0.2:
        call = {"id": f"call_{rng.randrange(10**6)}", "type": "function"}
        call["function"] = {"name": "lookup", "arguments": json.dumps({"term": rng.choice(_WORDS)})}
        at = messages.index(next(m for m in messages if m["role"] == "user")) + 1
        messages[at:at] = [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": _sentence(rng, 5, 15)},
        ]
        for message in messages[at : at + 2]:
            if "weight" in messages[0]:
                message["weight"] = 1 if message["role"] == "assistant" else 0
        sample["tools"] = [_TOOL]
    if rng.random() < 0.1:
        last = messages[-1]
        last["reasoning"] = _sentence(rng, 8, 30)
    return sample


def conversation_file(size_mb: float, *, seed: int = 20261126, rich: bool = False) -> Path:
    """Return the path of a conversational JSONL file of about ``size_mb`` MiB, generating it if needed.

    :param size_mb: target size in MiB (the file ends at the first line past it).
    :param seed: random seed; the default is what the published figures use.
    :param rich: use message and sample weights, tool rounds and reasoning in a share of the samples.
    """
    WORK.mkdir(parents=True, exist_ok=True)
    kind = "conversation-rich" if rich else "conversation"
    path = WORK / f"{kind}-{size_mb:g}mb-s{seed}-v{_VERSION}.jsonl"
    if path.exists():
        return path
    rng = random.Random(seed)
    target = int(size_mb * (1 << 20))
    # A private partial name, renamed atomically: two benchmarks generating the same file cannot collide.
    partial = path.with_suffix(f".{os.getpid()}.partial")
    written = 0
    make = _rich_sample if rich else _sample
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with partial.open("w", encoding="utf-8") as out:
        while written < target:
            chunk = "".join(dumps(make(rng)) + "\n" for _ in range(1000))
            out.write(chunk)
            written += len(chunk.encode())
    os.replace(partial, path)
    return path


if __name__ == "__main__":
    import sys

    print(conversation_file(float(sys.argv[1]) if len(sys.argv) > 1 else 200))
