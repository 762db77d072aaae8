"""The emulator's hostile-answer faults: each one answers as documented, so users can test their DAGs on them."""

from __future__ import annotations

import base64
import gzip
import time
from typing import Any

import httpx
import pytest

from airflow_provider_together.emulator import Emulator
from airflow_provider_together.exceptions import TogetherResponseError, TogetherTransportError
from airflow_provider_together.hooks import TogetherHook

pytestmark = pytest.mark.timeout(120)


def raw_get(emu: Emulator, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {emu.api_key}", "Accept-Encoding": "identity"}
    return httpx.get(emu.base_url + path, headers=headers, timeout=10, follow_redirects=False, **kwargs)


def test_body_b64_serves_bytes_that_are_not_text(together_emulator: Emulator) -> None:
    together_emulator.admin.add_fault(
        "GET /v1/files", "body", body_b64=base64.b64encode(b'{"data": "\xff"}').decode()
    )
    assert raw_get(together_emulator, "/files").content == b'{"data": "\xff"}'


def test_redirect_loops_to_the_same_path(together_emulator: Emulator) -> None:
    together_emulator.admin.add_fault("GET /v1/files", "redirect")
    answer = raw_get(together_emulator, "/files")
    assert (answer.status_code, answer.headers["location"]) == (302, "/v1/files")


def test_gzip_bomb_is_small_on_the_wire_and_large_decoded(together_emulator: Emulator) -> None:
    together_emulator.admin.add_fault("GET /v1/files", "gzip_bomb", size_mb=8)
    headers = {"Authorization": f"Bearer {together_emulator.api_key}"}
    with httpx.stream("GET", together_emulator.base_url + "/files", headers=headers, timeout=10) as answer:
        wire = b"".join(answer.iter_raw())
    assert answer.headers["content-encoding"] == "gzip"
    assert len(wire) < 64 * 1024
    assert len(gzip.decompress(wire)) == 8 << 20


def test_truncate_declares_more_than_it_sends_then_closes(together_emulator: Emulator) -> None:
    together_emulator.admin.add_fault("GET /v1/files", "truncate")
    with pytest.raises(httpx.RemoteProtocolError):
        raw_get(together_emulator, "/files")


def test_slow_trickles_the_real_answer(together_emulator: Emulator) -> None:
    together_emulator.admin.add_fault("GET /v1/files", "slow", bytes_per_second=4)
    started = time.monotonic()
    answer = raw_get(together_emulator, "/files")
    assert answer.json() == {"data": [], "object": "list"} or answer.json()["data"] == []
    assert time.monotonic() - started >= 1.0  # more than one step of 4 bytes


def test_cli_specs_for_the_hostile_kinds() -> None:
    from airflow_provider_together.emulator.faults import FaultKind, parse_fault_spec

    assert parse_fault_spec("GET /v1/*=gzip_bomb,size_mb=1024").size_mb == 1024
    assert parse_fault_spec("GET /v1/*=slow,bytes_per_second=1").kind is FaultKind.SLOW
    assert parse_fault_spec("GET /v1/*=truncate,count=1").count == 1
    assert parse_fault_spec("GET /v1/*=redirect").kind is FaultKind.REDIRECT


@pytest.mark.parametrize(
    ("kind", "options", "error"),
    [
        ("body", {"body": "<html>proxy error</html>", "content_type": "text/html"}, TogetherResponseError),
        ("gzip_bomb", {"size_mb": 64}, TogetherResponseError),
        ("redirect", {}, TogetherResponseError),
        ("truncate", {}, TogetherTransportError),
    ],
)
def test_the_hook_sees_a_clear_error_and_recovers_after_one_bad_answer(
    together_emulator_conn: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    options: dict[str, Any],
    error: type,
) -> None:
    emu = together_emulator_conn
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", emu.conn_json(max_retries=0, max_response_mb=32))
    emu.admin.add_fault("GET /v1/files", kind, count=1, **options)
    with pytest.raises(error):
        TogetherHook().list_files()
    assert TogetherHook().list_files() == []  # the fault was a burst of one: the next answer is fine
