"""TogetherHook file transfers at the HTTP boundary: the v3 upload, multipart, streamed downloads, readiness."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import socket
import threading

import httpx
import pytest

from airflow_provider_together.exceptions import (
    TogetherError,
    TogetherFileNotReadyError,
    TogetherFileRejectedError,
    TogetherNotFoundError,
    TogetherServerError,
)
from airflow_provider_together.hooks import TogetherHook
from airflow_provider_together.models import FileProcessingStatus
from tests import _hook_support as support
from tests._hook_support import file_obj, set_conn

pytestmark = pytest.mark.anyio
# Shared fixtures, assigned rather than imported so that test parameters may reuse the names.
api, call, hook, sleeps = support.api, support.call, support.hook, support.sleeps

UPLOAD_URL = "https://uploads.example.com/bucket/key"
SIGNED = f"{UPLOAD_URL}?X-Amz-Signature=s3cr3t"


@pytest.fixture
def train(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"text": "hello"}\n' * 2000)
    return path


def redirect(file_id: str = "file-abc", location: str = SIGNED) -> httpx.Response:
    return httpx.Response(302, headers={"Location": location, "X-Together-File-Id": file_id})


def form_fields(request: httpx.Request) -> dict[str, str]:
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    fields = {}
    for part in request.content.split(b"--" + boundary)[1:-1]:
        head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
        fields[head.split(b'name="')[1].split(b'"')[0].decode()] = value.decode()
    return fields


# -- single-part upload -----------------------------------------------------------------------------


async def test_upload_file_follows_the_v3_flow(call, hook, api, train) -> None:
    data = train.read_bytes()
    ask = api.post("/files").mock(return_value=redirect())
    put = api.put(UPLOAD_URL).respond(200)
    done = api.post("/files/file-abc/preprocess").respond(json=file_obj("file-abc", "PENDING"))
    result = await call(hook, "upload_file", train)
    assert result.id == "file-abc"
    assert result.processing_status is FileProcessingStatus.PENDING
    assert form_fields(ask.calls.last.request) == {
        "purpose": "fine-tune",
        "file_name": "train.jsonl",
        "file_type": "jsonl",
        "checksum": hashlib.sha256(data).hexdigest(),
    }
    sent = put.calls.last.request
    assert "authorization" not in sent.headers  # the presigned URL never sees the API key
    assert sent.headers["content-length"] == str(len(data))
    assert "transfer-encoding" not in sent.headers
    assert sent.content == data
    assert sent.url.params["X-Amz-Signature"] == "s3cr3t"
    assert done.called


async def test_upload_of_a_known_file_returns_the_existing_one(call, hook, api, train) -> None:
    api.post("/files").respond(409, json={"message": "File already exists", "file_id": "file-old"})
    put = api.put(UPLOAD_URL)
    api.get("/files/file-old").respond(json=file_obj("file-old"))
    assert (await call(hook, "upload_file", train)).id == "file-old"
    assert not put.called


async def test_upload_refuses_a_plain_http_upload_url(call, hook, api, train) -> None:
    api.post("/files").mock(return_value=redirect(location="http://uploads.example.com/k"))
    put = api.put("http://uploads.example.com/k")
    with pytest.raises(TogetherError, match="not https"):
        await call(hook, "upload_file", train)
    assert not put.called


async def test_plain_http_upload_url_is_fine_when_the_api_is_loopback_http(
    call, monkeypatch, sleeps, api, train
) -> None:
    set_conn(monkeypatch, host="http://127.0.0.1:8999")
    api.post("http://127.0.0.1:8999/v1/files").mock(
        return_value=redirect(location="http://127.0.0.1:8999/_up/1")
    )
    put = api.put("http://127.0.0.1:8999/_up/1").respond(200)
    api.post("http://127.0.0.1:8999/v1/files/file-abc/preprocess").respond(json=file_obj("file-abc"))
    try:
        assert (await call(TogetherHook(), "upload_file", train)).id == "file-abc"
    finally:
        await TogetherHook.aclose_async_clients()
    assert put.called


async def test_upload_put_is_retried_with_the_whole_body(call, hook, api, train) -> None:
    api.post("/files").mock(return_value=redirect())
    put = api.put(UPLOAD_URL).mock(side_effect=[httpx.Response(503), httpx.Response(200)])
    api.post("/files/file-abc/preprocess").respond(json=file_obj("file-abc"))
    await call(hook, "upload_file", train)
    assert put.call_count == 2
    assert put.calls[1].request.content == train.read_bytes()


async def test_upload_missing_redirect_headers_is_an_error(call, hook, api, train) -> None:
    api.post("/files").respond(302, headers={"Location": SIGNED})
    with pytest.raises(TogetherError, match="X-Together-File-Id"):
        await call(hook, "upload_file", train)


@pytest.mark.parametrize(
    ("name", "content", "match"), [("a.txt", b"x", "unsupported extension"), ("e.jsonl", b"", "empty")]
)
async def test_upload_rejects_bad_files_before_http(call, hook, api, tmp_path, name, content, match) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TogetherFileRejectedError, match=match):
        await call(hook, "upload_file", path)
    assert not api.calls


# -- multipart --------------------------------------------------------------------------------------


def multipart_hook(sleeps, **kw) -> TogetherHook:
    return TogetherHook(
        multipart_threshold=1024, part_size=4096, sleep=sleeps.sleep, asleep=sleeps.asleep, **kw
    )


def initiate(parts: int) -> dict:
    return {
        "upload_id": "up-1",
        "file_id": "file-big",
        "parts": [
            {"PartNumber": n, "URL": f"{UPLOAD_URL}/{n}", "Headers": {"x-amz-meta": "m"}}
            for n in range(1, parts + 1)
        ],
    }


async def test_multipart_upload_with_a_lowered_threshold(call, api, sleeps, monkeypatch, train) -> None:
    set_conn(monkeypatch)
    data = train.read_bytes()  # 36,000 bytes -> 9 parts of 4,096
    init = api.post("/files/multipart/initiate").respond(json=initiate(9))
    received: dict[int, bytes] = {}

    def store(request: httpx.Request, n: int) -> httpx.Response:
        received[n] = request.content
        assert "authorization" not in request.headers
        assert request.headers["x-amz-meta"] == "m"
        return httpx.Response(200, headers={"ETag": f'"etag-{n}"'})

    for n in range(1, 10):
        api.put(f"{UPLOAD_URL}/{n}").mock(side_effect=functools.partial(store, n=n))
    complete = api.post("/files/multipart/complete").respond(json={"file": file_obj("file-big", "PENDING")})
    hook = multipart_hook(sleeps, upload_concurrency=3)
    try:
        result = await call(hook, "upload_file", train)
    finally:
        await TogetherHook.aclose_async_clients()
    assert result.id == "file-big"
    body = json.loads(init.calls.last.request.content)
    assert body == {
        "file_name": "train.jsonl",
        "file_size": len(data),
        "num_parts": 9,
        "purpose": "fine-tune",
        "file_type": "jsonl",
        "checksum": hashlib.sha256(data).hexdigest(),
    }
    assert b"".join(received[n] for n in sorted(received)) == data
    assert json.loads(complete.calls.last.request.content) == {
        "upload_id": "up-1",
        "file_id": "file-big",
        "parts": [{"part_number": n, "etag": f"etag-{n}"} for n in range(1, 10)],
    }


async def test_multipart_parts_run_concurrently_but_bounded(api, sleeps, monkeypatch, train) -> None:
    set_conn(monkeypatch)
    api.post("/files/multipart/initiate").respond(json=initiate(9))
    api.post("/files/multipart/complete").respond(json=file_obj("file-big"))
    import asyncio

    state = {"active": 0, "peak": 0}

    async def slow(request: httpx.Request, n: str) -> httpx.Response:
        state["active"] += 1
        state["peak"] = max(state["peak"], state["active"])
        await asyncio.sleep(0.01)
        state["active"] -= 1
        return httpx.Response(200, headers={"ETag": n})

    for n in range(1, 10):
        api.put(f"{UPLOAD_URL}/{n}").mock(side_effect=functools.partial(slow, n=str(n)))
    try:
        await multipart_hook(sleeps, upload_concurrency=3).aupload_file(train)
    finally:
        await TogetherHook.aclose_async_clients()
    assert state["peak"] == 3


async def test_multipart_aborts_on_a_failed_part(call, api, sleeps, monkeypatch, train) -> None:
    set_conn(monkeypatch, max_retries=1)
    api.post("/files/multipart/initiate").respond(json=initiate(9))
    for n in range(1, 10):
        api.put(f"{UPLOAD_URL}/{n}").respond(500 if n == 5 else 200, headers={"ETag": "e"})
    complete = api.post("/files/multipart/complete")
    abort = api.post("/files/multipart/abort").respond(json={})
    try:
        with pytest.raises(TogetherServerError):
            await call(multipart_hook(sleeps), "upload_file", train)
    finally:
        await TogetherHook.aclose_async_clients()
    assert json.loads(abort.calls.last.request.content) == {"upload_id": "up-1", "file_id": "file-big"}
    assert not complete.called


async def test_multipart_abort_failure_does_not_hide_the_cause(call, api, sleeps, monkeypatch, train) -> None:
    set_conn(monkeypatch, max_retries=0)
    api.post("/files/multipart/initiate").respond(json=initiate(9))
    for n in range(1, 10):
        api.put(f"{UPLOAD_URL}/{n}").respond(200)  # no ETag
    api.post("/files/multipart/abort").respond(500)
    try:
        with pytest.raises(TogetherError, match="no ETag"):
            await call(multipart_hook(sleeps), "upload_file", train)
    finally:
        await TogetherHook.aclose_async_clients()


# -- downloads --------------------------------------------------------------------------------------


async def test_download_fine_tune_streams_to_disk_with_parameters(call, hook, api, tmp_path) -> None:
    payload = bytes(range(256)) * 5000
    route = api.get("/finetune/download").respond(
        200, content=payload, headers={"content-type": "application/x-tar"}
    )
    path = await call(hook, "download_fine_tune", "ft-1", tmp_path, checkpoint="adapter", step=40)
    assert path == tmp_path / "ft-1-checkpoint-40.tar.gz"
    assert path.read_bytes() == payload
    params = route.calls.last.request.url.params
    assert dict(params) == {"ft_id": "ft-1", "checkpoint": "adapter", "checkpoint_step": "40"}
    assert not list(tmp_path.glob("*.part"))
    assert not list(tmp_path.glob(".*.part"))


class FlakyDownloads(http.server.BaseHTTPRequestHandler):
    """A real loopback server whose first answer drops the connection mid-body (respx reads bodies eagerly)."""

    payload = b"0123456789" * 100_000
    ranges: list[str | None] = []
    ignore_range = False

    def do_GET(self) -> None:
        self.ranges.append(self.headers.get("Range"))
        start = int(self.headers["Range"][6:-1]) if self.headers.get("Range") and not self.ignore_range else 0
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        self.end_headers()
        if len(self.ranges) == 1:
            self.wfile.write(body[:300_000])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # drop it: the client sees a truncated body
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_server(monkeypatch):
    handler = type("Handler", (FlakyDownloads,), {"ranges": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    set_conn(monkeypatch, host=f"http://127.0.0.1:{server.server_address[1]}")
    yield handler
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.mark.parametrize("ignore_range", [False, True], ids=["resume", "server-ignores-range"])
async def test_download_resumes_after_a_dropped_stream(
    call, sleeps, flaky_server, tmp_path, ignore_range
) -> None:
    flaky_server.ignore_range = ignore_range
    dest = tmp_path / "out" / "model.tar.zst"
    hook = TogetherHook(sleep=sleeps.sleep, asleep=sleeps.asleep)
    try:
        assert await call(hook, "download_fine_tune", "ft-1", dest) == dest
    finally:
        await TogetherHook.aclose_async_clients()
    assert dest.read_bytes() == FlakyDownloads.payload
    assert flaky_server.ranges == [None, "bytes=300000-"]
    assert sleeps
    assert not list(dest.parent.glob("*.part"))


async def test_download_errors_are_not_written_to_disk(call, hook, api, tmp_path) -> None:
    api.get("/finetune/download").respond(404, json={"error": {"message": "no such job"}})
    with pytest.raises(TogetherNotFoundError, match="no such job"):
        await call(hook, "download_fine_tune", "ft-x", tmp_path / "m.tar.zst")
    assert list(tmp_path.iterdir()) == [tmp_path / "m.tar.zst.part"] or not (tmp_path / "m.tar.zst").exists()


async def test_download_file_content_into_a_directory(call, hook, api, tmp_path) -> None:
    api.get("/files/file-1/content").respond(
        content=b"{}\n", headers={"content-disposition": 'attachment; filename="../x.jsonl"'}
    )
    path = await call(hook, "download_file_content", "file-1", tmp_path)
    assert path == tmp_path / "x.jsonl"
    assert path.read_bytes() == b"{}\n"


# -- readiness --------------------------------------------------------------------------------------


async def test_wait_for_file_ready_polls_until_completed(call, hook, api, sleeps) -> None:
    api.get("/files/file-1").mock(
        side_effect=[
            httpx.Response(200, json=file_obj(status=s)) for s in ("PENDING", "RUNNING", "COMPLETED")
        ]
    )
    result = await call(hook, "wait_for_file_ready", "file-1", timeout=60, poll_interval=2)
    assert result.processing_status is FileProcessingStatus.COMPLETED
    assert sleeps == [2, 2]


@pytest.mark.parametrize("status", ["INVALID_FORMAT", "FAILED"])
async def test_wait_for_file_ready_raises_the_validation_error(call, hook, api, status) -> None:
    report = {
        "valid": False,
        "error": "Line 7: messages[1] must contain a role field",
        "error_type": "INVALID_FORMAT",
    }
    api.get("/files/file-1").respond(json=file_obj(status=status, validation_report=report))
    with pytest.raises(TogetherFileRejectedError, match="Line 7: messages") as info:
        await call(hook, "wait_for_file_ready", "file-1")
    assert info.value.file == "file-1"


async def test_wait_for_file_ready_times_out_on_the_injected_clock(call, monkeypatch, api) -> None:
    set_conn(monkeypatch)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    async def asleep(seconds: float) -> None:
        now[0] += seconds

    api.get("/files/file-1").respond(json=file_obj(status="QUEUED"))
    hook = TogetherHook(sleep=sleep, asleep=asleep, clock=lambda: now[0])
    try:
        with pytest.raises(TogetherFileNotReadyError, match="still QUEUED after 10 s"):
            await call(hook, "wait_for_file_ready", "file-1", timeout=10, poll_interval=3)
    finally:
        await TogetherHook.aclose_async_clients()
    assert now[0] == 10.0  # 3 + 3 + 3 + 1: the last wait is cut to the deadline


async def test_wait_for_file_ready_without_validation_status(call, hook, api) -> None:
    api.get("/files/file-1").respond(json=file_obj(status=None, purpose="batch-api"))
    assert (await call(hook, "wait_for_file_ready", "file-1")).id == "file-1"
