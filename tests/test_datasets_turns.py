"""Turn order: the regular expression of the fast path and the automaton of the precise path agree."""

from __future__ import annotations

import itertools

import pytest

from airflow_provider_together.datasets._fast import _SFT_TURNS_RE
from airflow_provider_together.datasets._turns import TURNS_RE, first_turn_error


def test_regex_and_automaton_accept_the_same_words() -> None:
    for length in range(8):
        for letters in itertools.product("suact", repeat=length):
            word = "".join(letters)
            assert (TURNS_RE.fullmatch(word) is not None) == (first_turn_error(word) is None), word
            needs_assistant = TURNS_RE.fullmatch(word) is not None and ("a" in word or "c" in word)
            assert (_SFT_TURNS_RE.fullmatch(word) is not None) == needs_assistant, word


@pytest.mark.parametrize(
    ("word", "index", "phrase"),
    [
        ("a", 0, "starts with an assistant"),
        ("uu", 1, "a user message follows a user message"),
        ("sa", 1, "the system message must be followed by a user message"),
        ("ua t", 2, "a tool message follows an assistant message"),
        ("ucu", 2, "must be followed by tool messages"),
        ("s", 1, "ends too early"),
        ("", 0, "ends too early"),
    ],
)
def test_first_error_position_and_message(word: str, index: int, phrase: str) -> None:
    word = word.replace(" ", "")
    error = first_turn_error(word)
    assert error is not None
    assert error[0] == index
    assert phrase in error[1]


@pytest.mark.parametrize("word", ["ua", "sua", "uauau", "uc", "uctta", "ucttcta", "ucta", "u"])
def test_valid_words(word: str) -> None:
    assert first_turn_error(word) is None
