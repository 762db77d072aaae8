"""
``upload_file`` as one flow: the v3 presigned-URL protocol, and multipart for big files.

Single part: ``POST /files`` (text-only multipart form, sha256 ``checksum``, redirects *not* followed) ->
``302`` with ``Location`` and ``X-Together-File-Id`` -> ``PUT`` the bytes streamed from disk, with
``Content-Length`` and no API key -> ``POST /files/{id}/preprocess``. A ``409`` means Together already has
a file with this checksum, which is returned instead. Files over the threshold go through
``/files/multipart/{initiate,complete}``, with part PUTs in flight concurrently and ``abort`` on any
failure, so no half-uploaded file is left billed to the account.

.. seealso:: https://docs.together.ai/reference/upload-file
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_together._transport.flow import GIB, MIB, Gather, Run, call, log, request
from airflow_provider_together._transport.http import FileRegion, Spec, raise_error
from airflow_provider_together._transport.ops import get_file, one
from airflow_provider_together._transport.settings import cleartext_safe
from airflow_provider_together.exceptions import TogetherError, TogetherFileRejectedError
from airflow_provider_together.models import FileObject

if TYPE_CHECKING:
    import os

    import httpx

    from airflow_provider_together._transport.flow import Context, Flow, UploadOptions

FILE_TYPES = {".jsonl": "jsonl", ".parquet": "parquet", ".csv": "csv"}
MAX_FILE_SIZE = int(50.1 * GIB)
# Large blocks keep hashing at memory speed (the v3 SDK's 64 KiB blocks cost ~2x in Python overhead).
HASH_BLOCK = 4 * MIB
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_PUT_REDIRECTS = 5
UPLOAD_READ_TIMEOUT = 300.0
# The v3 SDK's rule: the prefix is server-controlled, so only the shape is checked.
_FILE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class LocalFile:
    """What the upload needs to know about the file: checked and hashed once, up front."""

    path: Path
    name: str
    size: int
    file_type: str
    sha256: str


def inspect_file(path: Path, sha256: str | None = None) -> LocalFile:
    """
    Check the file's extension and size and hash it (sha256 in large blocks, constant memory).

    Runs in a worker thread on the async path: hashing gigabytes must not stall the event loop.

    :param sha256: the digest when the caller already has it (the operator's checker computes it in the
        same read as the check), so that gigabytes are not read once more.
    """
    file_type = FILE_TYPES.get(path.suffix.lower())
    if file_type is None:
        raise TogetherFileRejectedError(
            f"{path.name}: unsupported extension {path.suffix!r}; use one of {', '.join(sorted(FILE_TYPES))}",
            file=str(path),
        )
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TogetherFileRejectedError(
            f"{path}: cannot read the file ({exc.strerror})", file=str(path)
        ) from exc
    if size == 0 or size > MAX_FILE_SIZE:
        rule = "is empty" if size == 0 else f"is larger than Together's {MAX_FILE_SIZE / GIB:.1f} GiB limit"
        raise TogetherFileRejectedError(f"{path.name} {rule}", file=str(path))
    if sha256 is not None:
        return LocalFile(path=path, name=path.name, size=size, file_type=file_type, sha256=sha256)
    digest = hashlib.sha256()
    buffer = bytearray(HASH_BLOCK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            digest.update(view[:n])
    return LocalFile(path=path, name=path.name, size=size, file_type=file_type, sha256=digest.hexdigest())


def plan_parts(size: int, options: UploadOptions) -> tuple[int, int]:
    """``(part_size, num_parts)``: the configured part size, grown until at most ``max_parts`` parts."""
    part_size = max(options.part_size, math.ceil(size / options.max_parts))
    return part_size, max(1, math.ceil(size / part_size))


def checked_upload_url(url: str | None) -> str:
    """
    Accept a presigned URL only over https, or plain http to a loopback host (the emulator).

    The bytes of a training set must not cross a network in clear text because a server said so; the rule
    is the connection's own (``settings.cleartext_safe``).
    """
    if url and cleartext_safe(url):
        return url
    parts = urlsplit(url or "")
    where = f"{parts.scheme}://{parts.hostname}" if parts.scheme else repr(parts.hostname or "")
    raise TogetherError(f"Refusing to upload to {where}: Together returned an upload URL that is not https")


def upload_file(
    ctx: Context, path: str | os.PathLike[str], purpose: str, sha256: str | None = None
) -> Flow[FileObject]:
    """Upload ``path`` for ``purpose``; return the file object (``processing_status`` may still be pending)."""
    local: LocalFile = yield Run(inspect_file, (Path(path), sha256))
    if local.size > ctx.uploads.multipart_threshold:
        return (yield from _multipart(ctx, local, purpose))
    form = {
        "purpose": purpose,
        "file_name": local.name,
        "file_type": local.file_type,
        "checksum": local.sha256,
    }
    spec = Spec("POST", "/files", form=form, follow_redirects=False, ok=REDIRECTS | {409})
    response = yield from request(ctx, spec)
    if response.status_code == 409:
        return (yield from _existing(ctx, response))
    file_id = response.headers.get("x-together-file-id", "")
    if response.status_code not in REDIRECTS or not _FILE_ID.match(file_id):
        raise TogetherError(
            f"POST /files answered {response.status_code} without a valid upload URL and X-Together-File-Id"
        )
    yield from _put(ctx, response.headers.get("location"), FileRegion(local.path, 0, local.size), {})
    log.info(
        "Uploaded %s (%d bytes) as %s; asking Together to preprocess it", local.name, local.size, file_id
    )
    return (yield from call(ctx, Spec("POST", f"/files/{file_id}/preprocess"), one(FileObject)))


def _put(ctx: Context, url: str | None, body: FileRegion, headers: dict[str, str]) -> Flow[httpx.Response]:
    """PUT ``body`` to a presigned URL, re-sending it by hand on redirects (a streamed body cannot replay)."""
    for _ in range(MAX_PUT_REDIRECTS + 1):
        spec = Spec(
            "PUT",
            checked_upload_url(url),
            headers=headers,
            body=body,
            external=True,
            follow_redirects=False,
            ok=REDIRECTS,
            read_timeout=max(ctx.settings.timeout, UPLOAD_READ_TIMEOUT),
        )
        response = yield from request(ctx, spec)
        if response.status_code not in REDIRECTS:
            return response
        url = response.headers.get("location")
    raise TogetherError(f"Upload URL redirected more than {MAX_PUT_REDIRECTS} times")


def _existing(ctx: Context, response: httpx.Response) -> Flow[FileObject]:
    """A 409 names the identical file Together already has: return it rather than upload again."""
    body = _json(response)
    error = body.get("error")
    file_id = body.get("file_id") or (error.get("file_id") if isinstance(error, dict) else None)
    if not isinstance(file_id, str) or not _FILE_ID.match(file_id):
        raise_error(response, secret=ctx.settings.api_key, context="POST /files")
    log.info("Together already has this file (same checksum) as %s; reusing it", file_id)
    return (yield from get_file(ctx, file_id))


def _multipart(ctx: Context, local: LocalFile, purpose: str) -> Flow[FileObject]:
    part_size, num_parts = plan_parts(local.size, ctx.uploads)
    body = {
        "file_name": local.name,
        "file_size": local.size,
        "num_parts": num_parts,
        "purpose": purpose,
        "file_type": local.file_type,
        "checksum": local.sha256,
    }
    response = yield from request(
        ctx, Spec("POST", "/files/multipart/initiate", json=body, ok=frozenset({409}))
    )
    if response.status_code == 409:
        return (yield from _existing(ctx, response))
    init = _json(response)
    upload_id, file_id, parts = init.get("upload_id"), init.get("file_id"), init.get("parts")
    if not upload_id or not isinstance(file_id, str) or not isinstance(parts, list) or not parts:
        raise TogetherError("POST /files/multipart/initiate answered without upload_id, file_id and parts")
    log.info("Uploading %s in %d part(s) of up to %d bytes as %s", local.name, len(parts), part_size, file_id)
    try:
        tags = yield Gather(
            [_put_part(ctx, local, part_size, part) for part in parts], ctx.uploads.concurrency
        )
        done = {
            "upload_id": upload_id,
            "file_id": file_id,
            "parts": sorted(tags, key=lambda p: p["part_number"]),
        }
        complete = Spec("POST", "/files/multipart/complete", json=done)
        file: FileObject = yield from call(ctx, complete, _completed_file)
    except Exception:
        yield from _abort(ctx, upload_id, file_id)
        raise
    return file


def _completed_file(response: httpx.Response) -> FileObject:
    """The file object of ``multipart/complete``: bare, or under ``file``."""
    result = _json(response)
    return FileObject.model_validate(result.get("file") if isinstance(result.get("file"), dict) else result)


def _put_part(ctx: Context, local: LocalFile, part_size: int, part: Any) -> Flow[dict[str, Any]]:
    number = int(part.get("PartNumber") or part.get("part_number") or 0) if isinstance(part, dict) else 0
    offset = (number - 1) * part_size
    if number < 1 or offset >= local.size:
        raise TogetherError(f"Multipart initiate returned an invalid part: {part!r:.200}")
    region = FileRegion(local.path, offset, min(part_size, local.size - offset))
    headers = {str(k): str(v) for k, v in (part.get("Headers") or {}).items()}
    response = yield from _put(ctx, part.get("URL") or part.get("UploadURL"), region, headers)
    etag = response.headers.get("etag", "").strip().strip('"')
    if not etag:
        raise TogetherError(f"Upload of part {number} returned no ETag")
    return {"part_number": number, "etag": etag}


def _abort(ctx: Context, upload_id: str, file_id: str) -> Flow[None]:
    """
    Best effort: the original failure is what the caller must see, so an abort failure is only logged.

    Any exception is caught here (not only API errors) because this runs while another one is propagating;
    letting a second failure replace the first would hide why the upload failed.
    """
    spec = Spec("POST", "/files/multipart/abort", json={"upload_id": upload_id, "file_id": file_id})
    try:
        yield from request(ctx, spec)
    except Exception as exc:
        log.warning("Could not abort multipart upload %s: %s", upload_id, exc)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
