"""Response models tolerate what the API sends (unknown fields and values); classify() is the status table."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_together.models import (
    Checkpoint,
    FileObject,
    FileProcessingStatus,
    FineTuneEvent,
    FineTuneJob,
    JobStatus,
    ModelLimits,
    Outcome,
    PriceEstimate,
    classify,
)

EXPECTED_OUTCOMES = {
    "pending": Outcome.RUNNING,
    "queued": Outcome.RUNNING,
    "running": Outcome.RUNNING,
    "compressing": Outcome.RUNNING,
    "uploading": Outcome.RUNNING,
    "cancel_requested": Outcome.RUNNING,
    "cancelled": Outcome.CANCELLED,
    "error": Outcome.FAILED,
    "user_error": Outcome.FAILED,
    "completed": Outcome.SUCCEEDED,
    "unknown": Outcome.RUNNING,
}


def test_job_status_has_every_api_status() -> None:
    assert {s.value for s in JobStatus} == set(EXPECTED_OUTCOMES)
    terminal = {s for s in JobStatus if s.is_terminal}
    assert terminal == {JobStatus.COMPLETED, JobStatus.CANCELLED, JobStatus.ERROR, JobStatus.USER_ERROR}


@pytest.mark.parametrize(("status", "outcome"), EXPECTED_OUTCOMES.items())
def test_classify_every_status(status: str, outcome: Outcome) -> None:
    assert classify(status) is outcome
    assert classify(JobStatus(status)) is outcome
    assert classify(FineTuneJob(id="ft-1", status=status)) is outcome


def test_unknown_status_is_running_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    job = FineTuneJob.model_validate({"id": "ft-1", "status": "paused_for_maintenance"})
    assert job.status is JobStatus.UNKNOWN
    assert job.status_raw == "paused_for_maintenance"
    with caplog.at_level(logging.WARNING, logger="airflow_provider_together.models"):
        assert classify(job) is Outcome.RUNNING
    assert "paused_for_maintenance" in caplog.text
    assert JobStatus("COMPLETED") is JobStatus.COMPLETED  # casing from other API generations
    assert JobStatus(None) is JobStatus.UNKNOWN


def test_job_tolerates_unknown_fields_and_converts_money() -> None:
    job = FineTuneJob.model_validate(
        {
            "id": "ft-0123",
            "status": "running",
            "model_output_name": "me/Meta-Llama-3.1-8B-Instruct-Reference-weekly-0a1b2c",
            "total_price": 4_250_000_000,
            "progress": {"estimate_available": True, "seconds_remaining": 90, "new": 1},
            "steps_completed": 10,
            "total_steps": 100,
            "batch_size": "max",
            "events": [{"type": "JOB_START", "level": "Info", "message": "go"}],
            "training_type": {"type": "Lora", "lora_r": 64},
            "brand_new_field": {"x": 1},
        }
    )
    assert job.total_price_usd == pytest.approx(4.25)
    assert job.model_output_name is not None
    assert job.progress is not None
    assert job.progress.seconds_remaining == 90
    assert job.model_extra == {"brand_new_field": {"x": 1}}
    assert job.events[0].is_type("job_start")
    assert FineTuneJob(id="ft-2").total_price_usd is None
    assert (
        FineTuneJob.model_validate({"id": "ft-3", "events": None, "total_price": 1.5e9}).total_price
        == 1_500_000_000
    )


def test_truncated_job_and_missing_status() -> None:
    job = FineTuneJob.model_validate({"id": "ft-9"})
    assert job.status is JobStatus.UNKNOWN
    assert job.events == []
    assert not job.is_terminal


def test_event_type_and_level_compare_case_insensitively() -> None:
    upper = FineTuneEvent.model_validate(
        {"type": "JOB_ERROR", "level": "Error", "message": "boom", "extra": 1}
    )
    lower = FineTuneEvent.model_validate({"type": "job_error", "level": "error"})
    legacy = FineTuneEvent.model_validate({"type": "COMPRESSING_MODEL", "level": "legacy_iwarning"})
    assert upper.kind == lower.kind == "job_error"
    assert upper.is_error
    assert lower.is_error
    assert legacy.is_warning
    assert not legacy.is_error
    assert legacy.is_type("model_compressing", "compressing_model")
    assert FineTuneEvent().kind == ""


def test_file_object_alias_status_and_report() -> None:
    f = FileObject.model_validate(
        {
            "id": "file-1",
            "object": "file",
            "FileType": "jsonl",
            "Processed": True,
            "processing_status": "INVALID_FORMAT",
            "validation_report": {
                "valid": False,
                "error": "Line 7: bad role",
                "error_type": "INVALID_FORMAT",
                "z": 0,
            },
        }
    )
    assert f.file_type == "jsonl"
    assert f.processing_status is FileProcessingStatus.INVALID_FORMAT
    assert f.processing_status.is_failed
    assert f.validation_report is not None
    assert f.validation_report.error == "Line 7: bad role"
    assert FileObject(id="f", file_type="csv").file_type == "csv"  # populate by name
    assert FileObject.model_validate({"id": "f", "processing_status": "ARCHIVED"}).processing_status is (
        FileProcessingStatus.UNKNOWN
    )
    assert FileObject.model_validate({"id": "f", "processing_status": "completed"}).processing_status.is_ready  # type: ignore[union-attr]
    assert FileObject.model_validate({"id": "f"}).processing_status is None


def test_checkpoint_and_limits(limits_payload: object) -> None:
    cp = Checkpoint.model_validate(
        {"step": 10, "checkpoint_type": "Intermediate", "checkpoint": "adapter", "object_id": "o"}
    )
    assert (cp.step, cp.checkpoint) == (10, "adapter")
    limits = ModelLimits.model_validate({**limits_payload("text"), "future_limit": 3})  # type: ignore[operator]
    assert limits.lora_training is not None
    assert limits.lora_training.default_rank == 64
    assert limits.full_training_supported
    assert not ModelLimits.model_validate(limits_payload("lora_only")).full_training_supported  # type: ignore[operator]


@pytest.mark.parametrize(
    ("payload", "available", "reason"),
    [
        (
            {
                "estimation_available": True,
                "estimated_total_price": 12.5,
                "allowed_to_proceed": False,
                "user_limit": 10.0,
                "estimated_train_token_count": 1_000_000,
                "estimated_eval_token_count": 0,
            },
            True,
            None,
        ),
        (
            {"estimation_available": False, "unavailable_reason": "train_file_not_validated"},
            False,
            "train_file_not_validated",
        ),
        (
            {"estimated_total_price": 3.0, "allowed_to_proceed": True, "user_limit": 100},
            True,
            None,
        ),  # spec shape
        (
            {"estimation_available": False, "unavailable_reason": "brand_new_reason"},
            False,
            "brand_new_reason",
        ),
    ],
    ids=["available", "unavailable", "spec-shape", "unknown-reason"],
)
def test_price_estimate_shapes(payload: dict[str, object], available: bool, reason: str | None) -> None:
    estimate = PriceEstimate.model_validate(payload)
    assert estimate.estimation_available is available
    assert estimate.unavailable_reason == reason
    if available:
        assert estimate.estimated_total_price is not None


def test_a_field_of_an_unexpected_type_is_dropped_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="airflow_provider_together.models"):
        job = FineTuneJob.model_validate(
            {
                "id": "ft-1",
                "status": "running",
                "created_at": 1_700_000_000,
                "learning_rate": "fast-ish",
                "progress": "soon",
                "events": [{"type": "JOB_START", "step": "many"}],
            }
        )
    assert (job.status, job.created_at, job.learning_rate, job.progress) == (
        JobStatus.RUNNING,
        1_700_000_000,
        None,
        None,
    )
    assert job.events[0].kind == "job_start"
    assert job.events[0].step is None
    assert "['learning_rate', 'progress'] in a FineTuneJob" in caplog.text
    assert "fast-ish" not in caplog.text
    with pytest.raises(ValueError, match="id"):
        FineTuneJob.model_validate({"status": "running"})
