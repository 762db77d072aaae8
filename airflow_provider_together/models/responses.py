"""
Tolerant models of what the Together API sends back: files, jobs, events, checkpoints, limits, prices.

The API adds fields and values without notice, and a strict response model turns that into a crashed
DAG (together-python #246). So every model here keeps unknown fields (``extra="allow"``), every field
but ``id`` is optional, and enum-valued fields fall back to ``UNKNOWN`` instead of failing. We parse the
fields the provider acts on; the rest stays reachable through ``model_extra``.

.. seealso:: https://docs.together.ai/reference/finetune
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)

from airflow_provider_together.models.status import FileProcessingStatus, JobStatus

__all__ = [
    "Checkpoint",
    "FileObject",
    "FineTuneEvent",
    "FineTuneJob",
    "FineTuneProgress",
    "FullLimits",
    "LoRALimits",
    "ModelLimits",
    "PriceEstimate",
    "ValidationReport",
]

NANO_DOLLARS_PER_DOLLAR = 1_000_000_000
log = logging.getLogger(__name__)


class _Response(BaseModel):
    """Base of all response models: keep unknown fields, accept field names and aliases alike."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=(), defer_build=True)

    @model_validator(mode="wrap")
    @classmethod
    def _drop_unreadable_fields(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        # A field whose type the API changed must not fail a poll loop: drop it (logged, value not shown)
        # and keep everything else. Required fields (``id``) still fail, since nothing can be done without them.
        try:
            return handler(data)
        except ValidationError as exc:
            if not isinstance(data, dict):
                raise
            required = {name for name, field in cls.model_fields.items() if field.is_required()}
            bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
            aliases = {field.alias: name for name, field in cls.model_fields.items() if field.alias}
            if not bad or bad & (required | {a for a, n in aliases.items() if n in required}):
                raise
            log.warning("Ignoring unreadable field(s) %s in a %s from the API", sorted(bad), cls.__name__)
            return handler({key: value for key, value in data.items() if key not in bad})


class ValidationReport(_Response):
    """The server's verdict on an uploaded file (``FileObject.validation_report``)."""

    valid: bool | None = None
    dataset_format: str | None = None
    error: str | None = None
    error_type: str | None = None
    nlines: int | None = None
    dataset_has_message_weights: bool | None = None
    dataset_has_sample_weights: bool | None = None
    dataset_has_tools: bool | None = None
    dataset_has_reasoning: bool | None = None
    dataset_has_parallel_tool_calls: bool | None = None
    dataset_is_multimodal: bool | None = None
    file_id: str | None = None


class FileObject(_Response):
    """An uploaded file (``GET /files/{id}``). The API spells the type key ``FileType``."""

    id: str
    object: str | None = None
    created_at: int | None = None
    filename: str | None = None
    bytes: int | None = None
    purpose: str | None = None
    file_type: str | None = Field(default=None, alias="FileType")
    processing_status: FileProcessingStatus | None = None
    validation_report: ValidationReport | None = None

    @field_validator("processing_status", mode="before")
    @classmethod
    def _status_or_unknown(cls, value: Any) -> Any:
        # Enum._missing_ already maps unknown strings; this also absorbs non-string junk.
        return None if value is None or value == "" else FileProcessingStatus(value)


class FineTuneEvent(_Response):
    """
    One entry of a job's event log (``GET /fine-tunes/{id}/events``).

    The event ``type`` is UPPERCASE from some API generations and lowercase from others, and ``level`` is
    ``Error`` or ``error``: use :attr:`kind` and :attr:`is_error` rather than comparing raw strings.
    """

    object: str | None = None
    created_at: str | int | None = None
    level: str | None = None
    message: str | None = None
    type: str | None = None
    step: int | None = None
    param_count: int | None = None
    token_count: int | None = None
    total_steps: int | None = None
    checkpoint_path: str | None = None
    model_path: str | None = None
    wandb_url: str | None = None
    hash: str | None = None

    @property
    def kind(self) -> str:
        """The event type in lowercase (``""`` when absent), for case-insensitive comparison."""
        return (self.type or "").strip().lower()

    def is_type(self, *names: str) -> bool:
        """Whether the event type equals any of ``names``, ignoring case (``is_type("job_error")``)."""
        return self.kind in {n.lower() for n in names}

    @property
    def is_error(self) -> bool:
        """Whether the event was logged at error level (any casing, including ``legacy_ierror``)."""
        return (self.level or "").strip().lower() in {"error", "legacy_ierror"}

    @property
    def is_warning(self) -> bool:
        """Whether the event was logged at warning level (any casing, including ``legacy_iwarning``)."""
        return (self.level or "").strip().lower() in {"warning", "legacy_iwarning"}


class FineTuneProgress(_Response):
    """Time estimate to the job's next state (``FineTuneJob.progress``)."""

    estimate_available: bool | None = None
    seconds_remaining: int | None = None


class FineTuneJob(_Response):
    """
    A fine-tuning job (``GET /fine-tunes/{id}``; create, list and cancel return a subset).

    ``status`` is always a :class:`JobStatus` (``UNKNOWN`` for values added after this release);
    ``status_raw`` keeps the string the server sent, for logs.
    """

    id: str
    status: JobStatus = JobStatus.UNKNOWN
    status_raw: str | None = None
    model: str | None = None
    model_output_name: str | None = None
    training_file: str | None = None
    validation_file: str | None = None
    suffix: str | None = None
    created_at: str | int | None = None
    updated_at: str | int | None = None
    started_at: str | int | None = None
    n_epochs: int | None = None
    n_checkpoints: int | None = None
    n_evals: int | None = None
    batch_size: int | str | None = None
    learning_rate: float | None = None
    total_steps: int | None = None
    steps_completed: int | None = None
    epochs_completed: int | None = None
    evals_completed: int | None = None
    queue_depth: int | None = None
    progress: FineTuneProgress | None = None
    token_count: int | None = None
    param_count: int | None = None
    total_price: int | None = Field(default=None, description="Price charged so far, in nano-dollars.")
    wandb_url: str | None = None
    events: list[FineTuneEvent] = Field(default_factory=list)
    from_checkpoint: str | None = None
    training_method: dict[str, Any] | None = None
    training_type: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _keep_raw_status(cls, data: Any) -> Any:
        # Remember the server's own spelling before the enum normalises it; logs should show what was sent.
        if isinstance(data, dict) and data.get("status") is not None and "status_raw" not in data:
            raw = data["status"]
            data = {**data, "status_raw": raw.value if isinstance(raw, JobStatus) else str(raw)}
        return data

    @field_validator("status", mode="before")
    @classmethod
    def _status_or_unknown(cls, value: Any) -> JobStatus:
        return JobStatus(value) if value is not None else JobStatus.UNKNOWN

    @field_validator("total_price", mode="before")
    @classmethod
    def _price_as_int(cls, value: Any) -> Any:
        # Nano-dollars are integers on the wire, but a float (e.g. 1.2e9) must not fail the parse.
        return int(value) if isinstance(value, float) else value

    @field_validator("events", mode="before")
    @classmethod
    def _events_list(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def total_price_usd(self) -> float | None:
        """``total_price`` in US dollars (the API sends nano-dollars), or ``None`` before it is known."""
        return None if self.total_price is None else self.total_price / NANO_DOLLARS_PER_DOLLAR

    @property
    def is_terminal(self) -> bool:
        """Whether the job can no longer change."""
        return self.status.is_terminal


class Checkpoint(_Response):
    """A saved checkpoint of a job (``GET /fine-tunes/{id}/checkpoints``)."""

    step: int | None = None
    created_at: str | int | None = None
    path: str | None = None
    checkpoint_type: str | None = Field(
        default=None, description='Display label, e.g. "Intermediate", "Final".'
    )
    checkpoint: str | None = Field(default=None, description='Download selector: "model" or "adapter".')


class LoRALimits(_Response):
    """LoRA limits of a model (``ModelLimits.lora_training``)."""

    max_batch_size: int | None = None
    max_batch_size_dpo: int | None = None
    min_batch_size: int | None = None
    max_rank: int | None = None
    default_rank: int | None = None
    target_modules: list[str] = Field(default_factory=list)


class FullLimits(_Response):
    """Full-training limits of a model (``ModelLimits.full_training``); all zero when unsupported."""

    max_batch_size: int | None = None
    max_batch_size_dpo: int | None = None
    min_batch_size: int | None = None


class ModelLimits(_Response):
    """
    What a base model allows (``GET /fine-tunes/models/limits?model_name=...``).

    Fields are optional because the OpenAPI spec and the v3 SDK disagree on which exist; a check whose
    limit is absent is skipped rather than guessed.
    """

    model_name: str | None = None
    max_num_epochs: int | None = None
    max_num_evals: int | None = None
    max_num_checkpoints: int | None = None
    max_learning_rate: float | None = None
    min_learning_rate: float | None = None
    max_seq_length_sft: int | None = None
    max_seq_length_dpo: int | None = None
    min_max_seq_length: int | None = None
    default_gradient_accumulation_steps: int | None = None
    supports_vision: bool = False
    supports_tools: bool | None = None
    supports_reasoning: bool | None = None
    supports_full_training: bool | None = None
    merge_output_lora: bool | None = None
    lora_training: LoRALimits | None = None
    full_training: FullLimits | None = None

    @property
    def full_training_supported(self) -> bool:
        """Whether ``lora=False`` can work: full limits present and not reported as zeros / unsupported."""
        if self.full_training is None or self.supports_full_training is False:
            return False
        return self.full_training.max_batch_size != 0


class PriceEstimate(_Response):
    """
    Answer of ``POST /fine-tunes/estimate-price``, in US dollars.

    Two shapes exist: available (price, limit and token counts) and unavailable (``estimation_available``
    false with an ``unavailable_reason`` such as ``train_file_not_validated``). The spec's older shape has no
    ``estimation_available`` at all, hence the default of true.
    """

    estimation_available: bool = True
    estimated_total_price: float | None = None
    allowed_to_proceed: bool | None = None
    user_limit: float | None = None
    estimated_train_token_count: int | None = None
    estimated_eval_token_count: int | None = None
    unavailable_reason: str | None = Field(
        default=None,
        description="Why no estimate was made: multimodal_dataset, train_file_not_validated, "
        "eval_file_not_validated, train_file_invalid or eval_file_invalid (others may appear).",
    )
