"""Precise rules for messages and what they hold: roles, turn order, content parts, images, tools."""

from __future__ import annotations

from typing import Any

from airflow_provider_together.datasets import _limits
from airflow_provider_together.datasets._sample import (
    MESSAGE_WEIGHTS,
    MULTIMODAL,
    REASONING,
    TOOLS,
    Sample,
    type_name,
    unknown_keys,
)
from airflow_provider_together.datasets._turns import (
    ASSISTANT,
    SYSTEM,
    TOOL,
    TOOL_CALL,
    USER,
    first_turn_error,
)

_MESSAGE_KEYS: dict[str, tuple[str, ...]] = {
    "system": ("role", "content", "weight"),
    "user": ("role", "content", "weight"),
    "assistant": ("role", "content", "weight", "tool_calls", "reasoning", "reasoning_content"),
    "tool": ("role", "content", "weight", "tool_call_id"),
}
_OUTPUT_KEYS = ("role", "content", "tool_calls", "reasoning", "reasoning_content")


def check_messages(
    messages: Any, path: str, sample: Sample, *, need_assistant: bool, for_preference: bool = False
) -> str:
    """Check a message list and its turn order; return the role letters of the well-formed messages."""
    if not isinstance(messages, list):
        sample.problem(path, f"must be a list of messages, got {type_name(messages)}")
        return ""
    if not messages:
        sample.problem(path, "must contain at least one message")
        return ""
    sample.result.messages += len(messages)
    letters = [
        _check_message(message, f"{path}[{index}]", sample, for_preference=for_preference)
        for index, message in enumerate(messages)
    ]
    if None in letters:
        return ""  # the turn order cannot be judged around a message without a valid role
    word = "".join(letter for letter in letters if letter is not None)
    turn_error = first_turn_error(word)
    if turn_error is not None:
        index, message = turn_error
        sample.problem(f"{path}[{min(index, len(word) - 1)}].role", message)
    elif need_assistant and ASSISTANT not in word and TOOL_CALL not in word:
        sample.problem(path, "at least one message must have the assistant role: it is what the model learns")
    return word


def _check_message(message: Any, path: str, sample: Sample, *, for_preference: bool) -> str | None:
    if not isinstance(message, dict):
        sample.problem(
            path, f"each message must be an object with `role` and `content`, got {type_name(message)}"
        )
        return None
    role = message.get("role")
    if "role" not in message:
        sample.problem(f"{path}.role", f"missing (one of {', '.join(_limits.ROLES)})")
        return None
    if not isinstance(role, str) or role not in _MESSAGE_KEYS:
        sample.problem(f"{path}.role", f"invalid role {role!r}: use one of {', '.join(_limits.ROLES)}")
        return None
    allowed = _MESSAGE_KEYS[role]
    if for_preference:
        allowed = tuple(key for key in allowed if key != "weight")
    unknown_keys(message, allowed, path, sample)
    has_calls = role == "assistant" and message.get("tool_calls") is not None
    if has_calls:
        check_tool_calls(message["tool_calls"], f"{path}.tool_calls", sample)
    for key in ("reasoning", "reasoning_content"):
        if key in message and role == "assistant":
            sample.result.flags |= REASONING
            if not isinstance(message[key], str):
                sample.problem(f"{path}.{key}", f"must be a string, got {type_name(message[key])}")
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
        check_content(message["content"], f"{path}.content", sample, images_allowed=role == "user")
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


def check_tools(tools: Any, path: str, sample: Sample) -> None:
    """Check the tool definitions offered to the model (``tools`` at the top or in a preference input)."""
    sample.result.flags |= TOOLS
    if not isinstance(tools, list):
        sample.problem(path, f"must be a list of tool definitions, got {type_name(tools)}")
        return
    for index, tool in enumerate(tools):
        where = f"{path}[{index}]"
        if not isinstance(tool, dict):
            sample.problem(where, f"must be an object, got {type_name(tool)}")
            continue
        unknown_keys(tool, ("type", "function"), where, sample)
        if tool.get("type") != "function":
            sample.problem(f"{where}.type", 'must be "function"')
        function = tool.get("function")
        if not isinstance(function, dict):
            sample.problem(
                f"{where}.function", "must be an object with `name` (and optional description, parameters)"
            )
            continue
        unknown_keys(function, ("name", "description", "parameters", "strict"), f"{where}.function", sample)
        if not isinstance(function.get("name"), str) or not function["name"]:
            sample.problem(f"{where}.function.name", "must be a non-empty string")
        if "description" in function and not isinstance(function["description"], str):
            sample.problem(f"{where}.function.description", "must be a string")
        if "parameters" in function and not isinstance(function["parameters"], dict):
            sample.problem(f"{where}.function.parameters", "must be a JSON Schema object")


