"""The checker's rule corpus: every rule of API reference section 4, as good and bad files.

Each bad case names the line and the field the error must point at; each good case names the detected
format and flags. Every JSONL case is also run with the fast path switched off, and both reports must be
identical: the fast path may only ever be a shortcut, never a different verdict.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_together.datasets import CheckReport, DatasetFormat, check_file
from airflow_provider_together.datasets._jsonl import JsonlChecker

PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
JPEG = "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ=="


def msg(role: str, content: Any = "x", **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": content, **extra}


S, U, A = msg("system", "Be brief."), msg("user", "Hi?"), msg("assistant", "Hello.")


def conv(*messages: Any, **top: Any) -> dict[str, Any]:
    return {"messages": list(messages), **top}


def text(value: str = "x") -> dict[str, Any]:
    return {"type": "text", "text": value}


def image(url: str = PNG) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
}
TOOL_DEF = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
CALLING = msg("assistant", None, tool_calls=[CALL])
RESULT = msg("tool", '{"temp": 3}', tool_call_id="call_1")
PREF = {
    "input": {"messages": [S, U]},
    "preferred_output": [msg("assistant", "Good.")],
    "non_preferred_output": [msg("assistant", "Bad.")],
}


@dataclasses.dataclass
class Case:
    id: str
    lines: list[Any]
    expect: list[tuple[int | None, str]] = dataclasses.field(default_factory=list)
    fmt: DatasetFormat | None = None
    flags: tuple[str, ...] = ()
    purpose: str = "fine-tune"
    suffix: str = ".jsonl"
    samples: int | None = None


def bad(id: str, lines: list[Any], *expect: tuple[int | None, str], **kw: Any) -> Case:
    return Case(id, lines, list(expect), **kw)


def good(id: str, lines: list[Any], fmt: DatasetFormat | None, *flags: str, **kw: Any) -> Case:
    return Case(id, lines, [], fmt, flags, **kw)


G, C, INS, P = (
    DatasetFormat.GENERAL,
    DatasetFormat.CONVERSATION,
    DatasetFormat.INSTRUCTION,
    DatasetFormat.PREFERENCE,
)

GOOD = [
    good("general", [{"text": "one"}, {"text": "two"}], G),
    good(
        "general-sample-weight",
        [{"text": "one", "weight": 0.5}, {"text": "two", "weight": 0}],
        G,
        "has_sample_weights",
    ),
    good("conversation-plain", [conv(S, U, A), conv(U, A, U, A), conv(U, A, U)], C),
    good(
        "conversation-blank-lines-and-crlf", [conv(U, A), "", "   ", conv(S, U, A) | {}, "\r"], C, samples=2
    ),
    good("conversation-unicode", [conv(msg("user", "Grüß dich, 東京?"), msg("assistant", "Hallo 👋"))], C),
    good(
        "message-weights",
        [conv(U, A), conv(msg("user", "q", weight=0), msg("assistant", "a", weight=1))],
        C,
        "has_message_weights",
    ),
    good("conversation-sample-weight", [conv(U, A, weight=2.5), conv(U, A)], C, "has_sample_weights"),
    good(
        "tools-and-tool-round",
        [conv(U, A), conv(S, U, CALLING, RESULT, A, tools=[TOOL_DEF])],
        C,
        "has_tools",
    ),
    good(
        "ends-on-tool-call",
        [conv(U, msg("assistant", "Let me check.", tool_calls=[CALL, CALL]))],
        C,
        "has_tools",
    ),
    good("parallel-tool-results", [conv(U, CALLING, RESULT, RESULT, CALLING, RESULT, A)], C, "has_tools"),
    good(
        "reasoning",
        [
            conv(U, A),
            conv(U, msg("assistant", "4", reasoning="2+2"), U, msg("assistant", "5", reasoning_content="hm")),
        ],
        C,
        "has_reasoning",
    ),
    good(
        "image-detail-key",
        [
            conv(
                msg("user", [{"type": "image_url", "image_url": {"url": PNG, "detail": "low"}}]),
                msg("assistant", [text()]),
            )
        ],
        C,
        "is_multimodal",
    ),
    good(
        "multimodal-conversation",
        [
            conv(
                msg("user", [text("What is this?"), image(), image(JPEG)]),
                msg("assistant", [text("A pixel.")]),
            )
        ],
        C,
        "is_multimodal",
    ),
    good(
        "image-message-weight-zero",
        [conv(msg("user", [image()], weight=0), msg("assistant", [text("ok")], weight=1))],
        C,
        "is_multimodal",
        "has_message_weights",
    ),
    good(
        "instruction",
        [{"prompt": "2+2?", "completion": "4"}, {"prompt": "3+3?", "completion": "6", "weight": 1}],
        INS,
        "has_sample_weights",
    ),
    good(
        "instruction-multimodal",
        [{"prompt": [text("Describe"), image()], "completion": [text("A dot.")]}],
        INS,
        "is_multimodal",
    ),
    good("preference", [PREF, PREF], P),
    good(
        "preference-tools",
        [{**PREF, "input": {"messages": [U, CALLING, RESULT], "tools": [TOOL_DEF]}}],
        P,
        "has_tools",
    ),
    good(
        "eval-free-form-jsonl",
        [{"question": "2+2?", "answer": "4"}, {"anything": [1, 2]}],
        None,
        purpose="eval",
    ),
    good(
        "eval-csv", ["question,answer", "2+2?,4", '"a, b",c'], None, purpose="eval", suffix=".csv", samples=2
    ),
    good("batch-api-objects", [{"custom_id": "1", "body": {}}], None, purpose="batch-api"),
]

BAD = [
    # --- encoding and JSON -------------------------------------------------------------------------------
    bad("not-utf8", [conv(U, A), b'{"text": "caf\xe9"}'], (2, "line")),
    bad("not-json", [conv(U, A), conv(U, A), "{'messages': []}"], (3, "line")),
    bad("truncated-json", ['{"text": "abc"'], (1, "line")),
    bad("two-objects-on-a-line", ['{"text": "a"} {"text": "b"}'], (1, "line")),
    bad("json-array-line", [conv(U, A), [1, 2]], (2, "line")),
    bad("json-string-line", ['"just text"'], (1, "line")),
    bad("eval-line-not-object", [{"q": 1}, 3], (2, "line"), purpose="eval"),
    bad("utf8-byte-order-mark", [b"\xef\xbb\xbf" + json.dumps(conv(U, A)).encode()], (1, "line")),
    bad("not-utf8-outside-strings", [conv(U, A), b'{"text": "a"}\xff'], (2, "line")),
    bad("nan-is-not-json", ['{"text": "a", "weight": NaN}'], (1, "line")),
    # --- formats and keys ------------------------------------------------------------------------------
    bad("no-format", [{"question": "q", "answer": "a"}], (1, "line")),
    bad("two-formats", [{"text": "a", "messages": [U, A]}], (1, "line")),
    bad("format-changes", [conv(U, A), conv(U, A), {"text": "a"}], (3, "line")),
    bad("format-changes-first-line-bad", [{"text": 1}, conv(U, A)], (1, "text"), (2, "line")),
    bad("unknown-top-key", [conv(U, A), conv(U, A, id=7)], (2, "id")),
    bad("unknown-message-key", [conv(msg("user", "q", name="bob"), A)], (1, "messages[0].name")),
    bad("instruction-missing-completion", [{"prompt": "q"}], (1, "completion")),
    bad("general-text-not-string", [{"text": "a"}, {"text": ["a"]}], (2, "text")),
    bad("preference-sample-weight", [{**PREF, "weight": 1}], (1, "weight")),
    # --- messages ----------------------------------------------------------------------------------------
    bad("messages-not-list", [conv(U, A), {"messages": {"role": "user"}}], (2, "messages")),
    bad("messages-empty", [conv(U, A), {"messages": []}], (2, "messages")),
    bad("message-not-object", [conv(U, "hello", A)], (1, "messages[1]")),
    bad("role-missing", [conv({"content": "q"}, A)], (1, "messages[0].role")),
    bad("role-invalid", [conv(U, A), conv(U, msg("bot", "a"))], (2, "messages[1].role")),
    bad("role-not-string", [conv(msg(3, "q"), A)], (1, "messages[0].role")),  # type: ignore[arg-type]
    bad("role-is-a-list", [conv(U, A), conv(U, msg(["assistant"], "a"))], (2, "messages[1].role")),  # type: ignore[arg-type]
    bad(
        "every-message-is-checked-after-a-bad-role",
        [conv(msg("bot", "q"), A, U, msg("assistant", "a", weight=5))],
        (1, "messages[0].role"),
        (1, "messages[3].weight"),
    ),
    bad("content-missing", [conv(U, {"role": "assistant"})], (1, "messages[1].content")),
    bad(
        "content-null-without-tool-calls",
        [conv(U, A), conv(U, msg("assistant", None))],
        (2, "messages[1].content"),
    ),
    bad("content-number", [conv(U, msg("assistant", 42))], (1, "messages[1].content")),
    # --- turn order --------------------------------------------------------------------------------------
    bad("starts-with-assistant", [conv(U, A), conv(A, U, A)], (2, "messages[0].role")),
    bad("system-not-first", [conv(U, S, A)], (1, "messages[1].role")),
    bad("two-users", [conv(U, A), conv(U, U, A)], (2, "messages[1].role")),
    bad("two-assistants", [conv(U, A, A)], (1, "messages[2].role")),
    bad("system-then-assistant", [conv(S, A)], (1, "messages[1].role")),
    bad("system-only", [conv(S)], (1, "messages[0].role")),
    bad("no-assistant", [conv(U, A), conv(S, U)], (2, "messages")),
    bad("tool-without-call", [conv(U, A, RESULT, A)], (1, "messages[2].role")),
    bad("call-without-result", [conv(U, A), conv(U, CALLING, U, A)], (2, "messages[2].role")),
    bad("user-after-tool-result", [conv(U, CALLING, RESULT, U, A)], (1, "messages[3].role")),
    # --- tools and reasoning ---------------------------------------------------------------------------
    bad(
        "tool-calls-not-list",
        [conv(U, msg("assistant", None, tool_calls=CALL))],
        (1, "messages[1].tool_calls"),
    ),
    bad(
        "tool-call-arguments-object",
        [
            conv(U, A),
            conv(
                U,
                msg(
                    "assistant",
                    None,
                    tool_calls=[{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}],
                ),
            ),
        ],
        (2, "messages[1].tool_calls[0].function.arguments"),
    ),
    bad("tool-call-on-user", [conv(msg("user", "q", tool_calls=[CALL]), A)], (1, "messages[0].tool_calls")),
    bad("tools-not-list", [conv(U, A, tools=TOOL_DEF)], (1, "tools")),
    bad(
        "tool-type", [conv(U, A), conv(U, A, tools=[{**TOOL_DEF, "type": "retrieval"}])], (2, "tools[0].type")
    ),
    bad(
        "tool-name-missing",
        [conv(U, A, tools=[{"type": "function", "function": {"description": "d"}}])],
        (1, "tools[0].function.name"),
    ),
    bad(
        "reasoning-not-string",
        [conv(U, A), conv(U, msg("assistant", "a", reasoning=["x"]))],
        (2, "messages[1].reasoning"),
    ),
    bad("reasoning-on-user", [conv(msg("user", "q", reasoning="r"), A)], (1, "messages[0].reasoning")),
    bad(
        "tool-call-id-not-string",
        [conv(U, CALLING, msg("tool", "r", tool_call_id=1), A)],
        (1, "messages[2].tool_call_id"),
    ),
    # --- weights -----------------------------------------------------------------------------------------
    bad(
        "message-weight-2",
        [conv(U, A), conv(U, A, U, msg("assistant", "a", weight=2))],
        (2, "messages[3].weight"),
    ),
    bad("message-weight-half", [conv(U, msg("assistant", "a", weight=0.5))], (1, "messages[1].weight")),
    bad("message-weight-float-one", [conv(U, msg("assistant", "a", weight=1.0))], (1, "messages[1].weight")),
    bad("message-weight-bool", [conv(U, msg("assistant", "a", weight=True))], (1, "messages[1].weight")),
    bad("sample-weight-negative", [conv(U, A), conv(U, A, weight=-1)], (2, "weight")),
    bad("sample-weight-string", [{"text": "a", "weight": "1"}], (1, "weight")),
    # --- content parts and images ----------------------------------------------------------------------
    bad(
        "part-type-unknown",
        [conv(msg("user", [{"type": "audio", "audio": "x"}]), msg("assistant", [text()]))],
        (1, "messages[0].content[0].type"),
    ),
    bad(
        "text-part-without-text",
        [conv(msg("user", [{"type": "text"}]), msg("assistant", [text()]))],
        (1, "messages[0].content[0].text"),
    ),
    bad(
        "image-in-assistant",
        [conv(msg("user", [text()]), msg("assistant", [image()]))],
        (1, "messages[1].content[0]"),
    ),
    bad(
        "image-in-system",
        [conv(msg("system", [image()]), msg("user", [text()]), msg("assistant", [text()]))],
        (1, "messages[0].content[0]"),
    ),
    bad(
        "image-http-url",
        [conv(msg("user", [text(), image("https://example.com/a.png")]), msg("assistant", [text()]))],
        (1, "messages[0].content[1].image_url.url"),
    ),
    bad(
        "image-gif",
        [conv(msg("user", [image("data:image/gif;base64,R0lGOD")]), msg("assistant", [text()]))],
        (1, "messages[0].content[0].image_url.url"),
    ),
    bad(
        "image-url-not-object",
        [conv(msg("user", [{"type": "image_url", "image_url": PNG}]), msg("assistant", [text()]))],
        (1, "messages[0].content[0].image_url"),
    ),
    bad(
        "image-not-base64",
        [conv(msg("user", [image("data:image/png;base64,not base64!")]), msg("assistant", [text()]))],
        (1, "messages[0].content[0].image_url.url"),
    ),
    bad(
        "image-too-large",
        [
            conv(
                msg("user", [image("data:image/png;base64," + "A" * (4 * (10 * 1024 * 1024 // 3 + 1) + 4))]),
                msg("assistant", [text()]),
            )
        ],
        (1, "messages[0].content[0].image_url.url"),
    ),
    bad(
        "eleven-images-in-a-message",
        [conv(msg("user", [image()] * 11), msg("assistant", [text()]))],
        (1, "messages[0].content[10]"),
    ),
    bad(
        "eleven-images-in-a-sample",
        [
            conv(
                msg("user", [image()] * 6),
                msg("assistant", [text()]),
                msg("user", [image()] * 5),
                msg("assistant", [text()]),
            )
        ],
        (1, "messages[2].content[4]"),
    ),
    bad(
        "mixed-string-and-list",
        [conv(U, A), conv(msg("user", [text()]), msg("assistant", "a"))],
        (2, "messages[1].content"),
    ),
    bad(
        "image-message-weighted",
        [conv(msg("user", [image()], weight=1), msg("assistant", [text()]))],
        (1, "messages[0].weight"),
    ),
    bad(
        "instruction-image-in-completion",
        [{"prompt": [text()], "completion": [image()]}],
        (1, "completion[0]"),
    ),
    bad("instruction-mixed", [{"prompt": [text()], "completion": "a"}], (1, "completion")),
    # --- preference --------------------------------------------------------------------------------------
    bad("preference-input-not-object", [PREF, {**PREF, "input": [U]}], (2, "input")),
    bad("preference-input-no-messages", [{**PREF, "input": {"tools": []}}], (1, "input.messages")),
    bad(
        "preference-input-unknown-key",
        [{**PREF, "input": {"messages": [U], "system": "x"}}],
        (1, "input.system"),
    ),
    bad(
        "preference-last-input-assistant",
        [PREF, {**PREF, "input": {"messages": [U, A]}}],
        (2, "input.messages[1].role"),
    ),
    bad("preference-two-preferred", [{**PREF, "preferred_output": [A, A]}], (1, "preferred_output")),
    bad("preference-output-not-list", [{**PREF, "preferred_output": A}], (1, "preferred_output")),
    bad(
        "preference-output-role", [{**PREF, "non_preferred_output": [U]}], (1, "non_preferred_output[0].role")
    ),
    bad(
        "preference-missing-output",
        [{k: v for k, v in PREF.items() if k != "non_preferred_output"}],
        (1, "non_preferred_output"),
    ),
    bad(
        "preference-message-weight",
        [{**PREF, "input": {"messages": [msg("user", "q", weight=1)]}}],
        (1, "input.messages[0].weight"),
    ),
    # --- whole file --------------------------------------------------------------------------------------
    bad("empty-file", [], (None, "file")),
    bad("only-blank-lines", ["", "  ", ""], (None, "file")),
    bad("wrong-extension", [conv(U, A)], (None, "file"), suffix=".json"),
    bad("csv-for-fine-tune", ["a,b", "1,2"], (None, "file"), suffix=".csv"),
    bad("csv-no-header", ["", "1,2"], (1, "header"), purpose="eval", suffix=".csv"),
    bad("csv-ragged", ["a,b", "1,2", "1,2,3", "4,5"], (3, "row"), purpose="eval", suffix=".csv"),
    bad("csv-header-only", ["a,b"], (None, "file"), purpose="eval", suffix=".csv"),
    bad("csv-not-utf8", ["a,b", b"\xff\xfe,1"], (None, "file"), purpose="eval", suffix=".csv"),
]


def write_lines(path: Path, lines: list[Any]) -> Path:
    chunks = []
    for line in lines:
        if isinstance(line, bytes):
            chunks.append(line)
        elif isinstance(line, str):
            chunks.append(line.encode())
        else:
            chunks.append(json.dumps(line, ensure_ascii=False).encode())
    path.write_bytes(b"\n".join(chunks) + (b"\n" if chunks else b""))
    return path


def run_case(case: Case, tmp_path: Path) -> CheckReport:
    path = write_lines(tmp_path / f"data{case.suffix}", case.lines)
    return check_file(path, case.purpose)


def test_corpus_size() -> None:
    assert len(GOOD) + len(BAD) >= 60
    assert len({case.id for case in GOOD + BAD}) == len(GOOD) + len(BAD)


@pytest.mark.parametrize("case", GOOD, ids=lambda case: case.id)
def test_good_file_passes(case: Case, tmp_path: Path) -> None:
    report = run_case(case, tmp_path)
    assert report.ok, report.summary()
    assert report.format is case.fmt
    flags = {"has_message_weights", "has_sample_weights", "has_tools", "has_reasoning", "is_multimodal"}
    assert {flag for flag in flags if getattr(report, flag)} == set(case.flags)
    expected_samples = case.samples if case.samples is not None else len(case.lines)
    assert report.num_samples == expected_samples
    # About 4 bytes of text per token: never more tokens than the whole file could hold (tiny samples give 0).
    assert 0 <= report.estimated_tokens <= (report.file_size or 0) // 4


@pytest.mark.parametrize("case", BAD, ids=lambda case: case.id)
def test_bad_file_names_line_and_field(case: Case, tmp_path: Path) -> None:
    report = run_case(case, tmp_path)
    assert not report.ok
    assert [(error.line, error.field) for error in report.errors] == case.expect, report.summary()
    for error in report.errors:
        assert len(error.message) > 15  # a sentence a person can act on, not a code


@pytest.mark.parametrize(
    "case", [c for c in GOOD + BAD if c.suffix == ".jsonl" and c.lines], ids=lambda c: c.id
)
def test_fast_path_agrees_with_precise_path(case: Case, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "data.jsonl", case.lines)
    fast, precise = CheckReport(str(path), case.purpose), CheckReport(str(path), case.purpose)
    JsonlChecker(fast, 100, fast=True).run(str(path))
    JsonlChecker(precise, 100, fast=False).run(str(path))
    assert fast.to_dict() == precise.to_dict()


def test_messages_explain_the_rule(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "d.jsonl", [conv(U, A), conv(U, U, A), conv(U, msg("assistant", "a", weight=3))]
    )
    messages = [error.message for error in check_file(path).errors]
    assert "alternate" in messages[0]
    assert "0 or 1" in messages[1]


def test_missing_file(tmp_path: Path) -> None:
    report = check_file(tmp_path / "nope.jsonl")
    assert [(e.line, e.field) for e in report.errors] == [(None, "file")]
    assert report.file_size is None


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").mkdir()
    assert not check_file(tmp_path / "d.jsonl").ok


def test_file_above_size_limit_is_rejected_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as stream:
        stream.truncate(int(50.2 * (1 << 30)))  # sparse: no disk used, nothing read
    report = check_file(path)
    assert [(e.line, e.field) for e in report.errors] == [(None, "file")]
    assert "50.1 GiB" in report.errors[0].message


def test_max_errors_stops_early(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [conv(U, A)] + ["nope"] * 10)
    report = check_file(path, max_errors=3)
    assert [e.line for e in report.errors] == [2, 3, 4]
    assert report.truncated
    assert "stopped after 3 errors" in report.summary()


def test_bad_arguments_raise(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [conv(U, A)])
    with pytest.raises(ValueError, match="purpose"):
        check_file(path, "fine-tuning")
    with pytest.raises(ValueError, match="max_errors"):
        check_file(path, max_errors=0)


def test_report_dict_and_summary(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [conv(U, msg("assistant", "a", weight=1)), conv(U, U)])
    report = check_file(path)
    data = report.to_dict()
    assert data["ok"] is False
    assert data["format"] == "conversation"
    assert data["num_samples"] == 2
    assert data["has_message_weights"] is True
    assert data["errors"] == [{"line": 2, "field": "messages[1].role", "message": report.errors[0].message}]
    json.dumps(data)
    summary = report.summary()
    assert "FAILED (1 error)" in summary
    assert "line 2: messages[1].role:" in summary


def test_estimated_tokens_scale_with_text(tmp_path: Path) -> None:
    short = check_file(write_lines(tmp_path / "a.jsonl", [{"text": "x" * 400}]))
    long = check_file(write_lines(tmp_path / "b.jsonl", [{"text": "x" * 4000}]))
    assert 90 <= short.estimated_tokens <= 110
    assert 990 <= long.estimated_tokens <= 1010


@pytest.mark.parametrize(
    ("line", "phrase"),
    [
        (b"\xef\xbb\xbf" + b'{"text": "a"}', "byte-order mark"),
        (b'{"text": "a"}\xff', "not valid UTF-8"),
        (b'{"text": "caf\xe9"}', "not valid UTF-8"),
        (b'{"text": "a",}', "not valid JSON"),
    ],
)
def test_encoding_and_json_messages(tmp_path: Path, line: bytes, phrase: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(line + b"\n")
    assert phrase in check_file(path).errors[0].message


def test_csv_with_a_long_field(tmp_path: Path) -> None:
    path = tmp_path / "eval.csv"
    path.write_text("document,summary\n" + '"' + "word " * 100_000 + '",short\n')
    report = check_file(path, "eval")
    assert report.ok, report.summary()
    assert report.num_samples == 1


def test_public_names_and_values() -> None:
    assert [fmt.value for fmt in DatasetFormat] == ["general", "conversation", "instruction", "preference"]
    assert DatasetFormat("conversation") is DatasetFormat.CONVERSATION
    from airflow_provider_together.datasets import CheckError

    error = CheckError(3, "messages[0].role", "invalid role 'bot'")
    assert str(error) == "line 3: messages[0].role: invalid role 'bot'"
    assert str(CheckError(None, "file", "the file is empty")) == "file: file: the file is empty"


def test_purpose_may_be_a_str_enum(tmp_path: Path) -> None:
    import enum

    class Purpose(str, enum.Enum):
        EVAL = "eval"

    path = write_lines(tmp_path / "e.jsonl", [{"anything": 1}])
    report = check_file(path, Purpose.EVAL)
    assert report.ok
    assert report.purpose == "eval"
    assert report.to_dict()["purpose"] == "eval"


def test_csv_rows_spanning_lines_and_blank_rows(tmp_path: Path) -> None:
    path = tmp_path / "eval.csv"
    path.write_text('q,a\n"multi\nline",1\n\n"x",2,3\n')
    report = check_file(path, "eval")
    assert [(e.line, e.field) for e in report.errors] == [(5, "row")]
    assert report.num_samples == 2


def test_csv_stops_at_max_errors(tmp_path: Path) -> None:
    path = tmp_path / "eval.csv"
    path.write_text("a,b\n" + "1\n" * 10)
    report = check_file(path, "eval", max_errors=4)
    assert [e.line for e in report.errors] == [2, 3, 4, 5]
    assert report.truncated
