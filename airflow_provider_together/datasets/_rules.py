"""The precise checker: every rule of one JSONL sample, applied to plain decoded JSON.

This is the reference for what a valid line is. The fast path (``_fast``) only ever accepts a subset of
what this module accepts, and any line it does not accept comes here, so messages and field paths are
always produced by this one module.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from airflow_provider_together.datasets import _limits
from airflow_provider_together.datasets._report import DatasetFormat
from airflow_provider_together.datasets._turns import (
    ASSISTANT,
    SYSTEM,
    TOOL,
    TOOL_CALL,
    USER,
    first_turn_error,
)

# Flags a sample can raise; the reader ORs them over the file.
MESSAGE_WEIGHTS = 1
SAMPLE_WEIGHTS = 2
TOOLS = 4
REASONING = 8
MULTIMODAL = 16

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
_MESSAGE_KEYS: dict[str, tuple[str, ...]] = {
    "system": ("role", "content", "weight"),
    "user": ("role", "content", "weight"),
    "assistant": ("role", "content", "weight", "tool_calls", "reasoning", "reasoning_content"),
    "tool": ("role", "content", "weight", "tool_call_id"),
}
_OUTPUT_KEYS = ("role", "content", "tool_calls", "reasoning", "reasoning_content")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


@dataclasses.dataclass
class SampleResult:
    """What the precise checker learned about one sample."""

    format: DatasetFormat | None = None
    problems: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    flags: int = 0
    messages: int = 0
    image_chars: int = 0


class _Sample:
    """State shared by the checks of one sample: problems so far, flags, image counts, content kinds."""

    def __init__(self, result: SampleResult) -> None:
        self.result = result
        self.images = 0
        self.content_kinds: set[str] = set()
        self.first_kind_path = ""

    def problem(self, field: str, message: str) -> None:
        self.result.problems.append((field, message))


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
        result.problems.append(("line", f"each line must be a JSON object, got {_type_name(obj)}"))
        return result
    if eval_purpose:
        return result
    fmt, problems = detect_format(obj)
    result.format = fmt
    result.problems.extend(problems)
    if fmt is None:
        return result
    sample = _Sample(result)
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
            sample.problem("text", f"must be a string, got {_type_name(obj['text'])}")
    elif fmt is DatasetFormat.CONVERSATION:
        if "tools" in obj:
            _check_tools(obj["tools"], "tools", sample)
        if "messages" in obj:
            _check_messages(obj["messages"], "messages", sample, need_assistant=True)
    elif fmt is DatasetFormat.INSTRUCTION:
        result.messages = 2
        if "prompt" in obj:
            _check_content(obj["prompt"], "prompt", sample, images_allowed=True)
        if "completion" in obj:
            _check_content(obj["completion"], "completion", sample, images_allowed=False)
    else:
        _check_preference(obj, sample)
    return result


def _check_sample_weight(weight: Any, sample: _Sample) -> None:
    sample.result.flags |= SAMPLE_WEIGHTS
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        sample.problem("weight", f"the sample weight must be a non-negative number, got {_type_name(weight)}")
    elif not weight >= 0:
        sample.problem("weight", f"the sample weight must be a non-negative number, got {weight}")


def _check_tools(tools: Any, path: str, sample: _Sample) -> None:
    sample.result.flags |= TOOLS
    if not isinstance(tools, list):
        sample.problem(path, f"must be a list of tool definitions, got {_type_name(tools)}")
        return
    for index, tool in enumerate(tools):
        where = f"{path}[{index}]"
        if not isinstance(tool, dict):
            sample.problem(where, f"must be an object, got {_type_name(tool)}")
            continue
        _unknown_keys(tool, ("type", "function"), where, sample)
        if tool.get("type") != "function":
            sample.problem(f"{where}.type", 'must be "function"')
        function = tool.get("function")
        if not isinstance(function, dict):
            sample.problem(
                f"{where}.function", "must be an object with `name` (and optional description, parameters)"
            )
            continue
        _unknown_keys(function, ("name", "description", "parameters", "strict"), f"{where}.function", sample)
        if not isinstance(function.get("name"), str) or not function["name"]:
            sample.problem(f"{where}.function.name", "must be a non-empty string")
        if "description" in function and not isinstance(function["description"], str):
            sample.problem(f"{where}.function.description", "must be a string")
        if "parameters" in function and not isinstance(function["parameters"], dict):
            sample.problem(f"{where}.function.parameters", "must be a JSON Schema object")


def _unknown_keys(obj: dict[str, Any], allowed: tuple[str, ...], path: str, sample: _Sample) -> None:
    for key in obj:
        if key not in allowed:
            sample.problem(f"{path}.{key}", f"unknown key (allowed: {', '.join(allowed)})")


def _check_messages(
    messages: Any, path: str, sample: _Sample, *, need_assistant: bool, for_preference: bool = False
) -> str:
    """Check a message list and its turn order; return the role letters of the well-formed messages."""
    if not isinstance(messages, list):
        sample.problem(path, f"must be a list of messages, got {_type_name(messages)}")
        return ""
    if not messages:
        sample.problem(path, "must contain at least one message")
        return ""
    sample.result.messages += len(messages)
    letters = []
    for index, message in enumerate(messages):
        letter = _check_message(message, f"{path}[{index}]", sample, for_preference=for_preference)
        if letter is None:
            return ""  # the turn order cannot be judged around a malformed message
        letters.append(letter)
    word = "".join(letters)
    turn_error = first_turn_error(word)
    if turn_error is not None:
        index, message = turn_error
        sample.problem(f"{path}[{min(index, len(word) - 1)}].role", message)
    elif need_assistant and ASSISTANT not in word and TOOL_CALL not in word:
        sample.problem(path, "at least one message must have the assistant role: it is what the model learns")
    return word


def _check_message(message: Any, path: str, sample: _Sample, *, for_preference: bool) -> str | None:
    if not isinstance(message, dict):
        sample.problem(
            path, f"each message must be an object with `role` and `content`, got {_type_name(message)}"
        )
        return None
    role = message.get("role")
    if "role" not in message:
        sample.problem(f"{path}.role", f"missing (one of {', '.join(_limits.ROLES)})")
        return None
    if role not in _MESSAGE_KEYS:
        sample.problem(f"{path}.role", f"invalid role {role!r}: use one of {', '.join(_limits.ROLES)}")
        return None
    allowed = _MESSAGE_KEYS[role]
    if for_preference:
        allowed = tuple(key for key in allowed if key != "weight")
    _unknown_keys(message, allowed, path, sample)
    has_calls = role == "assistant" and message.get("tool_calls") is not None
    if has_calls:
        _check_tool_calls(message["tool_calls"], f"{path}.tool_calls", sample)
    for key in ("reasoning", "reasoning_content"):
        if key in message and role == "assistant":
            sample.result.flags |= REASONING
            if not isinstance(message[key], str):
                sample.problem(f"{path}.{key}", f"must be a string, got {_type_name(message[key])}")
    if role == "tool":
        sample.result.flags |= TOOLS
        if not isinstance(message.get("tool_call_id", ""), str):
            sample.problem(
                f"{path}.tool_call_id", "must be the string id of the tool call this result answers"
            )
    images_before = sample.images
    if "content" not in message or message["content"] is None:
        if not has_calls:
            sample.problem(
                f"{path}.content", "missing: every message needs content (a string or a list of parts)"
            )
    else:
        _check_content(message["content"], f"{path}.content", sample, images_allowed=role == "user")
    if "weight" in message and "weight" in allowed:
        sample.result.flags |= MESSAGE_WEIGHTS
        weight = message["weight"]
        if isinstance(weight, bool) or not isinstance(weight, int) or weight not in (0, 1):
            sample.problem(f"{path}.weight", f"a message weight must be 0 or 1, got {weight!r}")
        elif weight != 0 and sample.images > images_before:
            sample.problem(
                f"{path}.weight", "a message with images cannot be trained on: set its weight to 0"
            )
    return (
        TOOL_CALL if has_calls else {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}.get(role, TOOL)
    )


def _check_tool_calls(calls: Any, path: str, sample: _Sample) -> None:
    sample.result.flags |= TOOLS
    if not isinstance(calls, list) or not calls:
        sample.problem(path, "must be a non-empty list of tool calls")
        return
    for index, call in enumerate(calls):
        where = f"{path}[{index}]"
        if not isinstance(call, dict):
            sample.problem(where, f"must be an object, got {_type_name(call)}")
            continue
        _unknown_keys(call, ("id", "type", "function"), where, sample)
        if "id" in call and not isinstance(call["id"], str):
            sample.problem(f"{where}.id", "must be a string")
        if call.get("type", "function") != "function":
            sample.problem(f"{where}.type", 'must be "function"')
        function = call.get("function")
        if not isinstance(function, dict):
            sample.problem(f"{where}.function", "must be an object with `name` and `arguments`")
            continue
        _unknown_keys(function, ("name", "arguments"), f"{where}.function", sample)
        if not isinstance(function.get("name"), str) or not function["name"]:
            sample.problem(f"{where}.function.name", "must be a non-empty string")
        if not isinstance(function.get("arguments"), str):
            sample.problem(
                f"{where}.function.arguments", "must be a string holding the JSON-encoded arguments"
            )


def _check_content(content: Any, path: str, sample: _Sample, *, images_allowed: bool) -> None:
    if isinstance(content, str):
        kind = "string"
    elif isinstance(content, list):
        kind = "list"
        _check_parts(content, path, sample, images_allowed=images_allowed)
    else:
        sample.problem(path, f"must be a string or a list of content parts, got {_type_name(content)}")
        return
    if not sample.content_kinds:
        sample.first_kind_path = path
    elif kind not in sample.content_kinds:
        sample.problem(
            path,
            f"is a {kind} but {sample.first_kind_path} is not: one sample cannot mix string and list content",
        )
    sample.content_kinds.add(kind)


def _check_parts(parts: list[Any], path: str, sample: _Sample, *, images_allowed: bool) -> None:
    images = 0
    for index, part in enumerate(parts):
        where = f"{path}[{index}]"
        if not isinstance(part, dict):
            sample.problem(where, f"a content part must be an object with `type`, got {_type_name(part)}")
            continue
        kind = part.get("type")
        if kind == "text":
            _unknown_keys(part, ("type", "text"), where, sample)
            if not isinstance(part.get("text"), str):
                sample.problem(f"{where}.text", "a text part needs a string `text`")
        elif kind == "image_url":
            _unknown_keys(part, ("type", "image_url"), where, sample)
            sample.result.flags |= MULTIMODAL
            if not images_allowed:
                sample.problem(where, "images are only allowed in user messages (and instruction prompts)")
                continue
            images += 1
            sample.images += 1
            _check_image(part.get("image_url"), f"{where}.image_url", sample)
            if images == _limits.MAX_IMAGES_PER_MESSAGE + 1:
                sample.problem(where, f"a message can hold at most {_limits.MAX_IMAGES_PER_MESSAGE} images")
            elif sample.images == _limits.MAX_IMAGES_PER_EXAMPLE + 1:
                sample.problem(where, f"a sample can hold at most {_limits.MAX_IMAGES_PER_EXAMPLE} images")
        else:
            sample.problem(f"{where}.type", f'must be "text" or "image_url", got {kind!r}')


def _check_image(image: Any, path: str, sample: _Sample) -> None:
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        sample.problem(path, 'must be an object {"url": "data:image/<jpeg|png|webp>;base64,..."}')
        return
    _unknown_keys(image, ("url", "detail"), path, sample)
    url = image["url"]
    header = _limits.IMAGE_URL_RE.match(url)
    if header is None:
        sample.problem(
            f"{path}.url",
            "must be a base64 data URL of a JPEG, PNG or WebP image (data:image/png;base64,...); "
            "links to images are not fetched",
        )
        return
    payload = len(url) - header.end()
    sample.result.image_chars += len(url)
    if payload > _limits.MAX_IMAGE_BASE64_CHARS:
        mib = payload * 3 / 4 / (1 << 20)
        sample.problem(f"{path}.url", f"the image is about {mib:.1f} MiB; the limit is 10 MiB per image")


def _check_preference(obj: dict[str, Any], sample: _Sample) -> None:
    inputs = obj.get("input")
    if "input" in obj:
        if not isinstance(inputs, dict):
            sample.problem("input", f'must be an object {{"messages": [...]}}, got {_type_name(inputs)}')
        else:
            _unknown_keys(inputs, ("messages", "tools"), "input", sample)
            if "tools" in inputs:
                _check_tools(inputs["tools"], "input.tools", sample)
            if "messages" not in inputs:
                sample.problem("input.messages", "missing: the preference input is a list of messages")
            else:
                word = _check_messages(
                    inputs["messages"], "input.messages", sample, need_assistant=False, for_preference=True
                )
                if word and word[-1] in (ASSISTANT, TOOL_CALL):
                    sample.problem(
                        f"input.messages[{len(word) - 1}].role",
                        "the last input message must not be from the assistant: the outputs are its answer",
                    )
    for key in ("preferred_output", "non_preferred_output"):
        if key in obj:
            _check_output(obj[key], key, sample)


def _check_output(output: Any, path: str, sample: _Sample) -> None:
    if not isinstance(output, list) or len(output) != 1:
        shown = f"{len(output)} items" if isinstance(output, list) else _type_name(output)
        sample.problem(path, f"must be a list of exactly one assistant message, got {shown}")
        return
    message = output[0]
    where = f"{path}[0]"
    if not isinstance(message, dict):
        sample.problem(where, f"must be an assistant message object, got {_type_name(message)}")
        return
    sample.result.messages += 1
    _unknown_keys(message, _OUTPUT_KEYS, where, sample)
    if message.get("role") != "assistant":
        sample.problem(f"{where}.role", f'must be "assistant", got {message.get("role")!r}')
    has_calls = message.get("tool_calls") is not None
    if has_calls:
        _check_tool_calls(message["tool_calls"], f"{where}.tool_calls", sample)
    for key in ("reasoning", "reasoning_content"):
        if key in message:
            sample.result.flags |= REASONING
            if not isinstance(message[key], str):
                sample.problem(f"{where}.{key}", f"must be a string, got {_type_name(message[key])}")
    if "content" not in message or message["content"] is None:
        if not has_calls:
            sample.problem(f"{where}.content", "missing: the output needs content (or tool_calls)")
    else:
        _check_content(message["content"], f"{where}.content", sample, images_allowed=False)
