"""
Files API routes: the v3 upload dance (``POST /v1/files`` → 302 → ``PUT`` → ``/preprocess``), multipart
uploads, and list / retrieve / delete / content.

.. seealso:: ../shared/reference/together-api.md section 2
"""

from __future__ import annotations

import asyncio
import math
import secrets
import shutil
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from airflow_provider_together.emulator.app import FastJSON, GatedRoute, state_of
from airflow_provider_together.emulator.errors import APIError

if TYPE_CHECKING:
    from airflow_provider_together.emulator.files import FileRecord

router = APIRouter(route_class=GatedRoute)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise APIError(400, "The request body must be valid JSON", param="body") from None
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object", param="body")
    return body


def _upload_base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.post("/v1/files")
async def request_upload(request: Request) -> Response:
    """Register an upload and answer 302 to a presigned-style URL on this server."""
    state = state_of(request)
    form = await request.form()
    fields = {key: str(value) for key, value in form.items() if isinstance(value, str)}
    await form.close()
    record = state.files.new(
        filename=fields.get("file_name", ""),
        purpose=fields.get("purpose", "fine-tune"),
        file_type=fields.get("file_type"),
        checksum=fields.get("checksum"),
    )
    location = f"{_upload_base(request)}/_upload/{record.id}?token={record.token}"
    return Response(status_code=302, headers={"Location": location, "X-Together-File-Id": record.id})


@router.post("/v1/files/upload")
async def upload_one_shot(request: Request) -> Response:
    """
    The spec's one-shot upload (multipart form with a ``file`` part); no SDK uses it, but it is documented.

    Starlette spools the part to a temporary file (on disk past 1 MiB), which is then copied in large blocks.
    """
    state = state_of(request)
    form = await request.form(max_part_size=2**40)
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise APIError(400, "file is required (multipart form part)", param="file")
        fields = {key: str(value) for key, value in form.items() if isinstance(value, str)}
        record = state.files.new(
            filename=fields.get("file_name") or upload.filename or "",
            purpose=fields.get("purpose", "fine-tune"),
            file_type=fields.get("file_type"),
            checksum=None,
        )
        record.bytes = await asyncio.to_thread(_copy_upload, upload.file, state.files.path(record))
    finally:
        await form.close()
    record.uploaded = True
    state.files.start_processing(record)
    state.save_file(record)
    return FastJSON(record.to_json(state.clock.now()))


def _copy_upload(source: Any, target: Any) -> int:
    source.seek(0)
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, 8 * 1024 * 1024)
        return out.tell()


def _check_token(request: Request, expected: str) -> None:
    if not secrets.compare_digest(request.query_params.get("token", ""), expected):
        raise APIError(
            403, "Upload URL signature does not match", type_="access_denied", code="SignatureDoesNotMatch"
        )


@router.put("/_upload/{file_id}")
async def put_bytes(file_id: str, request: Request) -> Response:
    """Receive the file's bytes (no API key: the URL itself is the credential, like a presigned S3 URL)."""
    state = state_of(request)
    record = state.files.get(file_id)
    _check_token(request, record.token)
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > state.settings.multipart_threshold_bytes:
        raise APIError(
            400,
            f"EntityTooLarge: {declared} bytes exceed the single-upload limit of "
            f"{state.settings.multipart_threshold_bytes}; use the multipart upload",
            code="EntityTooLarge",
        )
    record.bytes = await state.files.receive(state.files.path(record), request.stream())
    record.uploaded = True
    state.save_file(record)
    return Response(status_code=200, headers={"ETag": f'"{secrets.token_hex(16)}"'})


@router.post("/v1/files/{file_id}/preprocess")
async def preprocess(file_id: str, request: Request) -> Response:
    """Finish a single-part upload: validation starts, the file reads PENDING until it is done."""
    state = state_of(request)
    record = state.files.files.get(file_id)
    if record is None:
        raise APIError(404, f"File {file_id} not found", param="file_id", code="not_found")
    if not record.uploaded:
        raise APIError(
            400, f"File {file_id} has no content yet: PUT the bytes to the upload URL first", param="file_id"
        )
    state.files.start_processing(record)
    state.save_file(record)
    return FastJSON(record.to_json(state.clock.now()))


@router.post("/v1/files/multipart/initiate")
async def multipart_initiate(request: Request) -> Response:
    """Start a multipart upload: one URL per part."""
    state = state_of(request)
    body = await _json_body(request)
    settings = state.settings
    size, parts = body.get("file_size"), body.get("num_parts")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise APIError(400, "file_size must be a positive integer", param="file_size")
    if not isinstance(parts, int) or isinstance(parts, bool) or not 1 <= parts <= settings.max_parts:
        raise APIError(400, f"num_parts must be between 1 and {settings.max_parts}", param="num_parts")
    if parts > 1 and math.ceil(size / parts) < settings.min_part_size_bytes:
        raise APIError(
            400,
            f"parts must be at least {settings.min_part_size_bytes} bytes (except the last)",
            param="num_parts",
        )
    record = state.files.new(
        filename=str(body.get("file_name") or body.get("filename") or ""),
        purpose=str(body.get("purpose", "fine-tune")),
        file_type=body.get("file_type"),
        checksum=body.get("checksum"),
    )
    record.upload_id = f"upload-{secrets.token_hex(12)}"
    record.parts = {}
    state.save_file(record)
    base = _upload_base(request)
    urls = [
        {
            "PartNumber": number,
            "URL": f"{base}/_upload/{record.id}/parts/{number}?upload_id={record.upload_id}&token={record.token}",
            "Headers": {},
        }
        for number in range(1, parts + 1)
    ]
    return FastJSON({"upload_id": record.upload_id, "file_id": record.id, "parts": urls})


