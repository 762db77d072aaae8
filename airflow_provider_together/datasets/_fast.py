"""The fast path: vouch for whole blocks of well-formed lines with one typed C decode per line.

A line is *accepted* only if it decodes into one of the narrow shapes of ``_schema`` and passes the few
checks that types cannot express (turn order, content present). Everything else is *rejected* and goes to
the precise checker, which decides and explains. Accepting is therefore never more lenient than the rules;
rejecting costs only time. Python-level work per accepted line is a handful of operations.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

import msgspec

from airflow_provider_together.datasets import _sample, _schema
from airflow_provider_together.datasets._report import DatasetFormat
from airflow_provider_together.datasets._turns import TURNS_RE

if TYPE_CHECKING:
    from collections.abc import Callable

# Must match the precise checker's token estimate (``_jsonl``): JSON syntax per message and per sample.
MESSAGE_OVERHEAD = 32
SAMPLE_OVERHEAD = 12

# A fine-tuning conversation must follow the turn order and hold an assistant message: after the first user
# message any continuation starts with an assistant letter, so "an assistant is present" is a lookahead.
_SFT_TURNS = rf"s?u(?=[ac]){TURNS_RE.pattern.removeprefix('s?u')}"
_SFT_TURNS_RE = re.compile(_SFT_TURNS)
_PLAIN_LETTERS: dict[type, str] = {
    _schema.PlainSystem: "s",
    _schema.PlainUser: "u",
    _schema.PlainAssistant: "a",
}
_RICH_LETTERS: dict[type, str] = {_schema.System: "s", _schema.User: "u", _schema.Tool: "t"}
# Message-level flags: once a block has raised all of them, rich lines only need their turn-order letters.
_MESSAGE_FLAGS = _sample.MESSAGE_WEIGHTS | _sample.TOOLS | _sample.REASONING
_plain_decode = msgspec.json.Decoder(_schema.PlainConversation).decode
_conversation_decode = msgspec.json.Decoder(_schema.Conversation).decode
_general_decode = msgspec.json.Decoder(_schema.General).decode
_instruction_decode = msgspec.json.Decoder(_schema.Instruction).decode
_preference_decode = msgspec.json.Decoder(_schema.Preference).decode
_turns_match = TURNS_RE.fullmatch
_UNSET = msgspec.UNSET
_DecodeErrors = (msgspec.DecodeError, UnicodeDecodeError)


@dataclasses.dataclass
class BlockOutcome:
    """What the fast path vouched for in a block.

    :param samples: accepted (non-blank) lines.
    :param flags: ``_sample`` flags raised by accepted lines.
    :param text_bytes: the token-estimate byte count of accepted lines.
    :param rejected: indices of lines the precise checker must look at (blank lines included).
    """

    samples: int = 0
    flags: int = 0
    text_bytes: int = 0
    rejected: list[int] = dataclasses.field(default_factory=list)


def check_block(lines: list[bytes], fmt: DatasetFormat) -> BlockOutcome | None:
    """Check ``lines`` against the file's format; ``None`` when that format has no fast path."""
    checker = _CHECKERS.get(fmt)
    if checker is None:
        return None
    return checker(lines)


def _letters_and_flags(
    messages: list[_schema.System | _schema.User | _schema.Assistant | _schema.Tool],
) -> tuple[str, int]:
    """Return the turn-order letters and flags of rich messages; ``""`` letters reject the sample."""
    letters = []
    flags = 0
    for message in messages:
        if message.weight is not _UNSET:
            flags |= _sample.MESSAGE_WEIGHTS
        if type(message) is _schema.Assistant:
            if message.tool_calls is _UNSET:
                if message.content is None:
                    return "", 0
                letters.append("a")
            else:
                letters.append("c")
                flags |= _sample.TOOLS
            if message.reasoning is not _UNSET or message.reasoning_content is not _UNSET:
                flags |= _sample.REASONING
        elif type(message) is _schema.User:
            letters.append("u")
        elif type(message) is _schema.System:
            letters.append("s")
        else:
            letters.append("t")
            flags |= _sample.TOOLS
    return "".join(letters), flags


def _letters(messages: list[_schema.System | _schema.User | _schema.Assistant | _schema.Tool]) -> str:
    """Return the turn-order letters of rich messages (``""`` rejects), once their flags are all known."""
    letters = []
    for message in messages:
        if type(message) is _schema.Assistant:
            if message.tool_calls is _UNSET:
                if message.content is None:
                    return ""
                letters.append("a")
            else:
                letters.append("c")
        else:
            letters.append(_RICH_LETTERS[type(message)])
    return "".join(letters)


def _assistant_flags(message: _schema.Assistant | _schema.OutputAssistant) -> int:
    flags = 0 if message.tool_calls is _UNSET else _sample.TOOLS
    if message.reasoning is not _UNSET or message.reasoning_content is not _UNSET:
        flags |= _sample.REASONING
    return flags


