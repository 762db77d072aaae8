"""The async path in the triggerer: one shared client per (loop, connection), bounded requests in flight."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
import pytest

from airflow_provider_together.hooks import TogetherHook
from tests import _hook_support as support
from tests._hook_support import job, set_conn

api = support.api  # a shared fixture, assigned rather than imported so that parameters may reuse the name


@pytest.fixture
def counting(monkeypatch):
    """Counts ``httpx.AsyncClient`` constructions, whichever transport the client sends with."""
    counter = SimpleNamespace(built=0)
    original = httpx.AsyncClient.__init__

    def init(self, *args, **kwargs) -> None:
        counter.built += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", init)
    return counter


@pytest.mark.anyio
async def test_one_client_per_loop_and_connection_across_hook_instances(monkeypatch, api, counting) -> None:
    set_conn(monkeypatch)
    monkeypatch.setenv("AIRFLOW_CONN_OTHER", '{"conn_type": "together", "password": "other-key-123456"}')
    api.get("/fine-tunes/ft-1").respond(json=job())
    try:
        for _ in range(5):
            await TogetherHook().aget_fine_tune("ft-1")
        await asyncio.gather(*(TogetherHook().aget_fine_tune("ft-1") for _ in range(50)))
        assert counting.built == 1
        await TogetherHook("other").aget_fine_tune("ft-1")
        assert counting.built == 2  # another connection, another client (another key)
        assert api.calls.last.request.headers["authorization"] == "Bearer other-key-123456"
    finally:
        await TogetherHook.aclose_async_clients()


def test_each_event_loop_gets_its_own_client(monkeypatch, api, counting) -> None:
    set_conn(monkeypatch)
    api.get("/fine-tunes/ft-1").respond(json=job())

    async def poll() -> None:
        try:
            await TogetherHook().aget_fine_tune("ft-1")
            await TogetherHook().aget_fine_tune("ft-1")
        finally:
            await TogetherHook.aclose_async_clients()

    asyncio.run(poll())
    asyncio.run(poll())
    assert counting.built == 2


@pytest.mark.anyio
async def test_requests_in_flight_are_bounded_and_bursts_queue(monkeypatch, api) -> None:
    set_conn(monkeypatch, max_concurrent_requests=4)
    state = {"active": 0, "peak": 0}

    async def slow(request: httpx.Request) -> httpx.Response:
        state["active"] += 1
        state["peak"] = max(state["peak"], state["active"])
        await asyncio.sleep(0.005)
        state["active"] -= 1
        return httpx.Response(200, json=job())

    api.get("/fine-tunes/ft-1").mock(side_effect=slow)
    try:
        jobs = await asyncio.gather(*(TogetherHook().aget_fine_tune("ft-1") for _ in range(200)))
    finally:
        await TogetherHook.aclose_async_clients()
    assert len(jobs) == 200
    assert state["peak"] == 4


@pytest.mark.anyio
async def test_connection_is_resolved_once_for_a_burst(monkeypatch, api) -> None:
    set_conn(monkeypatch)
    api.get("/fine-tunes/ft-1").respond(json=job())
    from airflow.sdk import BaseHook

    lookups = []
    original = BaseHook.get_connection.__func__

    def counting_get_connection(cls, conn_id):
        lookups.append(conn_id)
        return original(cls, conn_id)

    original_async = BaseHook.aget_connection.__func__

    async def counting_aget_connection(cls, conn_id):
        lookups.append(conn_id)
        return await original_async(cls, conn_id)

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(counting_get_connection))
    monkeypatch.setattr(BaseHook, "aget_connection", classmethod(counting_aget_connection))
    try:
        await asyncio.gather(*(TogetherHook().aget_fine_tune("ft-1") for _ in range(100)))
    finally:
        await TogetherHook.aclose_async_clients()
    assert lookups == ["together_default"]
