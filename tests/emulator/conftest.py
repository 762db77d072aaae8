"""Fixtures for the emulator's own tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _emu_helpers import conversation_lines

from airflow_provider_together.emulator import Emulator


@pytest.fixture
def api(together_emulator: Emulator) -> Iterator[httpx.Client]:
    """An httpx client on the emulator's /v1 with the right key."""
    headers = {"Authorization": f"Bearer {together_emulator.api_key}"}
    with httpx.Client(base_url=together_emulator.base_url, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
def tmp_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_bytes(conversation_lines())
    return path
