"""Shared fixtures of the hook tests: a respx router at the HTTP boundary and a sync/async call switch."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_together._transport.aio import AiohttpTransport
from airflow_provider_together.hooks import TogetherHook
from tests.conftest import TEST_API_KEY

BASE = "https://api.together.ai/v1"
Call = Callable[..., Awaitable[Any]]


def set_conn(monkeypatch: pytest.MonkeyPatch, host: str = BASE, **extra: Any) -> None:
    """(Re)define ``together_default``; retries are instant because every hook here gets a fake sleep."""
    conn = {
        "conn_type": "together",
        "password": TEST_API_KEY,
        "host": host,
        "extra": {"max_retries": 2, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", json.dumps(conn))


class Sleeps(list[float]):
    """Records every wait instead of waiting: the public ``sleep``/``asleep`` seam of the hook."""

    def sleep(self, seconds: float) -> None:
        self.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def hook(monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps) -> AsyncIterator[TogetherHook]:
    set_conn(monkeypatch)
    yield TogetherHook(sleep=sleeps.sleep, asleep=sleeps.asleep)
    # The async client is shared per event loop; close it before the test's loop ends.
    await TogetherHook.aclose_async_clients()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[respx.MockRouter]:
    # "httpx": mock where ``client.send`` routes a request to its transport (the sync client, and the async
    # one on ``async_transport: httpx``). The default async client hands requests straight to its aiohttp
    # transport, so the same router answers there too, through the transport's public method; the
    # transport itself is tested on the wire (tests/test_aio.py).
    with respx.mock(base_url=BASE, assert_all_called=False, using="httpx") as router:
        mock = httpx.MockTransport(router.async_handler)

        async def answer(self: AiohttpTransport, request: httpx.Request) -> httpx.Response:
            return await mock.handle_async_request(request)

        monkeypatch.setattr(AiohttpTransport, "handle_async_request", answer)
        yield router


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Call:
    """``await call(hook, "get_fine_tune", "ft-1")`` runs the sync method or its ``a``-prefixed twin."""
    mode = request.param

    async def invoke(hook: TogetherHook, name: str, *args: Any, **kwargs: Any) -> Any:
        if mode == "sync":
            return getattr(hook, name)(*args, **kwargs)
        return await getattr(hook, f"a{name}")(*args, **kwargs)

    invoke.mode = mode  # type: ignore[attr-defined]
    return invoke


def job(job_id: str = "ft-1", status: str = "running", **fields: Any) -> dict[str, Any]:
    return {"id": job_id, "status": status, "model": "meta-llama/Llama-3-8b", **fields}


def file_obj(file_id: str = "file-1", status: str | None = "COMPLETED", **fields: Any) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "filename": "train.jsonl",
        "FileType": "jsonl",
        "processing_status": status,
        **fields,
    }
