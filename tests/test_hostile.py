"""
Broken and hostile answers, from a raw socket server on 127.0.0.1 (not the emulator): what the user sees.

A corporate proxy, a load balancer in trouble or a buggy API release answers badly. Each test names the
outcome: a clear ``TogetherError`` (never a raw pydantic or JSON error), the right retry decision (a read is
resent, a job creation is reconciled, never resent), bounded memory, and a wait that outlives one bad poll.
Every hook call runs sync and on both async transports.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_together.exceptions import (
    TogetherAmbiguousSubmitError,
    TogetherError,
    TogetherResponseError,
    TogetherTransportError,
)
from airflow_provider_together.hooks import TogetherHook
from tests._hook_support import Sleeps, job, set_conn
from tests._raw_server import Peer, Server, replying, response
from tests.conftest import TEST_API_KEY

if TYPE_CHECKING:
    from tests._raw_server import Recorded

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

#: sync: the sync hook in a thread; the others: the async hook on that transport.
MODES = ["sync", "aiohttp", "httpx"]
ASYNC = ["aiohttp", "httpx"]
JSON = [("Content-Type", "application/json")]
CREATE = {"model": "m", "training_file": "file-1"}


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


async def call(
    mode: str, method: str, *args: Any, server: Server, monkeypatch: pytest.MonkeyPatch, **extra: Any
) -> Any:
    """Call hook ``method`` (``aget_fine_tune`` is the async twin of ``get_fine_tune``) in ``mode``."""
    set_conn(
        monkeypatch, host=f"{server.url}/v1", async_transport="httpx" if mode == "sync" else mode, **extra
    )
    sleeps = Sleeps()
    hook = TogetherHook(sleep=sleeps.sleep, asleep=sleeps.asleep)
    try:
        if mode == "sync":
            return await asyncio.wait_for(asyncio.to_thread(getattr(hook, method), *args), 30)
        return await asyncio.wait_for(getattr(hook, f"a{method}")(*args), 30)
    finally:
        await TogetherHook.aclose_async_clients()


def answer(body: bytes, status: int = 200, headers: Any = JSON) -> Any:
    return replying(lambda request: response(status, body, headers=headers))


# -- 1 and 2: one error for every unreadable answer, and the right retry decision -----------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "<html>"),  # a proxy's page, sent as 200
        (b'{"id": ["ft-1"], "status": "running"}', "id"),  # JSON of the wrong shape
        (b'{"status": "running"}', "id"),  # a required field missing
        (b'{"id": "ft-1", "status": "running", "model": "\xff\xfe"}', "UTF-8|utf-8|unicode"),  # invalid UTF-8
        (b"[1, 2, 3]", "object"),  # a list where an object belongs
    ],
    ids=["html-200", "wrong-shape", "missing-field", "invalid-utf8", "list"],
)
async def test_an_unreadable_answer_is_a_together_response_error_and_a_read_is_resent(
    mode: str, body: bytes, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user sees TogetherResponseError naming the call, the status and the body's start; no pydantic error."""
    async with Server(answer(body)) as server:
        with pytest.raises(TogetherResponseError) as info:
            await call(mode, "get_fine_tune", "ft-1", server=server, monkeypatch=monkeypatch, max_retries=1)
    error = info.value
    assert (error.method, error.path, error.status_code) == ("GET", "/fine-tunes/ft-1", 200)
    assert "GET /fine-tunes/ft-1 answered 200 with an unreadable body" in str(error)
    assert error.body_start.startswith(body[:5].decode("utf-8", "replace"))
    assert len(server.requests) == 2  # a read is transient: resent once (max_retries=1), then refused
    assert re.search(why, str(error)), str(error)


