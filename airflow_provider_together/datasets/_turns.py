"""Turn order of a conversation: which role may follow which.

Each message is reduced to one letter (``s`` system, ``u`` user, ``a`` assistant, ``c`` assistant that
calls tools, ``t`` tool result) and a sample's letters must spell a word of this language::

    s? u ( (c t+)* a u )* (c t+)* [ac]?

In words: an optional system message first, then a user message; after a user message the assistant
answers, either directly or through rounds of tool calls each followed by their tool results; after an
answer the user speaks again. A sample may end anywhere after the first user message (ending on a tool call
is how a model learns to call tools). This is the documented rule (start with system or user, then alternate
user/assistant) extended with OpenAI-style tool rounds, which Together accepts for function-calling data.

The fast path matches the regular expression; the precise path walks the same automaton message by message
to name the first message that breaks it. Tests check that both accept exactly the same words.
"""

from __future__ import annotations

import re

SYSTEM, USER, ASSISTANT, TOOL_CALL, TOOL = "s", "u", "a", "c", "t"

TURNS_RE = re.compile(r"s?u(?:(?:ct+)*au)*(?:ct+)*[ac]?")

_START = "start"
# state -> {letter: next state}; a state is named after the last letter read.
_NEXT: dict[str, dict[str, str]] = {
    _START: {SYSTEM: SYSTEM, USER: USER},
    SYSTEM: {USER: USER},
    USER: {ASSISTANT: ASSISTANT, TOOL_CALL: TOOL_CALL},
    ASSISTANT: {USER: USER},
    TOOL_CALL: {TOOL: TOOL},
    TOOL: {TOOL: TOOL, ASSISTANT: ASSISTANT, TOOL_CALL: TOOL_CALL},
}
_ENDS = {USER, ASSISTANT, TOOL_CALL, TOOL}

_EXPECTED = {
    _START: "the first message must be a system or user message",
    SYSTEM: "the system message must be followed by a user message",
    USER: "a user message must be followed by an assistant message (roles alternate user/assistant)",
    ASSISTANT: "an assistant message must be followed by a user message (roles alternate user/assistant)",
    TOOL_CALL: "an assistant message with tool_calls must be followed by tool messages holding the results",
    TOOL: "tool results must be followed by another tool result or an assistant message",
}
_NAMES = {
    SYSTEM: "a system",
    USER: "a user",
    ASSISTANT: "an assistant",
    TOOL_CALL: "an assistant (with tool_calls)",
    TOOL: "a tool",
}


def first_turn_error(letters: str) -> tuple[int, str] | None:
    """Return ``(index, message)`` for the first message that breaks the turn order, or ``None``.

    ``index`` is ``len(letters)`` when the order is fine until the sample ends too early.

    :param letters: one letter per message, as described in the module docstring.
    """
    state = _START
    for index, letter in enumerate(letters):
        following = _NEXT[state].get(letter)
        if following is None:
            if state == _START:
                return index, f"the conversation starts with {_NAMES[letter]} message: {_EXPECTED[state]}"
            return index, f"{_NAMES[letter]} message follows {_NAMES[state]} message: {_EXPECTED[state]}"
        state = following
    if state not in _ENDS:
        return len(letters), f"the conversation ends too early: {_EXPECTED[state]}"
    return None
