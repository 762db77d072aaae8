"""
Server-side checks of ``POST /fine-tunes`` (and ``/estimate-price``), as the service applies them.

Both SDKs skip most numeric bounds (epochs, evals, checkpoints, learning rate, LoRA rank, modules, suffix,
file readiness) and leave them to the server, so this module is where a client that forgot a check finds
out: a 400 in the API's error shape whose ``param`` names the field, a 404 for an unknown model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_together.emulator.checks import (
    bad,
    check_int,
    check_number,
    scheduler,
    training_method,
    training_type,
)
from airflow_provider_together.emulator.errors import APIError, not_found
from airflow_provider_together.models.status import FileProcessingStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_together.emulator.catalog import Catalog, ModelEntry
    from airflow_provider_together.emulator.files import FileRecord, FileStore

__all__ = ["Resolved", "resolve_request"]

_SUFFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")


@dataclass
class Resolved:
    """A create request after the server's checks and defaults."""

    entry: ModelEntry
    echo: dict[str, Any]
    lora: bool
    dpo: bool
    batch_size: int
    train_file: FileRecord
    validation_file: FileRecord | None
    wandb: bool
    train_tokens: int = 0
    eval_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _file(files: FileStore, file_id: Any, param: str, now_v: float) -> FileRecord:
    if not isinstance(file_id, str) or not file_id:
        raise bad(f"{param} must be a file id", param)
    record = files.files.get(file_id)
    if record is None or not record.uploaded:
        raise not_found("File", file_id, param=param)
    if record.purpose != "fine-tune":
        raise bad(
            f"File {file_id} has purpose {record.purpose!r}; fine-tuning needs purpose 'fine-tune'", param
        )
    status = record.status(now_v)
    if status is FileProcessingStatus.PENDING:
        raise bad(
            f"File {file_id} is not ready yet (processing_status {status.value}); wait until it is COMPLETED",
            param,
            "file_not_ready",
        )
    if status is not FileProcessingStatus.COMPLETED:
        error = (record.check or {}).get("error", "validation failed")
        raise bad(f"File {file_id} failed validation ({status.value}): {error}", param, "file_invalid")
    return record


def _model(
    body: dict[str, Any], catalog: Catalog, parent_of: Callable[[str], dict[str, Any] | None]
) -> tuple[ModelEntry, bool, dict[str, Any]]:
    """Resolve the base model, from ``model`` or from the parent of ``from_checkpoint``."""
    model, checkpoint = body.get("model"), body.get("from_checkpoint")
    if model and checkpoint:
        raise bad("Specify either a model or a checkpoint to train from, not both", "from_checkpoint")
    if body.get("from_hf_model") and not model:
        raise bad("from_hf_model requires model (the base model of the same architecture)", "model")
    if checkpoint:
        if not isinstance(checkpoint, str):
            raise bad("from_checkpoint must be a string", "from_checkpoint")
        parent = parent_of(checkpoint.split(":", 1)[0])
        if parent is None:
            raise bad(
                f"Checkpoint {checkpoint} not found: expected JOB_ID or OUTPUT_MODEL_NAME, optionally :STEP",
                "from_checkpoint",
            )
        entry = catalog.get(parent["model"])
        if entry is None:
            raise not_found("Model", parent["model"], param="from_checkpoint")
        return entry, bool(parent["lora"]), {"from_checkpoint": checkpoint}
    if not isinstance(model, str) or not model:
        raise bad("model is required (or from_checkpoint)", "model")
    entry = catalog.get(model)
    if entry is None:
        raise APIError(
            404, f"Model {model} is not available for fine-tuning", param="model", code="model_not_found"
        )
    return entry, True, {}