@pytest.mark.parametrize("mode", MODES)
async def test_a_list_of_the_wrong_shape_is_refused_not_iterated(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Server(answer(b'{"data": "not a list"}')) as server:
        with pytest.raises(TogetherResponseError, match="expected a list under 'data'"):
            await call(mode, "list_fine_tunes", server=server, monkeypatch=monkeypatch, max_retries=0)


@pytest.mark.parametrize("mode", MODES)
async def test_an_unreadable_answer_to_a_create_is_ambiguous_and_never_resent(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job may exist: the user's operator reconciles instead of paying twice."""
    async with Server(answer(b"<html>Service temporarily unavailable</html>")) as server:
        with pytest.raises(TogetherAmbiguousSubmitError, match="may or may not have been created"):
            await call(mode, "create_fine_tune", CREATE, server=server, monkeypatch=monkeypatch)
    assert [r.method for r in server.requests] == ["POST"]


@pytest.mark.parametrize("mode", MODES)
async def test_the_api_key_never_appears_in_the_error(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def echo_auth(request: Recorded) -> bytes:
        return response(200, f"<pre>{request.header('authorization')}</pre>".encode())

    async with Server(replying(echo_auth)) as server:
        with pytest.raises(TogetherResponseError) as info:
            await call(mode, "get_fine_tune", "ft-1", server=server, monkeypatch=monkeypatch, max_retries=0)
    assert TEST_API_KEY not in str(info.value)
    assert TEST_API_KEY not in info.value.body_start
    assert "***" in info.value.body_start


@pytest.mark.parametrize("mode", MODES)
async def test_a_body_cut_short_is_a_transport_error_after_the_retries(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Content-Length larger than the body, then close: TogetherTransportError (resent first)."""

    async def short(peer: Peer) -> None:
        if await peer.read_request() is not None:
            await peer.send(
                response(200, b'{"id": "ft-1"', length=False, headers=[*JSON, ("Content-Length", "500")])
            )
            await peer.close()

    async with Server(short) as server:
        with pytest.raises(TogetherTransportError):
            await call(mode, "get_fine_tune", "ft-1", server=server, monkeypatch=monkeypatch, max_retries=1)
    assert len(server.requests) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_a_redirect_on_an_api_call_is_not_followed(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A redirect loop costs one request per attempt: the API never redirects, so it is an unreadable answer."""

    def loop(request: Recorded) -> bytes:
        return response(302, b"", reason="Found", headers=[("Location", request.target)])

    async with Server(replying(loop)) as server:
        with pytest.raises(
            TogetherResponseError, match="302 redirect to '/v1/fine-tunes/ft-1'.*does not redirect"
        ):
            await call(mode, "get_fine_tune", "ft-1", server=server, monkeypatch=monkeypatch, max_retries=1)
    assert len(server.requests) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_a_body_sent_one_byte_a_second_is_a_read_timeout(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each byte arrives within the per-read timeout, but the whole answer must arrive within request_timeout."""
    body = json.dumps(job("ft-1")).encode()

    async def trickle(peer: Peer) -> None:
        if await peer.read_request() is not None:
            await peer.send(
                response(200, b"", length=False, headers=[*JSON, ("Content-Length", str(len(body)))])
            )
            for byte in body:
                await peer.send(bytes([byte]))
                await asyncio.sleep(0.4)

    started = asyncio.get_running_loop().time()
    async with Server(trickle) as server:
        with pytest.raises(TogetherTransportError, match="ReadTimeout"):
            await call(
                mode,
                "get_fine_tune",
                "ft-1",
                server=server,
                monkeypatch=monkeypatch,
                max_retries=0,
                request_timeout=1,
            )
    # Refused after about a second, not after the ~40 s the trickle would take.
    assert asyncio.get_running_loop().time() - started < 0.4 * len(body) / 2


# -- 3. bounded memory ------------------------------------------------------------------------------------------


def gzip_bomb(decoded: int) -> bytes:
    """``decoded`` zero bytes, gzip-compressed chunk by chunk (never held whole)."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [squeeze.compress(block) for _ in range(decoded >> 20)]
    return b"".join(parts) + squeeze.flush()


def peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak resident set size


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = gzip_bomb(1 << 30)
    assert len(data) < 1.5 * (1 << 20)  # about 1 MiB on the wire ...
    return data  # ... for 1 GiB decoded


@pytest.mark.timeout(300)  # building the bomb costs ~10 s of CPU once, more on a loaded machine
@pytest.mark.parametrize("mode", MODES)
async def test_a_gzip_bomb_is_refused_with_flat_memory(
    mode: str, bomb: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = [*JSON, ("Content-Encoding", "gzip")]
    async with Server(answer(bomb, headers=headers)) as server:
        peak_rss_reset()
        before = peak_rss_mb()
        with pytest.raises(TogetherResponseError, match="larger than 33554432 bytes once decoded"):
            await call(mode, "get_fine_tune", "ft-1", server=server, monkeypatch=monkeypatch, max_retries=0)
        growth = peak_rss_mb() - before
    assert growth < 100, f"peak RSS grew by {growth:.0f} MB"


@pytest.mark.parametrize("mode", MODES)
async def test_the_cap_is_a_connection_extra_and_a_small_gzip_answer_still_reads(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = gzip.compress(json.dumps(job("ft-1")).encode())
    async with Server(answer(body, headers=[*JSON, ("Content-Encoding", "gzip")])) as server:
        assert (
            await call(mode, "get_fine_tune", "ft-1", server=server, monkeypatch=monkeypatch)
        ).id == "ft-1"
        with pytest.raises(TogetherResponseError, match="larger than 10 bytes"):
            await call(
                mode,
                "get_fine_tune",
                "ft-1",
                server=server,
                monkeypatch=monkeypatch,
                max_retries=0,
                max_response_mb=10 / (1 << 20),
            )


@pytest.mark.parametrize("mode", MODES)
async def test_an_encoding_we_did_not_ask_for_is_unreadable(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Server(answer(b"\x00\x01", headers=[*JSON, ("Content-Encoding", "br")])) as server:
        with pytest.raises(TogetherResponseError, match="Content-Encoding 'br'"):
            await call(mode, "get_fine_tune", "ft-1", server=server, monkeypatch=monkeypatch, max_retries=0)


# -- the wait outlives one bad poll; statuses and events from a confused server -----------------------------------


def _trigger(**kwargs: Any) -> Any:
    from airflow_provider_together.triggers import TogetherFineTuneTrigger

    return TogetherFineTuneTrigger(job_id="ft-1", poll_interval=0, first_poll_jitter=0, **kwargs)


async def _events(trigger: Any) -> list[dict[str, Any]]:
    try:
        return [event.payload async for event in trigger.run()]
    finally:
        await TogetherHook.aclose_async_clients()


def script(*bodies: bytes | dict[str, Any]) -> Any:
    """Answer job polls with ``bodies`` in turn (the last one repeats); checkpoints and events are empty."""
    state = {"n": 0}

    def reply(request: Recorded) -> bytes:
        if "/checkpoints" in request.target or "/events" in request.target:
            return response(200, b'{"data": []}', headers=JSON)
        body = bodies[min(state["n"], len(bodies) - 1)]
        state["n"] += 1
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        return response(200, raw, headers=JSON)

    return replying(reply)


@pytest.mark.parametrize("transport", ASYNC)
async def test_a_trigger_outlives_one_unreadable_answer(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One HTML page mid-job counts as a transient failure; the next poll sees the job complete."""
    async with Server(
        script(job(status="running", events=[]), b"<html>oops</html>", job(status="completed", events=[]))
    ) as server:
        set_conn(monkeypatch, host=f"{server.url}/v1", async_transport=transport, max_retries=0)
        events = await _events(_trigger())
    assert [e["status"] for e in events] == ["success"]


@pytest.mark.parametrize("transport", ASYNC)
async def test_the_first_terminal_status_wins(transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job that reports completed, then running again: the task succeeds on the first terminal answer."""
    async with Server(script(job(status="completed", events=[]), job(status="running", events=[]))) as server:
        set_conn(monkeypatch, host=f"{server.url}/v1", async_transport=transport)
        events = await _events(_trigger())
    assert [(e["status"], e["job_status"]) for e in events] == [("success", "completed")]


def test_events_with_duplicate_or_missing_timestamps_are_each_logged_once() -> None:
    from airflow_provider_together._fine_tune.progress import new_events
    from airflow_provider_together.models import FineTuneEvent

    def ev(message: str, created_at: str | None) -> Any:
        return FineTuneEvent.model_validate({"message": message, "type": "info", "created_at": created_at})

    same = "2026-12-04T10:00:00Z"
    untimed = [ev("queued", None), ev("started", None)]
    polls = [
        untimed,
        [*untimed, ev("a", same), ev("b", same), ev("b", same)],  # two at one time, one listed twice
        [*untimed, ev("a", same), ev("b", same), ev("c", same)],
        [*untimed, ev("a", same), ev("b", same), ev("c", same)],
    ]
    cursor, logged = None, []
    for events in polls:
        fresh, cursor = new_events(events, cursor)
        logged += [event.message for event in fresh]
    assert logged == ["queued", "started", "a", "b", "c"]


@pytest.mark.parametrize("mode", ["sync"])
async def test_the_sync_wait_and_the_sensor_outlive_one_unreadable_answer(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_together._fine_tune.sync_wait import wait_in_worker
    from airflow_provider_together.models import FineTuneJob

    class Log:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def info(self, event: Any, *args: Any) -> None:
            self.lines.append(str(event) % args if args else str(event))

        def warning(self, event: Any, *args: Any) -> None:
            self.info(event, *args)

    async with Server(script(b"<html>oops</html>", job(status="completed", events=[]))) as server:
        set_conn(monkeypatch, host=f"{server.url}/v1", max_retries=0)
        log = Log()
        hook = TogetherHook(sleep=lambda s: None)
        payload = await asyncio.to_thread(
            wait_in_worker, hook, FineTuneJob.model_validate(job()), poll_interval=0, timeout=None, log=log
        )
    assert payload["status"] == "success"
    assert any("failed (1/5 in a row)" in line for line in log.lines)


async def test_five_unreadable_answers_in_a_row_end_the_sync_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_together._fine_tune.sync_wait import wait_in_worker
    from airflow_provider_together.models import FineTuneJob

    log = type("L", (), {"info": lambda *a: None, "warning": lambda *a: None})()
    async with Server(script(b"<html>oops</html>")) as server:
        set_conn(monkeypatch, host=f"{server.url}/v1", max_retries=0)
        with pytest.raises(TogetherError):
            await asyncio.to_thread(
                wait_in_worker,
                TogetherHook(sleep=lambda s: None),
                FineTuneJob.model_validate(job()),
                poll_interval=0,
                timeout=None,
                log=log,
            )
    assert len(server.requests) == 5
