"""
The vocabulary of a job's life: scenarios, event types and levels, and the records :mod:`.timeline` plans with.

Kept apart from the planning code so that the admin API, the fault rules and persistence can name these
without importing the planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["DEFAULT_MESSAGES", "EventType", "JobSpec", "Level", "Plan", "Scenario"]


class Scenario(str, Enum):
    """How a job's life ends; set per emulator, per matching job or on one job through the admin API."""

    COMPLETE = "complete"
    ERROR = "error"
    USER_ERROR = "user_error"
    STALL = "stall"
    UNKNOWN_STATUS = "unknown_status"


class EventType(str, Enum):
    """Event ``type`` values the emulator emits (the spec's lowercase spelling, plus ``eval_complete``)."""

    JOB_PENDING = "job_pending"
    JOB_START = "job_start"
    MODEL_DOWNLOADING = "model_downloading"
    MODEL_DOWNLOAD_COMPLETE = "model_download_complete"
    TRAINING_DATA_DOWNLOADING = "training_data_downloading"
    TRAINING_DATA_DOWNLOAD_COMPLETE = "training_data_download_complete"
    VALIDATION_DATA_DOWNLOADING = "validation_data_downloading"
    VALIDATION_DATA_DOWNLOAD_COMPLETE = "validation_data_download_complete"
    WANDB_INIT = "wandb_init"
    TRAINING_START = "training_start"
    CHECKPOINT_SAVE = "checkpoint_save"
    EPOCH_COMPLETE = "epoch_complete"
    EVAL_COMPLETE = "eval_complete"
    TRAINING_COMPLETE = "training_complete"
    MODEL_COMPRESSING = "model_compressing"
    MODEL_COMPRESSION_COMPLETE = "model_compression_complete"
    MODEL_UPLOADING = "model_uploading"
    MODEL_UPLOAD_COMPLETE = "model_upload_complete"
    JOB_COMPLETE = "job_complete"
    JOB_ERROR = "job_error"
    CANCEL_REQUESTED = "cancel_requested"
    JOB_STOPPED = "job_stopped"
    REFUND = "refund"


class Level(str, Enum):
    """Event levels (the spec's lowercase spelling)."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


DEFAULT_MESSAGES = {
    Scenario.ERROR: (
        "Job failed due to an internal error: NCCL communicator was aborted on rank 3 (CUDA error: an illegal "
        "memory access was encountered). Our team has been notified. You have not been charged for this job."
    ),
    Scenario.USER_ERROR: (
        "Job failed: the training data could not be tokenized. Line 1: every sample is longer than "
        "max_seq_length after truncation, so no training tokens remain. Please check your dataset."
    ),
}


@dataclass(frozen=True)
class JobSpec:
    """Everything a plan depends on; persisted, so a restored job replans to the same life."""

    job_id: str
    model: str
    output_name: str
    created_v: float
    n_epochs: int
    n_checkpoints: int
    n_evals: int
    steps_per_epoch: int
    queue_ahead: int
    token_count: int
    param_count: int
    lora: bool
    has_validation: bool
    wandb_url: str | None
    scenario: Scenario = Scenario.COMPLETE
    scenario_params: dict[str, Any] = field(default_factory=dict)
    scenario_not_before: float = 0.0
    cancel_v: float | None = None

    @property
    def total_steps(self) -> int:
        """Optimizer steps over all epochs."""
        return self.steps_per_epoch * self.n_epochs


@dataclass
class Plan:
    """The laid-out life of a job, in virtual seconds."""

    stages: list[tuple[str, float]]
    events: list[tuple[float, dict[str, Any]]]
    checkpoints: list[tuple[float, dict[str, Any]]]
    queued_at: float
    train_start: float
    train_end: float
    freeze_v: float | None = None
