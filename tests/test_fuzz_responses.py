"""
Fuzzed answers: random JSON values (and random bytes) fed to every parsing call of the hook.

Whatever Together, or anything between it and us, answers with a 200, the call returns a parsed model or
raises :class:`TogetherResponseError`: never a raw pydantic, JSON, ``TypeError`` or ``KeyError``. The calls
run through the real flow core and sync driver (``run_flow``), with ``httpx.MockTransport`` as the server.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_together._transport import evals, ops
from airflow_provider_together._transport.drivers import run_flow
from airflow_provider_together._transport.flow import Context
from airflow_provider_together._transport.retry import RetryPolicy
from airflow_provider_together._transport.settings import TogetherSettings
from airflow_provider_together.exceptions import TogetherResponseError

SETTINGS = TogetherSettings(
    base_url="https://api.together.ai/v1", api_key="tk-fuzz-0123456789", max_retries=0
)
CTX = Context(SETTINGS, RetryPolicy(max_retries=0, jitter=lambda: 0.0))

#: Every call whose answer is parsed from JSON, with arguments.
CALLS: list[tuple[str, Any, tuple[Any, ...]]] = [
    ("get_file", ops.get_file, ("file-123456",)),
    ("list_files", ops.list_files, ()),
    ("get_fine_tune", ops.get_fine_tune, ("ft-1",)),
    ("list_fine_tunes", ops.list_fine_tunes, ()),
    ("cancel_fine_tune", ops.cancel_fine_tune, ("ft-1",)),
    ("list_fine_tune_events", ops.list_fine_tune_events, ("ft-1",)),
    ("list_fine_tune_checkpoints", ops.list_fine_tune_checkpoints, ("ft-1",)),
    ("get_fine_tune_metrics", ops.get_fine_tune_metrics, ("ft-1",)),
    ("estimate_fine_tune_price", ops.estimate_fine_tune_price, ({"training_file": "file-1"},)),
    ("get_model_limits", ops.get_model_limits, ("m",)),
    ("check_connection", ops.check_connection, ()),
    ("get_evaluation", evals.get_evaluation, ("eval-1",)),
    ("get_evaluation_status", evals.get_evaluation_status, ("eval-1",)),
    ("list_evaluations", evals.list_evaluations, ()),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
#: Keys the models read, so that random values land on real fields too, not only on ignored extras.
KNOWN_KEYS = [
    "id",
    "status",
    "data",
    "events",
    "created_at",
    "model",
    "processing_status",
    "results",
    "type",
    "estimation_available",
    "estimated_total_price",
    "metrics",
    "lora_training",
    "step",
    "message",
]
objects = st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values, max_size=8)


def run(call: Any, args: tuple[Any, ...], body: bytes) -> Any:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, content=body, headers={"content-type": "application/json"})
    )
    with httpx.Client(transport=transport) as client:
        return run_flow(call(CTX, *args), client, SETTINGS, lambda seconds: None)


def only_response_errors(call: Any, args: tuple[Any, ...], body: bytes) -> None:
    error: TogetherResponseError | None = None
    try:
        run(call, args, body)
    except TogetherResponseError as exc:
        error = exc
    if error is not None:
        assert error.status_code == 200
        assert SETTINGS.api_key not in str(error)


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(("name", "call", "args"), CALLS, ids=[c[0] for c in CALLS])
@FUZZ
@given(value=json_values | objects)
def test_random_json_parses_or_is_a_response_error(
    name: str, call: Any, args: tuple[Any, ...], value: Any
) -> None:
    only_response_errors(call, args, json.dumps(value).encode())


@pytest.mark.parametrize(("name", "call", "args"), CALLS, ids=[c[0] for c in CALLS])
@FUZZ
@given(value=st.dictionaries(st.just("data"), st.lists(objects | json_values, max_size=3)))
def test_random_lists_parse_or_are_a_response_error(
    name: str, call: Any, args: tuple[Any, ...], value: Any
) -> None:
    only_response_errors(call, args, json.dumps(value).encode())


@pytest.mark.parametrize(("name", "call", "args"), CALLS, ids=[c[0] for c in CALLS])
@FUZZ
@given(body=st.binary(max_size=64))
def test_random_bytes_parse_or_are_a_response_error(
    name: str, call: Any, args: tuple[Any, ...], body: bytes
) -> None:
    only_response_errors(call, args, body)