def resolve_request(
    body: Any,
    *,
    catalog: Catalog,
    files: FileStore,
    parent_of: Callable[[str], dict[str, Any] | None],
    now_v: float,
) -> Resolved:
    """
    Apply the server's checks and defaults to a create request.

    :param body: the decoded JSON body.
    :param parent_of: looks up a completed job by id or output name (``{"model", "lora"}``), for
        ``from_checkpoint``.
    :param now_v: virtual now (file readiness is time-dependent).
    """
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object", "body")
    train = _file(files, body.get("training_file"), "training_file", now_v)
    validation_id = body.get("validation_file") or None
    validation = _file(files, validation_id, "validation_file", now_v) if validation_id else None
    entry, default_lora, echo = _model(body, catalog, parent_of)
    limits = entry.limits
    lora, resolved_type = training_type(body, entry, default_lora)
    dpo, method = training_method(body)
    fmt = (train.check or {}).get("dataset_format")
    if dpo != (fmt == "preference") and fmt is not None:
        wanted = "a preference dataset" if dpo else "a general, conversation or instruction dataset"
        raise bad(
            f"training_method {method['method']!r} needs {wanted}; {train.id} is {fmt}", "training_file"
        )
    n_epochs = check_int(body, "n_epochs", 1, 1, limits["max_num_epochs"])
    n_checkpoints = check_int(body, "n_checkpoints", 1, 1, limits["max_num_checkpoints"])
    n_evals = check_int(body, "n_evals", 0, 0, limits["max_num_evals"])
    if n_evals > 0 and validation is None:
        raise bad("n_evals > 0 requires a validation_file", "validation_file")
    side = limits["lora_training"] if lora else limits["full_training"]
    high = side["max_batch_size_dpo"] if dpo else side["max_batch_size"]
    batch = body.get("batch_size", "max")
    batch_size = (
        high if batch in ("max", None) else check_int(body, "batch_size", high, side["min_batch_size"], high)
    )
    learning_rate = check_number(
        body.get("learning_rate", 1e-5),
        "learning_rate",
        limits["min_learning_rate"],
        limits["max_learning_rate"],
    )
    seq_high = limits["max_seq_length_dpo"] if dpo else limits["max_seq_length_sft"]
    max_seq_length = check_int(body, "max_seq_length", seq_high, limits["min_max_seq_length"], seq_high)
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or not _SUFFIX.match(suffix)):
        raise bad("suffix must be 1-40 characters: letters, digits, '.', '_' or '-'", "suffix")
    vision = bool((body.get("multimodal_params") or {}).get("train_vision", False))
    if vision and not limits["supports_vision"]:
        raise bad(
            f"train_vision is not supported: {entry.name} is not a vision model",
            "multimodal_params.train_vision",
        )
    if body.get("early_stopping_enabled"):
        patience = check_int(body, "early_stopping_patience", 2, 1, 10_000)
        warmup = check_int(body, "early_stopping_warmup_evals", 1, 0, 10_000)
        check_number(body.get("early_stopping_min_delta", 0.0), "early_stopping_min_delta", 0.0, 1e9)
        if validation is None or n_evals < patience + warmup + 1:
            raise bad(
                "early stopping needs a validation_file and n_evals >= patience + warmup_evals + 1", "n_evals"
            )
    echo.update(
        {
            "model": entry.name,
            "training_file": train.id,
            "validation_file": validation.id if validation else "",
            "suffix": suffix,
            "n_epochs": n_epochs,
            "n_checkpoints": n_checkpoints,
            "n_evals": n_evals,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "lr_scheduler": scheduler(body),
            "warmup_ratio": check_number(body.get("warmup_ratio", 0.0), "warmup_ratio", 0.0, 1.0),
            "max_grad_norm": check_number(body.get("max_grad_norm", 1.0), "max_grad_norm", 0.0, 1e9),
            "weight_decay": check_number(body.get("weight_decay", 0.0), "weight_decay", 0.0, 1e9),
            "max_seq_length": max_seq_length,
            "packing": bool(body.get("packing", True)),
            "random_seed": body.get("random_seed"),
            "training_type": resolved_type,
            "training_method": method,
            "train_on_inputs": method.get("train_on_inputs", False),
            "multimodal_params": {"train_vision": vision},
            "wandb_project_name": body.get("wandb_project_name") or ("together" if _wandb(body) else None),
        }
    )
    for name in (
        "from_hf_model",
        "hf_model_revision",
        "hf_output_repo_name",
        "wandb_name",
        "wandb_entity",
        "wandb_base_url",
    ):
        if body.get(name):
            echo[name] = body[name]
    for name in (
        "early_stopping_enabled",
        "early_stopping_patience",
        "early_stopping_min_delta",
        "early_stopping_warmup_evals",
    ):
        if name in body:
            echo[name] = body[name]
    return Resolved(
        entry=entry,
        echo={k: v for k, v in echo.items() if v is not None},
        lora=lora,
        dpo=dpo,
        batch_size=batch_size,
        train_file=train,
        validation_file=validation,
        wandb=_wandb(body),
        train_tokens=int((train.check or {}).get("estimated_tokens", 0)),
        eval_tokens=int((validation.check or {}).get("estimated_tokens", 0)) if validation else 0,
    )


def _wandb(body: dict[str, Any]) -> bool:
    return bool(body.get("wandb_key") or body.get("wandb_api_key"))