@router.put("/_upload/{file_id}/parts/{number}")
async def put_part(file_id: str, number: int, request: Request) -> Response:
    """Receive one part; answer its ETag, which ``complete`` must quote back."""
    state = state_of(request)
    record = state.files.get(file_id)
    _check_token(request, record.token)
    if record.upload_id is None or request.query_params.get("upload_id") != record.upload_id:
        raise APIError(404, "NoSuchUpload: the upload does not exist or was aborted", code="NoSuchUpload")
    size = await state.files.receive(state.files.data_dir / f"{record.id}.part{number}", request.stream())
    etag = secrets.token_hex(16)
    record.parts[str(number)] = [etag, size]
    state.save_file(record)
    return Response(status_code=200, headers={"ETag": f'"{etag}"'})


def _upload(request_body: dict[str, Any], request: Request) -> FileRecord:
    state = state_of(request)
    record = state.files.get(str(request_body.get("file_id", "")))
    if record.upload_id is None or record.upload_id != request_body.get("upload_id"):
        raise APIError(
            404,
            "NoSuchUpload: the upload does not exist or was aborted",
            param="upload_id",
            code="NoSuchUpload",
        )
    return record


@router.post("/v1/files/multipart/complete")
async def multipart_complete(request: Request) -> Response:
    """Check the part list against what arrived, assemble the file and start validation."""
    state = state_of(request)
    body = await _json_body(request)
    record = _upload(body, request)
    listed = body.get("parts")
    if not isinstance(listed, list) or not listed:
        raise APIError(400, "parts must be a non-empty list of {part_number, etag}", param="parts")
    numbers: list[int] = []
    for index, part in enumerate(listed):
        number = part.get("part_number", part.get("PartNumber")) if isinstance(part, dict) else None
        etag = str(part.get("etag", part.get("ETag", ""))).strip('"') if isinstance(part, dict) else ""
        stored = record.parts.get(str(number))
        if stored is None or stored[0] != etag:
            raise APIError(
                400,
                f"InvalidPart: part {number} was not uploaded or its ETag does not match",
                param=f"parts[{index}]",
            )
        numbers.append(int(str(number)))
    if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
        raise APIError(
            400, "InvalidPartOrder: parts must be listed once each in ascending order", param="parts"
        )
    for number in numbers[:-1]:
        if record.parts[str(number)][1] < state.settings.min_part_size_bytes:
            raise APIError(
                400, f"EntityTooSmall: part {number} is below the minimum part size", param="parts"
            )
    record.bytes = await asyncio.to_thread(state.files.assemble, record, numbers)
    record.uploaded = True
    record.upload_id = None
    record.parts = {}
    state.files.start_processing(record)
    state.save_file(record)
    return FastJSON(record.to_json(state.clock.now()))


@router.post("/v1/files/multipart/abort")
async def multipart_abort(request: Request) -> Response:
    """Abandon a multipart upload and drop its parts."""
    state = state_of(request)
    body = await _json_body(request)
    record = _upload(body, request)
    state.files.delete(record.id)
    if state.store is not None:
        state.store.delete("files", record.id)
    return FastJSON({"upload_id": body.get("upload_id"), "file_id": record.id, "aborted": True})


@router.get("/v1/files")
async def list_files(request: Request) -> Response:
    """List uploaded files."""
    state = state_of(request)
    now_v = state.clock.now()
    return FastJSON({"object": "list", "data": [record.to_json(now_v) for record in state.files.listed()]})


@router.get("/v1/files/{file_id}")
async def retrieve_file(file_id: str, request: Request) -> Response:
    """Retrieve one file object."""
    state = state_of(request)
    record = state.files.get(file_id)
    if not record.uploaded:
        raise APIError(404, f"File {file_id} not found", param="id", code="not_found")
    return FastJSON(record.to_json(state.clock.now()))


@router.delete("/v1/files/{file_id}")
async def delete_file(file_id: str, request: Request) -> Response:
    """Delete a file and its bytes."""
    state = state_of(request)
    state.files.delete(file_id)
    if state.store is not None:
        state.store.delete("files", file_id)
    return FastJSON({"id": file_id, "object": "file", "deleted": True})


@router.get("/v1/files/{file_id}/content")
async def file_content(file_id: str, request: Request) -> Response:
    """Stream a file's bytes back (Range requests supported)."""
    state = state_of(request)
    record = state.files.get(file_id)
    if not record.uploaded:
        raise APIError(404, f"File {file_id} not found", param="id", code="not_found")
    return FileResponse(
        state.files.path(record), media_type="application/octet-stream", filename=record.filename
    )
