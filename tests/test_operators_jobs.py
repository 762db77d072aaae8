"""Upload, cancel and download-checkpoint operators against the emulator, and ObjectStoragePath inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _fine_tune_support import (
    BASE_MODEL,
    FAST,
    FakeTI,
    MemoryStateStore,
    create_job,
    make_context,
    write_training_file,
)
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_together.operators import (
    TogetherCancelFineTuneOperator,
    TogetherDownloadCheckpointOperator,
    TogetherFineTuneOperator,
    TogetherUploadFileOperator,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def emu(together_emulator_conn: Any) -> Any:
    together_emulator_conn.admin.update_settings(speed=FAST)
    return together_emulator_conn


def test_upload_checks_uploads_once_and_returns_a_ready_file_id(emu: Any, tmp_path: Path) -> None:
    from airflow_provider_together.hooks import TogetherHook

    path = write_training_file(tmp_path / "train.jsonl")
    store = MemoryStateStore()
    op = TogetherUploadFileOperator(task_id="upload", path=str(path))
    file_id = op.execute(make_context(store=store))
    assert file_id.startswith("file-")
    assert TogetherHook().get_file(file_id).processing_status.is_ready
    # A retry of the same task instance (Airflow 3.3 state store) does not send the bytes again.
    assert (
        TogetherUploadFileOperator(task_id="upload", path=str(path)).execute(make_context(store=store))
        == file_id
    )
    assert emu.admin.count("POST /v1/files") == 1


def test_upload_rejects_a_bad_file_before_sending_it(emu: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("this is not json\n")
    with pytest.raises(AirflowFailException, match="line 1|Line 1"):
        TogetherUploadFileOperator(task_id="upload", path=str(bad)).execute(make_context())
    assert emu.admin.count("POST /v1/files") == 0


def test_upload_of_a_missing_path_names_the_argument(emu: Any, tmp_path: Path) -> None:
    with pytest.raises(AirflowFailException, match="path"):
        TogetherUploadFileOperator(task_id="upload", path=str(tmp_path / "nope.jsonl")).execute(
            make_context()
        )


def test_object_storage_path_is_accepted(emu: Any, tmp_path: Path) -> None:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    path = write_training_file(tmp_path / "remote" / "train.jsonl")
    result = TogetherFineTuneOperator(
        task_id="fine_tune",
        training_file=ObjectStoragePath(f"file://{path}"),
        model=BASE_MODEL,
        deferrable=False,
        poll_interval=0.05,
    ).execute(make_context())
    assert result["status"] == "completed"


def test_existing_file_id_is_used_without_upload(emu: Any, tmp_path: Path) -> None:
    from airflow_provider_together.hooks import TogetherHook

    file_id = TogetherHook().upload_file(write_training_file(tmp_path / "t.jsonl")).id
    emu.admin.reset_counts()
    result = TogetherFineTuneOperator(
        task_id="fine_tune", training_file=file_id, model=BASE_MODEL, deferrable=False, poll_interval=0.05
    ).execute(make_context())
    assert result["status"] == "completed"
    assert emu.admin.count("POST /v1/files") == 0


def test_cancel_operator(emu: Any, tmp_path: Path) -> None:
    emu.admin.set_default_scenario("stall")
    job_id = create_job(tmp_path)
    status = TogetherCancelFineTuneOperator(task_id="cancel", job_id=job_id).execute(make_context())
    assert status in ("cancel_requested", "cancelled")
    assert emu.admin.job(job_id)["cancel_requested"] is True


def test_cancel_operator_on_a_finished_job_is_a_no_op(emu: Any, tmp_path: Path) -> None:
    ti = FakeTI()
    result = TogetherFineTuneOperator(
        task_id="fine_tune",
        training_file=str(write_training_file(tmp_path / "t.jsonl")),
        model=BASE_MODEL,
        deferrable=False,
        poll_interval=0.05,
    ).execute(make_context(ti))
    status = TogetherCancelFineTuneOperator(task_id="cancel", job_id=result["job_id"]).execute(make_context())
    assert status == "completed"
    assert emu.admin.count("POST /v1/fine-tunes/{job_id}/cancel") == 0


def test_download_checkpoint_operator(emu: Any, tmp_path: Path) -> None:
    result = TogetherFineTuneOperator(
        task_id="fine_tune",
        training_file=str(write_training_file(tmp_path / "t.jsonl")),
        model=BASE_MODEL,
        deferrable=False,
        poll_interval=0.05,
    ).execute(make_context())
    dest = tmp_path / "models"
    dest.mkdir()
    path = TogetherDownloadCheckpointOperator(
        task_id="download", job_id=result["job_id"], dest=str(dest), checkpoint="adapter"
    ).execute(make_context())
    assert Path(path).is_file()
    assert Path(path).stat().st_size > 0


def test_deferral_timeout_backstop_cancels_the_job(emu: Any, tmp_path: Path) -> None:
    # Airflow's own deferral timeout fired before the trigger's deadline: the task must not leave the job running.
    from airflow.providers.common.compat.sdk import AirflowException

    emu.admin.set_default_scenario("stall")
    job_id = create_job(tmp_path)
    ti = FakeTI()
    ti.xcom_push("job_id", job_id)
    op = TogetherFineTuneOperator(task_id="fine_tune", training_file="file-abc123", model=BASE_MODEL)
    with pytest.raises(AirflowException):
        op.resume_execution("__fail__", {"error": "Trigger timeout"}, make_context(ti))
    assert emu.admin.job(job_id)["cancel_requested"] is True


def test_dpo_resumed_from_a_checkpoint_is_estimated_like_any_job(emu: Any, tmp_path: Path) -> None:
    import json

    parent = TogetherFineTuneOperator(
        task_id="sft",
        training_file=str(write_training_file(tmp_path / "t.jsonl")),
        model=BASE_MODEL,
        deferrable=False,
        poll_interval=0.05,
    ).execute(make_context(FakeTI(task_id="sft")))
    prefs = tmp_path / "prefs.jsonl"
    with prefs.open("w") as fh:
        for i in range(20):
            row = {
                "input": {"messages": [{"role": "user", "content": f"Say hi number {i}"}]},
                "preferred_output": [{"role": "assistant", "content": f"Hi {i}!"}],
                "non_preferred_output": [{"role": "assistant", "content": "No."}],
            }
            fh.write(json.dumps(row) + "\n")
    emu.admin.reset_counts()
    result = TogetherFineTuneOperator(
        task_id="dpo",
        from_checkpoint=parent["job_id"],
        training_file=str(prefs),
        training_method="dpo",
        dpo_beta=0.1,
        max_price_usd=1000,
        deferrable=False,
        poll_interval=0.05,
    ).execute(make_context(FakeTI(task_id="dpo")))
    assert result["status"] == "completed"
    # As the v3 SDK does: a resumed job is estimated too, so max_price_usd holds for it.
    assert emu.admin.count("POST /v1/fine-tunes/estimate-price") == 1
    assert emu.admin.count("POST /v1/fine-tunes") == 1


def test_upload_retry_without_a_state_store_reuses_togethers_copy(emu: Any, tmp_path: Path) -> None:
    """
    The Airflow 3.1 / 3.2 path of the test above (no task state store): the retry asks Together again, and
    Together's duplicate-file answer (409 with the existing id) stops a second copy of the bytes.
    """
    from airflow_provider_together.hooks import TogetherHook

    path = write_training_file(tmp_path / "train.jsonl")
    first = TogetherUploadFileOperator(task_id="upload", path=str(path)).execute(make_context())
    second = TogetherUploadFileOperator(task_id="upload", path=str(path)).execute(make_context())
    assert second == first
    assert emu.admin.count("POST /v1/files") == 2
    assert emu.admin.count("PUT /_upload/{file_id}") == 1, emu.admin.requests()
    assert len(TogetherHook().list_files()) == 1
