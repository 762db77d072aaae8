"""The precise checker: every rule of one JSONL sample, applied to plain decoded JSON.

This is the reference for what a valid line is. The fast path (``_fast``) only ever accepts a subset of
what this module accepts, and any line it does not accept comes here, so messages and field paths are
always produced by this one module.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_together.datasets._messages import (
    check_content,
    check_messages,
    check_output,
    check_tools,
)
from airflow_provider_together.datasets._report import DatasetFormat
from airflow_provider_together.datasets._sample import (
    SAMPLE_WEIGHTS,
    Sample,
    SampleResult,
    type_name,
    unknown_keys,
)
from airflow_provider_together.datasets._turns import ASSISTANT, TOOL_CALL

# Keys that pick a format. A line must carry the keys of exactly one of them.
_FORMAT_KEYS: dict[DatasetFormat, tuple[str, ...]] = {
    DatasetFormat.GENERAL: ("text",),
    DatasetFormat.CONVERSATION: ("messages",),
    DatasetFormat.INSTRUCTION: ("prompt", "completion"),
    DatasetFormat.PREFERENCE: ("input", "preferred_output", "non_preferred_output"),
}
# Optional top-level keys per format. Sample weights scale the SFT loss; DPO has no per-sample weight.
_OPTIONAL_KEYS: dict[DatasetFormat, tuple[str, ...]] = {
    DatasetFormat.GENERAL: ("weight",),
    DatasetFormat.CONVERSATION: ("tools", "weight"),
    DatasetFormat.INSTRUCTION: ("weight",),
    DatasetFormat.PREFERENCE: (),
}


def detect_format(obj: dict[str, Any]) -> tuple[DatasetFormat | None, list[tuple[str, str]]]:
    """Return the one format whose keys ``obj`` carries, or ``None`` and the problem with its keys."""
    found = [fmt for fmt, keys in _FORMAT_KEYS.items() if any(key in obj for key in keys)]
    if len(found) == 1:
        return found[0], []
    if not found:
        return None, [
            (
                "line",
                f"no dataset format matches the keys {sorted(obj)}: expected `text` (general), `messages` "
                "(conversation), `prompt`+`completion` (instruction) or `input`+`preferred_output`+"
                "`non_preferred_output` (preference)",
            )
        ]
    names = " and ".join(f"{fmt.value} ({'+'.join(_FORMAT_KEYS[fmt])})" for fmt in found)
    return None, [("line", f"the line matches more than one dataset format: {names}; keep the keys of one")]


def check_sample(obj: Any, *, eval_purpose: bool = False) -> SampleResult:
    """Check one decoded JSONL line with every rule and return its format, problems and flags.

    :param obj: the line as decoded by a JSON parser.
    :param eval_purpose: the file is uploaded for evaluation: lines only need to be JSON objects, since
        evaluation files carry arbitrary columns that the evaluation's templates refer to.
    """
    result = SampleResult()
    if not isinstance(obj, dict):
        result.problems.append(("line", f"each line must be a JSON object, got {type_name(obj)}"))
        return result
    if eval_purpose:
        return result
    fmt, problems = detect_format(obj)
    result.format = fmt
    result.problems.extend(problems)
    if fmt is None:
        return result
    sample = Sample(result)
    allowed = _FORMAT_KEYS[fmt] + _OPTIONAL_KEYS[fmt]
    for key in obj:
        if key not in allowed:
            sample.problem(
                key, f"unknown key for the {fmt.value} format (allowed keys: {', '.join(allowed)})"
            )
    for key in _FORMAT_KEYS[fmt]:
        if key not in obj:
            sample.problem(key, f"missing: the {fmt.value} format needs {', '.join(_FORMAT_KEYS[fmt])}")
    if "weight" in obj and "weight" in allowed:
        _check_sample_weight(obj["weight"], sample)
    if fmt is DatasetFormat.GENERAL:
        if "text" in obj and not isinstance(obj["text"], str):
            sample.problem("text", f"must be a string, got {type_name(obj['text'])}")
    elif fmt is DatasetFormat.CONVERSATION:
        if "tools" in obj:
            check_tools(obj["tools"], "tools", sample)
        if "messages" in obj:
            check_messages(obj["messages"], "messages", sample, need_assistant=True)
    elif fmt is DatasetFormat.INSTRUCTION:
        result.messages = 2
        if "prompt" in obj:
            check_content(obj["prompt"], "prompt", sample, images_allowed=True)
        if "completion" in obj:
            check_content(obj["completion"], "completion", sample, images_allowed=False)
    else:
        _check_preference(obj, sample)
    return result


def _check_sample_weight(weight: Any, sample: Sample) -> None:
    sample.result.flags |= SAMPLE_WEIGHTS
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        sample.problem("weight", f"the sample weight must be a non-negative number, got {type_name(weight)}")
    elif not weight >= 0:
        sample.problem("weight", f"the sample weight must be a non-negative number, got {weight}")


def _check_preference(obj: dict[str, Any], sample: Sample) -> None:
    inputs = obj.get("input")
    if "input" in obj:
        if not isinstance(inputs, dict):
            sample.problem("input", f'must be an object {{"messages": [...]}}, got {type_name(inputs)}')
        else:
            unknown_keys(inputs, ("messages", "tools"), "input", sample)
            if "tools" in inputs:
                check_tools(inputs["tools"], "input.tools", sample)
            if "messages" not in inputs:
                sample.problem("input.messages", "missing: the preference input is a list of messages")
            else:
                word = check_messages(
                    inputs["messages"], "input.messages", sample, need_assistant=False, for_preference=True
                )
                if word and word[-1] in (ASSISTANT, TOOL_CALL):
                    sample.problem(
                        f"input.messages[{len(word) - 1}].role",
                        "the last input message must not be from the assistant: the outputs are its answer",
                    )
    for key in ("preferred_output", "non_preferred_output"):
        if key in obj:
            check_output(obj[key], key, sample)