def check_tool_calls(calls: Any, path: str, sample: Sample) -> None:
    """Check an assistant message's ``tool_calls``: OpenAI-style function calls with string arguments."""
    sample.result.flags |= TOOLS
    if not isinstance(calls, list) or not calls:
        sample.problem(path, "must be a non-empty list of tool calls")
        return
    for index, call in enumerate(calls):
        where = f"{path}[{index}]"
        if not isinstance(call, dict):
            sample.problem(where, f"must be an object, got {type_name(call)}")
            continue
        unknown_keys(call, ("id", "type", "function"), where, sample)
        if "id" in call and not isinstance(call["id"], str):
            sample.problem(f"{where}.id", "must be a string")
        if call.get("type", "function") != "function":
            sample.problem(f"{where}.type", 'must be "function"')
        function = call.get("function")
        if not isinstance(function, dict):
            sample.problem(f"{where}.function", "must be an object with `name` and `arguments`")
            continue
        unknown_keys(function, ("name", "arguments"), f"{where}.function", sample)
        if not isinstance(function.get("name"), str) or not function["name"]:
            sample.problem(f"{where}.function.name", "must be a non-empty string")
        if not isinstance(function.get("arguments"), str):
            sample.problem(
                f"{where}.function.arguments", "must be a string holding the JSON-encoded arguments"
            )


def check_content(content: Any, path: str, sample: Sample, *, images_allowed: bool) -> None:
    """Check a content value (a string or a list of parts) and that the sample does not mix the two."""
    if isinstance(content, str):
        kind = "string"
    elif isinstance(content, list):
        kind = "list"
        _check_parts(content, path, sample, images_allowed=images_allowed)
    else:
        sample.problem(path, f"must be a string or a list of content parts, got {type_name(content)}")
        return
    if not sample.content_kinds:
        sample.first_kind_path = path
    elif kind not in sample.content_kinds:
        sample.problem(
            path,
            f"is a {kind} but {sample.first_kind_path} is not: one sample cannot mix string and list content",
        )
    sample.content_kinds.add(kind)


def _check_parts(parts: list[Any], path: str, sample: Sample, *, images_allowed: bool) -> None:
    images = 0
    for index, part in enumerate(parts):
        where = f"{path}[{index}]"
        if not isinstance(part, dict):
            sample.problem(where, f"a content part must be an object with `type`, got {type_name(part)}")
            continue
        kind = part.get("type")
        if kind == "text":
            unknown_keys(part, ("type", "text"), where, sample)
            if not isinstance(part.get("text"), str):
                sample.problem(f"{where}.text", "a text part needs a string `text`")
        elif kind == "image_url":
            unknown_keys(part, ("type", "image_url"), where, sample)
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


def _check_image(image: Any, path: str, sample: Sample) -> None:
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        sample.problem(path, 'must be an object {"url": "data:image/<jpeg|png|webp>;base64,..."}')
        return
    unknown_keys(image, ("url", "detail"), path, sample)
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
    if _limits.BASE64_RE.fullmatch(url, header.end()) is None:
        sample.problem(f"{path}.url", "the image data after `;base64,` is not valid base64")
    elif payload > _limits.MAX_IMAGE_BASE64_CHARS:
        mib = payload * 3 / 4 / (1 << 20)
        sample.problem(f"{path}.url", f"the image is about {mib:.1f} MiB; the limit is 10 MiB per image")


def check_output(output: Any, path: str, sample: Sample) -> None:
    """Check a preference output: a list holding exactly one assistant message."""
    if not isinstance(output, list) or len(output) != 1:
        shown = f"{len(output)} items" if isinstance(output, list) else type_name(output)
        sample.problem(path, f"must be a list of exactly one assistant message, got {shown}")
        return
    message = output[0]
    where = f"{path}[0]"
    if not isinstance(message, dict):
        sample.problem(where, f"must be an assistant message object, got {type_name(message)}")
        return
    sample.result.messages += 1
    unknown_keys(message, _OUTPUT_KEYS, where, sample)
    if message.get("role") != "assistant":
        sample.problem(f"{where}.role", f'must be "assistant", got {message.get("role")!r}')
    has_calls = message.get("tool_calls") is not None
    if has_calls:
        check_tool_calls(message["tool_calls"], f"{where}.tool_calls", sample)
    for key in ("reasoning", "reasoning_content"):
        if key in message:
            sample.result.flags |= REASONING
            if not isinstance(message[key], str):
                sample.problem(f"{where}.{key}", f"must be a string, got {type_name(message[key])}")
    if "content" not in message or message["content"] is None:
        if not has_calls:
            sample.problem(f"{where}.content", "missing: the output needs content (or tool_calls)")
    else:
        check_content(message["content"], f"{where}.content", sample, images_allowed=False)
