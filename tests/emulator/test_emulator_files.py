"""The emulator's files API: the v3 upload dance, multipart, duplicates, validation, auth."""

from __future__ import annotations

import hashlib
import math
import socket

import httpx
import pytest
from _emu_helpers import conversation_lines, ready_file, upload, wait_for

from airflow_provider_together.emulator import Emulator


def test_upload_flow_answers_302_then_put_then_preprocess(api: httpx.Client) -> None:
    data = conversation_lines(25)
    form = {
        "purpose": "fine-tune",
        "file_name": "t.jsonl",
        "file_type": "jsonl",
        "checksum": hashlib.sha256(data).hexdigest(),
    }
    answer = api.post("/files", data=form, follow_redirects=False)
    assert answer.status_code == 302
    file_id = answer.headers["X-Together-File-Id"]
    assert file_id.startswith("file-")
    assert file_id in answer.headers["Location"]
    # Like a presigned URL: no Authorization header is needed (or sent) for the PUT.
    put = httpx.put(answer.headers["Location"], content=data)
    assert put.status_code == 200
    assert put.headers["ETag"]
    first = api.post(f"/files/{file_id}/preprocess").json()
    assert first["processing_status"] == "PENDING"
    assert first["bytes"] == len(data)
    assert first["FileType"] == "jsonl"
    done = wait_for(
        lambda: (f := api.get(f"/files/{file_id}").json())["processing_status"] != "PENDING" and f
    )
    assert done["processing_status"] == "COMPLETED"
    report = done["validation_report"]
    assert report["valid"] is True
    assert report["dataset_format"] == "conversation"
    assert report["nlines"] == 25
    assert "estimated_tokens" not in report


def test_invalid_file_ends_invalid_format_with_the_checkers_message(api: httpx.Client) -> None:
    data = b'{"messages": [{"role": "user", "content": "hi"}]}\n{"text": 3}\n'
    file_id = upload(api, data, "bad.jsonl")
    done = wait_for(
        lambda: (f := api.get(f"/files/{file_id}").json())["processing_status"] != "PENDING" and f
    )
    assert done["processing_status"] == "INVALID_FORMAT"
    assert done["validation_report"]["valid"] is False
    assert done["validation_report"]["error_type"] == "INVALID_FORMAT"
    assert "Line" in done["validation_report"]["error"]


def test_duplicate_checksum_gets_409_with_the_existing_file_id(api: httpx.Client) -> None:
    data = conversation_lines(5)
    file_id = upload(api, data)
    form = {
        "purpose": "fine-tune",
        "file_name": "again.jsonl",
        "file_type": "jsonl",
        "checksum": hashlib.sha256(data).hexdigest(),
    }
    answer = api.post("/files", data=form, follow_redirects=False)
    assert answer.status_code == 409
    assert answer.json()["file_id"] == file_id
    assert answer.json()["error"]["param"] == "checksum"


def test_upload_url_requires_its_token(api: httpx.Client) -> None:
    form = {"purpose": "fine-tune", "file_name": "t.jsonl", "file_type": "jsonl"}
    location = api.post("/files", data=form, follow_redirects=False).headers["Location"]
    forged = location.split("?")[0] + "?token=forged"
    assert httpx.put(forged, content=b"{}").status_code == 403


@pytest.mark.parametrize("field", ["purpose", "file_type"])
def test_bad_upload_fields_are_400_naming_the_field(api: httpx.Client, field: str) -> None:
    form = {"purpose": "fine-tune", "file_name": "t.jsonl", "file_type": "jsonl", field: "bogus"}
    answer = api.post("/files", data=form, follow_redirects=False)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == field


def test_list_retrieve_content_delete(api: httpx.Client) -> None:
    data = conversation_lines(3)
    file_id = upload(api, data)
    assert [f["id"] for f in api.get("/files").json()["data"]] == [file_id]
    assert api.get(f"/files/{file_id}/content").content == data
    deleted = api.delete(f"/files/{file_id}").json()
    assert deleted == {"id": file_id, "object": "file", "deleted": True}
    assert api.get(f"/files/{file_id}").status_code == 404
    assert api.get("/files").json()["data"] == []


def test_missing_or_wrong_key_is_401_in_the_api_error_shape(together_emulator: Emulator) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": together_emulator.api_key}):
        answer = httpx.get(f"{together_emulator.base_url}/files", headers=headers)
        assert answer.status_code == 401
        error = answer.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert together_emulator.api_key not in answer.text