def _check_preferences(lines: list[bytes]) -> BlockOutcome:
    outcome = BlockOutcome()
    rejected = outcome.rejected
    decode = _preference_decode
    messages_total = 0
    accepted_bytes = 0
    flags = 0
    for index, line in enumerate(lines):
        try:
            sample = decode(line)
        except _DecodeErrors:
            rejected.append(index)
            continue
        messages = sample.input.messages
        letters, sample_flags = _letters_and_flags(messages)
        outputs = (sample.preferred_output[0], sample.non_preferred_output[0])
        if (
            not letters
            or letters[-1] in "ac"  # the outputs answer the input, so it cannot end on the assistant
            or _turns_match(letters) is None
            or sample_flags & _sample.MESSAGE_WEIGHTS  # DPO has no message weights
            or any(output.content is None and output.tool_calls is _UNSET for output in outputs)
        ):
            rejected.append(index)
            continue
        flags |= sample_flags | _assistant_flags(outputs[0]) | _assistant_flags(outputs[1])
        if sample.input.tools is not _UNSET:
            flags |= _sample.TOOLS
        messages_total += len(messages) + 2
        accepted_bytes += len(line)
    outcome.samples = len(lines) - len(rejected)
    outcome.flags = flags
    outcome.text_bytes = (
        accepted_bytes - SAMPLE_OVERHEAD * outcome.samples - MESSAGE_OVERHEAD * messages_total
    )
    return outcome


def _check_conversations(lines: list[bytes]) -> BlockOutcome:
    outcome = BlockOutcome()
    rejected = outcome.rejected
    plain_decode = _plain_decode
    # Role sequences of plain lines already matched in this block: a file has few distinct ones, so most
    # lines cost one set lookup instead of building their turn-order word.
    valid_roles: set[tuple[type, ...]] = set()
    messages_total = accepted_bytes = flags = 0
    # Files are homogeneous: once a line needed the rich shape (weights, tools, reasoning), the next lines
    # most likely do too, and the rich shape accepts plain lines as well, so stop trying the plain one.
    rich_mode = False
    for index, line in enumerate(lines):
        if not rich_mode:
            try:
                roles = tuple(map(type, plain_decode(line).messages))
            except _DecodeErrors:
                pass
            else:
                if roles not in valid_roles:
                    if _SFT_TURNS_RE.fullmatch("".join([_PLAIN_LETTERS[role] for role in roles])) is None:
                        rejected.append(index)
                        continue
                    valid_roles.add(roles)
                messages_total += len(roles)
                accepted_bytes += len(line)
                continue
        rich = _rich_conversation(line, flags & _MESSAGE_FLAGS == _MESSAGE_FLAGS)
        if rich is None:
            rejected.append(index)
            continue
        rich_mode = True
        messages_total += rich[0]
        flags |= rich[1]
        accepted_bytes += len(line)
    outcome.samples = len(lines) - len(rejected)
    outcome.flags = flags
    outcome.text_bytes = (
        accepted_bytes - SAMPLE_OVERHEAD * outcome.samples - MESSAGE_OVERHEAD * messages_total
    )
    return outcome


def _rich_conversation(line: bytes, flags_known: bool) -> tuple[int, int] | None:
    """Return ``(messages, flags)`` of a valid conversation with optional features, else ``None``.

    :param flags_known: every message-level flag is already raised, so only the turn order is computed.
    """
    try:
        sample = _conversation_decode(line)
    except _DecodeErrors:
        return None
    if flags_known:
        letters, flags = _letters(sample.messages), 0
    else:
        letters, flags = _letters_and_flags(sample.messages)
    if not letters or _SFT_TURNS_RE.fullmatch(letters) is None:
        return None
    if sample.weight is not _UNSET:
        flags |= _sample.SAMPLE_WEIGHTS
    if sample.tools is not _UNSET:
        flags |= _sample.TOOLS
    return len(letters), flags


def _simple_checker(
    decode: Callable[[bytes], _schema.General | _schema.Instruction], messages: int
) -> Callable[[list[bytes]], BlockOutcome]:
    def check(lines: list[bytes]) -> BlockOutcome:
        outcome = BlockOutcome()
        rejected = outcome.rejected
        accepted_bytes = 0
        weighted = False
        for index, line in enumerate(lines):
            try:
                sample = decode(line)
            except _DecodeErrors:
                rejected.append(index)
                continue
            accepted_bytes += len(line)
            if sample.weight is not _UNSET:
                weighted = True
        outcome.samples = len(lines) - len(rejected)
        outcome.flags = _sample.SAMPLE_WEIGHTS if weighted else 0
        outcome.text_bytes = (
            accepted_bytes - (SAMPLE_OVERHEAD + MESSAGE_OVERHEAD * messages) * outcome.samples
        )
        return outcome

    return check


_CHECKERS: dict[DatasetFormat, Callable[[list[bytes]], BlockOutcome]] = {
    DatasetFormat.CONVERSATION: _check_conversations,
    DatasetFormat.GENERAL: _simple_checker(_general_decode, 0),
    DatasetFormat.INSTRUCTION: _simple_checker(_instruction_decode, 2),
    DatasetFormat.PREFERENCE: _check_preferences,
}
