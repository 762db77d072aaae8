"""Typed shapes of the common, valid JSONL samples, decoded in C by msgspec.

They are deliberately narrower than the rules in ``_rules``: anything they reject (list content and images,
preference data, odd but legal values) is handed to the precise checker. Their job is to vouch, in one C
call per line, for the great majority of lines of a well-formed file. Unknown keys are forbidden at every
level, exactly as in the precise rules.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import msgspec

# These modules are imported at runtime by msgspec to build decoders, so the annotations must resolve:
# no TYPE_CHECKING-only imports here.

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
Weight = Literal[0, 1]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    pass


# --- plain conversations: string content, three roles, no optional keys (the common case) ------------
class PlainSystem(_Strict, tag_field="role", tag="system"):
    content: str


class PlainUser(_Strict, tag_field="role", tag="user"):
    content: str


class PlainAssistant(_Strict, tag_field="role", tag="assistant"):
    content: str


class PlainConversation(_Strict):
    messages: list[Union[PlainSystem, PlainUser, PlainAssistant]]  # noqa: UP007 - msgspec reads it at runtime


# --- conversations with weights, tools, tool calls and reasoning (string content) ---------------------
class FunctionSpec(_Strict):
    name: NonEmptyStr
    description: str = ""
    parameters: dict[str, Any] = {}
    strict: bool = False


class ToolSpec(_Strict):
    type: Literal["function"]
    function: FunctionSpec


class FunctionCall(_Strict):
    name: NonEmptyStr
    arguments: str


class ToolCall(_Strict):
    function: FunctionCall
    id: str = ""
    type: Literal["function"] = "function"


class System(_Strict, tag_field="role", tag="system"):
    content: str
    weight: Weight | msgspec.UnsetType = msgspec.UNSET


class User(_Strict, tag_field="role", tag="user"):
    content: str
    weight: Weight | msgspec.UnsetType = msgspec.UNSET


class Assistant(_Strict, tag_field="role", tag="assistant"):
    content: str | None = None
    weight: Weight | msgspec.UnsetType = msgspec.UNSET
    tool_calls: Annotated[list[ToolCall], msgspec.Meta(min_length=1)] | msgspec.UnsetType = msgspec.UNSET
    reasoning: str | msgspec.UnsetType = msgspec.UNSET
    reasoning_content: str | msgspec.UnsetType = msgspec.UNSET


class Tool(_Strict, tag_field="role", tag="tool"):
    content: str
    weight: Weight | msgspec.UnsetType = msgspec.UNSET
    tool_call_id: str = ""


class Conversation(_Strict):
    messages: list[Union[System, User, Assistant, Tool]]  # noqa: UP007 - msgspec reads it at runtime
    tools: list[ToolSpec] | msgspec.UnsetType = msgspec.UNSET
    weight: NonNegative | msgspec.UnsetType = msgspec.UNSET


# --- the other SFT formats, string content only ---------------------------------------------------------
class General(_Strict):
    text: str
    weight: NonNegative | msgspec.UnsetType = msgspec.UNSET


class Instruction(_Strict):
    prompt: str
    completion: str
    weight: NonNegative | msgspec.UnsetType = msgspec.UNSET


# --- preference (DPO) data: no weights anywhere, exactly one assistant message per output ---------------
class OutputAssistant(_Strict):
    role: Literal["assistant"]
    content: str | None = None
    tool_calls: Annotated[list[ToolCall], msgspec.Meta(min_length=1)] | msgspec.UnsetType = msgspec.UNSET
    reasoning: str | msgspec.UnsetType = msgspec.UNSET
    reasoning_content: str | msgspec.UnsetType = msgspec.UNSET


class PreferenceInput(_Strict):
    messages: list[Union[System, User, Assistant, Tool]]  # noqa: UP007 - msgspec reads it at runtime
    tools: list[ToolSpec] | msgspec.UnsetType = msgspec.UNSET


class Preference(_Strict):
    input: PreferenceInput
    preferred_output: tuple[OutputAssistant]
    non_preferred_output: tuple[OutputAssistant]