def _multipart(api: httpx.Client, data: bytes, part_size: int) -> tuple[dict, list[dict]]:
    num_parts = math.ceil(len(data) / part_size)
    body = {
        "file_name": "big.jsonl",
        "file_size": len(data),
        "num_parts": num_parts,
        "purpose": "fine-tune",
        "file_type": "jsonl",
        "checksum": hashlib.sha256(data).hexdigest(),
    }
    started = api.post("/files/multipart/initiate", json=body)
    assert started.status_code == 200, started.text
    info = started.json()
    parts = []
    for part in info["parts"]:
        number = part["PartNumber"]
        chunk = data[(number - 1) * part_size : number * part_size]
        answer = httpx.put(part["URL"], content=chunk, headers=part["Headers"])
        assert answer.status_code == 200
        parts.append({"part_number": number, "etag": answer.headers["ETag"].strip('"')})
    return info, parts


def test_multipart_upload_assembles_and_validates(together_emulator: Emulator, api: httpx.Client) -> None:
    together_emulator.admin.update_settings(min_part_size_bytes=1000)
    data = conversation_lines(100)
    info, parts = _multipart(api, data, part_size=1500)
    assert len(parts) > 2
    done = api.post(
        "/files/multipart/complete",
        json={"upload_id": info["upload_id"], "file_id": info["file_id"], "parts": parts},
    )
    assert done.status_code == 200, done.text
    assert done.json()["bytes"] == len(data)
    assert api.get(f"/files/{info['file_id']}/content").content == data
    wait_for(lambda: api.get(f"/files/{info['file_id']}").json()["processing_status"] == "COMPLETED")


def test_multipart_rejects_a_wrong_etag_and_small_parts(
    together_emulator: Emulator, api: httpx.Client
) -> None:
    together_emulator.admin.update_settings(min_part_size_bytes=1000)
    data = conversation_lines(100)
    info, parts = _multipart(api, data, part_size=1500)
    parts[1]["etag"] = "0" * 32
    wrong = api.post(
        "/files/multipart/complete",
        json={"upload_id": info["upload_id"], "file_id": info["file_id"], "parts": parts},
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["param"] == "parts[1]"
    small = {
        "file_name": "s.jsonl",
        "file_size": 5000,
        "num_parts": 10,
        "purpose": "fine-tune",
        "file_type": "jsonl",
    }
    answer = api.post("/files/multipart/initiate", json=small)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "num_parts"


def test_multipart_abort_forgets_the_upload(together_emulator: Emulator, api: httpx.Client) -> None:
    together_emulator.admin.update_settings(min_part_size_bytes=1000)
    info, parts = _multipart(api, conversation_lines(60), part_size=1200)
    aborted = api.post(
        "/files/multipart/abort", json={"upload_id": info["upload_id"], "file_id": info["file_id"]}
    )
    assert aborted.json()["aborted"] is True
    assert api.get(f"/files/{info['file_id']}").status_code == 404
    completed = api.post(
        "/files/multipart/complete",
        json={"upload_id": info["upload_id"], "file_id": info["file_id"], "parts": parts},
    )
    assert completed.status_code == 404


def test_single_put_above_the_multipart_threshold_is_refused(
    together_emulator: Emulator, api: httpx.Client
) -> None:
    together_emulator.admin.update_settings(multipart_threshold_bytes=100)
    form = {"purpose": "fine-tune", "file_name": "t.jsonl", "file_type": "jsonl"}
    location = api.post("/files", data=form, follow_redirects=False).headers["Location"]
    answer = httpx.put(location, content=conversation_lines(10))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "EntityTooLarge"


def test_file_ready_helper_reports_completed(api: httpx.Client) -> None:
    file_id = ready_file(api)
    assert api.get(f"/files/{file_id}").json()["Processed"] is True


def test_an_interrupted_upload_leaves_no_file(api: httpx.Client) -> None:
    form = {"purpose": "fine-tune", "file_name": "cut.jsonl", "file_type": "jsonl"}
    answer = api.post("/files", data=form, follow_redirects=False)
    location = httpx.URL(answer.headers["Location"])
    file_id = answer.headers["X-Together-File-Id"]
    with socket.create_connection((location.host, location.port), timeout=5) as sock:
        target = location.raw_path.decode()
        head = f"PUT {target} HTTP/1.1\r\nHost: {location.host}\r\nContent-Length: 100000\r\n\r\n"
        sock.sendall(head.encode() + b'{"text": "only part of the body"}\n')
    # The server notices the disconnect; the file never becomes a listed, uploaded file.
    wait_for(lambda: api.get("/files").status_code == 200)
    assert api.get(f"/files/{file_id}").status_code == 404
    assert api.post(f"/files/{file_id}/preprocess").status_code == 400
    assert api.get("/files").json()["data"] == []
