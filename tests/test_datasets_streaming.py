"""Streaming: the reader never holds more than a block plus one line, and block edges change nothing.

Memory is checked structurally (how much is read before the first lines come out, and the size of every
read), never by timing or by measuring the process.
"""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_together.datasets import check_file
from airflow_provider_together.datasets._jsonl import JsonlChecker
from airflow_provider_together.datasets._lines import iter_line_blocks
from airflow_provider_together.datasets._report import CheckReport


class RecordingStream(io.BytesIO):
    """A binary stream that records the size of every read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.reads.append(-1 if size is None else size)
        return super().read(size)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"a",
        b"a\n",
        b"\n\n",
        b"one\ntwo\nthree",
        b"x" * 50 + b"\n" + b"y" * 3 + b"\n\n" + b"z" * 40,
        b"\r\n".join([b"crlf"] * 5),
    ],
)
@pytest.mark.parametrize("block_size", [1, 2, 7, 64, 1 << 20])
def test_blocks_are_exactly_the_lines(data: bytes, block_size: int) -> None:
    lines = [line for block in iter_line_blocks(io.BytesIO(data), block_size) for line in block]
    expected = data.split(b"\n")
    if expected and expected[-1] == b"":
        expected.pop()
    assert lines == expected


def test_reader_is_lazy_and_reads_bounded_blocks() -> None:
    line = json.dumps({"text": "x" * 100}).encode() + b"\n"
    data = line * 10_000  # about 1.1 MB, 300 times the block size below
    stream = RecordingStream(data)
    blocks = iter_line_blocks(stream, block_size=4096)
    first = next(blocks)
    # Lines come out after one read: the file is not loaded before checking starts.
    assert stream.tell() <= 4096
    assert first
    assert sum(len(b) for b in blocks) + len(first) == 10_000
    assert max(stream.reads) == 4096


def test_long_line_spanning_many_blocks() -> None:
    long = b'{"text": "' + b"y" * 100_000 + b'"}'
    stream = RecordingStream(b'{"text": "a"}\n' + long + b"\n" + b'{"text": "b"}')
    blocks = list(iter_line_blocks(stream, block_size=1000))
    assert [line for block in blocks for line in block][1] == long
    assert max(stream.reads) == 1000


def _random_file(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    turn = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    lines = []
    for index in range(400):
        sample: dict[str, object] = {"messages": turn * rng.randint(1, 3)}
        roll = rng.random()
        if roll < 0.05:
            sample["messages"] = [{"role": "assistant", "content": "a"}]
        elif roll < 0.1:
            sample["extra"] = index
        elif roll < 0.12:
            lines.append("not json")
            continue
        elif roll < 0.15:
            lines.append("")
            continue
        lines.append(json.dumps(sample))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("block_size", [1, 13, 512, 4096])
def test_block_size_does_not_change_the_report(tmp_path: Path, block_size: int) -> None:
    path = tmp_path / "mixed.jsonl"
    _random_file(path, seed=block_size)
    reference = check_file(path, max_errors=1000)
    assert reference.errors  # the file has bad lines, so line numbering is exercised
    report = CheckReport(str(path), "fine-tune")
    JsonlChecker(report, 1000).run(str(path), block_size=block_size)
    report.file_size = reference.file_size
    report.file_type = reference.file_type
    assert report.to_dict() == reference.to_dict()


def test_import_is_cheap() -> None:
    code = (
        "import sys, airflow_provider_together.datasets as d; "
        "bad = [m for m in ('pyarrow', 'airflow', 'together', 'pydantic', 'httpx') if m in sys.modules]; "
        "print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


def test_checking_jsonl_does_not_import_pyarrow(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n')
    code = (
        "import sys; from airflow_provider_together.datasets import check_file; "
        f"assert check_file({str(path)!r}).ok; print('pyarrow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


# --- the fast path never accepts what the precise rules reject ------------------------------------------
_VALUES: list[object] = [None, True, 0, 1, 2, 0.5, 1.0, -1, "x", "", [], {}, ["x"], {"a": 1}]
_CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def _random_message(rng: random.Random) -> dict[str, object]:
    message: dict[str, object] = {
        "role": rng.choice(["system", "user", "assistant", "assistant", "tool", "bot"])
    }
    if rng.random() < 0.9:
        message["content"] = rng.choice(["hi", "hi", None, 3, [{"type": "text", "text": "t"}]])
    if rng.random() < 0.2:
        message["weight"] = rng.choice(_VALUES)
    if rng.random() < 0.2:
        message["tool_calls"] = rng.choice(
            [[_CALL], [], _CALL, [{"function": {"name": "f", "arguments": 1}}], None]
        )
    if rng.random() < 0.1:
        message[rng.choice(["reasoning", "reasoning_content"])] = rng.choice(["why", 1])
    if rng.random() < 0.1:
        message["tool_call_id"] = rng.choice(["c1", 1])
    if rng.random() < 0.03:
        message["name"] = "n"
    return message


def _random_sample(rng: random.Random) -> dict[str, object]:
    sample: dict[str, object] = {"messages": [_random_message(rng) for _ in range(rng.randint(1, 6))]}
    if rng.random() < 0.5:  # bias towards plausible orders so that many samples are valid
        sample["messages"] = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}] + (
            sample["messages"] if rng.random() < 0.5 else []
        )
    if rng.random() < 0.15:
        sample["weight"] = rng.choice(_VALUES)
    if rng.random() < 0.15:
        sample["tools"] = rng.choice(
            [
                [{"type": "function", "function": {"name": "f"}}],
                {},
                [{"type": "x", "function": {"name": "f"}}],
            ]
        )
    if rng.random() < 0.03:
        sample["text"] = "t"
    return sample


_PLAIN_HEAD = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
# Raises every message-level flag at once, so the rest of its block takes the letters-only shortcut.
_RICH_HEAD = {
    "messages": [
        {"role": "user", "content": "q", "weight": 0},
        {"role": "assistant", "content": None, "tool_calls": [_CALL]},
        {"role": "tool", "content": "r", "tool_call_id": "c1"},
        {"role": "assistant", "content": "a", "reasoning": "why"},
    ]
}


@pytest.mark.parametrize(
    ("seed", "head", "block_size"),
    [(s, _PLAIN_HEAD, 8192) for s in range(5)] + [(s, _RICH_HEAD, 1 << 20) for s in range(5, 8)],
)
def test_fast_and_precise_paths_agree_on_random_conversations(
    tmp_path: Path, seed: int, head: dict[str, object], block_size: int
) -> None:
    rng = random.Random(seed)
    # The head twice: line 1 settles the format (precise path), line 2 starts the fast path's block.
    lines = [json.dumps(head)] * 2 + [json.dumps(_random_sample(rng)) for _ in range(2000)]
    path = tmp_path / "random.jsonl"
    path.write_text("\n".join(lines) + "\n")
    fast, precise = CheckReport(str(path), "fine-tune"), CheckReport(str(path), "fine-tune")
    JsonlChecker(fast, 10**6).run(str(path), block_size=block_size)
    JsonlChecker(precise, 10**6, fast=False).run(str(path))
    assert fast.to_dict() == precise.to_dict()
    # Both kinds of line are present, so the comparison means something.
    bad_lines = {error.line for error in precise.errors}
    assert 100 < len(bad_lines) < 1900


def _random_preference(rng: random.Random) -> dict[str, object]:
    def output() -> object:
        return rng.choice(
            [
                [{"role": "assistant", "content": "a"}],
                [{"role": "assistant", "content": "a"}],
                [{"role": "assistant", "content": None, "tool_calls": [_CALL]}],
                [{"role": "assistant", "content": None}],
                [{"role": "assistant", "content": "a", "reasoning": "r"}],
                [{"role": "user", "content": "a"}],
                [{"role": "assistant", "content": "a", "weight": 1}],
                [{"role": "assistant", "content": "a"}] * 2,
                {"role": "assistant", "content": "a"},
            ]
        )

    messages = [_random_message(rng) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.6:
        messages = [{"role": "user", "content": "q"}] + (messages if rng.random() < 0.3 else [])
    sample: dict[str, object] = {
        "input": {"messages": messages},
        "preferred_output": output(),
        "non_preferred_output": output(),
    }
    if rng.random() < 0.1:
        sample["input"] = {"messages": messages, "tools": [{"type": "function", "function": {"name": "f"}}]}
    if rng.random() < 0.05:
        sample["weight"] = 1
    return sample


@pytest.mark.parametrize("seed", range(3))
def test_fast_and_precise_paths_agree_on_random_preferences(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    head = {
        "input": {"messages": [{"role": "user", "content": "q"}]},
        "preferred_output": [{"role": "assistant", "content": "a"}],
        "non_preferred_output": [{"role": "assistant", "content": "b"}],
    }
    lines = [json.dumps(head)] + [json.dumps(_random_preference(rng)) for _ in range(2000)]
    path = tmp_path / "random.jsonl"
    path.write_text("\n".join(lines) + "\n")
    fast, precise = CheckReport(str(path), "fine-tune"), CheckReport(str(path), "fine-tune")
    JsonlChecker(fast, 10**6).run(str(path), block_size=8192)
    JsonlChecker(precise, 10**6, fast=False).run(str(path))
    assert fast.to_dict() == precise.to_dict()
    bad_lines = {error.line for error in precise.errors}
    assert 100 < len(bad_lines) < 1900
