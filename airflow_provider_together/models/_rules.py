"""
The validation rules of a fine-tuning config: static ones (no network) and those needing the model's limits.

Each rule yields ``(field_path, message)``; the message states the rule and the offending value, so a
user can fix every problem from one error. Rule numbers in comments refer to section 3.4 of the API
reference (the checks the v3 SDK makes), the rest are checks the SDKs skip and the server enforces after a
queue slot has been paid for. Comparisons are written ``not (lo <= x <= hi)`` so that they also reject NaN.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from airflow_provider_together.models._parts import DPOMethod, FullTraining, LoRATraining

if TYPE_CHECKING:
    from airflow_provider_together.models.config import FineTuneConfig
    from airflow_provider_together.models.responses import LoRALimits, ModelLimits

__all__ = ["SUFFIX_MAX_LENGTH", "limit_problems", "resolve_lora", "static_problems"]

Problem = tuple[str, str]
SUFFIX_MAX_LENGTH = 40
_SUFFIX_CHARS = re.compile(r"[A-Za-z0-9._-]+")
_CHECKPOINT = re.compile(r"[^:\s]+(:\d+)?")
ALL_LINEAR = "all-linear"


def static_problems(cfg: FineTuneConfig) -> list[Problem]:
    """Every rule that needs nothing but the config itself."""
    return [
        *_starting_point(cfg),
        *_hyperparameters(cfg),
        *_method_and_type(cfg),
        *_evals_and_early_stopping(cfg),
        *_naming(cfg),
    ]


def _starting_point(cfg: FineTuneConfig) -> list[Problem]:
    problems: list[Problem] = []
    if not cfg.training_file.strip():
        problems.append(("training_file", "is required: the id of an uploaded training file (file-...)"))
    if cfg.model and cfg.from_checkpoint:  # rule 1
        problems.append(
            ("from_checkpoint", "give either model or from_checkpoint as the starting point, not both")
        )
    if not cfg.model and not cfg.from_checkpoint:  # rule 2
        problems.append(
            ("model", "a starting point is required: set model (or from_checkpoint to resume a job)")
        )
    if cfg.from_checkpoint and cfg.from_hf_model:  # rule 3
        problems.append(("from_hf_model", "give either from_checkpoint or from_hf_model, not both"))
    if cfg.from_hf_model and not cfg.model:  # rule 4
        problems.append(
            ("model", "from_hf_model needs model: the base model it matches in architecture and size")
        )
    if cfg.hf_model_revision and not cfg.from_hf_model:
        problems.append(("hf_model_revision", "only applies with from_hf_model"))
    if cfg.from_checkpoint and not _CHECKPOINT.fullmatch(cfg.from_checkpoint):
        problems.append(
            (
                "from_checkpoint",
                "must be a job id or output model name, optionally followed by ':STEP' (an integer)",
            )
        )
    return problems


def _hyperparameters(cfg: FineTuneConfig) -> list[Problem]:
    problems: list[Problem] = []
    if not cfg.learning_rate > 0:
        problems.append(("learning_rate", f"must be > 0 (got {cfg.learning_rate})"))
    if not 0 <= cfg.warmup_ratio <= 1:  # rule 9
        problems.append(("warmup_ratio", f"must be between 0 and 1 inclusive (got {cfg.warmup_ratio})"))
    min_lr = cfg.lr_scheduler.lr_scheduler_args.min_lr_ratio
    if not 0 <= min_lr <= 1:  # rule 10
        problems.append(
            (
                "lr_scheduler.lr_scheduler_args.min_lr_ratio",
                f"must be between 0 and 1 inclusive (got {min_lr})",
            )
        )
    if cfg.lr_scheduler.lr_scheduler_type == "cosine":
        cycles = cfg.lr_scheduler.lr_scheduler_args.num_cycles
        if not cycles > 0:  # rule 17
            problems.append(
                (
                    "lr_scheduler.lr_scheduler_args.num_cycles",
                    f"must be > 0 for the cosine scheduler (got {cycles})",
                )
            )
    if not cfg.max_grad_norm >= 0:  # rule 11
        problems.append(("max_grad_norm", f"must be >= 0; 0 disables clipping (got {cfg.max_grad_norm})"))
    if not cfg.weight_decay >= 0:  # rule 12
        problems.append(("weight_decay", f"must be >= 0 (got {cfg.weight_decay})"))
    for name, value, low in (
        ("n_epochs", cfg.n_epochs, 1),
        ("n_checkpoints", cfg.n_checkpoints, 1),
        ("n_evals", cfg.n_evals, 0),
        ("max_seq_length", cfg.max_seq_length, 1),
        ("gradient_accumulation_steps", cfg.gradient_accumulation_steps, 1),
    ):
        if value is not None and value < low:
            problems.append((name, f"must be >= {low} (got {value})"))
    if isinstance(cfg.batch_size, int) and cfg.batch_size < 1:
        problems.append(("batch_size", f'must be >= 1 or "max" (got {cfg.batch_size})'))
    return problems


def _method_and_type(cfg: FineTuneConfig) -> list[Problem]:
    problems: list[Problem] = []
    method = cfg.training_method
    if isinstance(method, DPOMethod):
        if method.dpo_beta is not None and not method.dpo_beta > 0:
            problems.append(("training_method.dpo_beta", f"must be > 0 (got {method.dpo_beta})"))
        if method.rpo_alpha is not None and not method.rpo_alpha >= 0:  # rule 16
            problems.append(("training_method.rpo_alpha", f"must be >= 0 (got {method.rpo_alpha})"))
        if method.simpo_gamma is not None and not method.simpo_gamma >= 0:  # rule 16
            problems.append(("training_method.simpo_gamma", f"must be >= 0 (got {method.simpo_gamma})"))
    ttype = cfg.training_type
    if isinstance(ttype, LoRATraining):
        if not 0 <= ttype.lora_dropout < 1:  # rule 5
            problems.append(("training_type.lora_dropout", f"must be in [0, 1) (got {ttype.lora_dropout})"))
        if ttype.lora_r is not None and ttype.lora_r < 1:
            problems.append(("training_type.lora_r", f"must be >= 1 (got {ttype.lora_r})"))
        if ttype.lora_alpha is not None and ttype.lora_alpha < 1:
            problems.append(("training_type.lora_alpha", f"must be >= 1 (got {ttype.lora_alpha})"))
        names = ttype.module_names
        if not names:
            problems.append(
                ("training_type.lora_trainable_modules", 'must name at least one module, or be "all-linear"')
            )
        elif ALL_LINEAR in names and len(names) > 1:
            problems.append(
                (
                    "training_type.lora_trainable_modules",
                    '"all-linear" already means every module; use it alone',
                )
            )
    return problems


def _evals_and_early_stopping(cfg: FineTuneConfig) -> list[Problem]:
    problems: list[Problem] = []
    if cfg.n_evals > 0 and not cfg.validation_file:
        problems.append(
            ("n_evals", f"n_evals > 0 needs a validation_file to evaluate on (got n_evals={cfg.n_evals})")
        )
    stop = cfg.early_stopping
    if not stop.enabled:
        return problems
    # Rule 20 mirrors the backend: a baseline eval, the warm-up evals, then `patience` non-improving evals.
    if stop.patience is not None and stop.patience < 1:
        problems.append(("early_stopping.patience", f"must be >= 1 (got {stop.patience})"))
    if stop.warmup_evals is not None and stop.warmup_evals < 0:
        problems.append(("early_stopping.warmup_evals", f"must be >= 0 (got {stop.warmup_evals})"))
    if stop.min_delta is not None and not stop.min_delta >= 0:
        problems.append(("early_stopping.min_delta", f"must be >= 0 (got {stop.min_delta})"))
    if not cfg.validation_file:
        problems.append(("validation_file", "early stopping needs a validation_file"))
    patience = 2 if stop.patience is None else stop.patience
    warmup = 1 if stop.warmup_evals is None else stop.warmup_evals
    needed = patience + warmup + 1
    if cfg.n_evals < needed:
        problems.append(
            (
                "n_evals",
                f"early stopping needs n_evals >= patience + warmup_evals + 1 = {needed} (got {cfg.n_evals})",
            )
        )
    return problems


def _naming(cfg: FineTuneConfig) -> list[Problem]:
    problems: list[Problem] = []
    suffix = cfg.suffix
    if suffix is not None:
        if len(suffix) > SUFFIX_MAX_LENGTH:
            problems.append(("suffix", f"must be at most {SUFFIX_MAX_LENGTH} characters (got {len(suffix)})"))
        if not _SUFFIX_CHARS.fullmatch(suffix):
            problems.append(("suffix", "may contain only letters, digits, '-', '_' and '.'"))
    return problems


def resolve_lora(cfg: FineTuneConfig, limits: ModelLimits) -> tuple[LoRATraining | None, str | None]:
    """
    Fill ``lora_r`` and ``lora_alpha`` from the limits when the config left them unset.

    :return: the resolved LoRA settings (``None`` when nothing changed) and a sentence saying what was chosen.
    """
    ttype = cfg.training_type
    if not isinstance(ttype, LoRATraining) or limits.lora_training is None:
        return None, None
    if ttype.lora_r is not None and ttype.lora_alpha is not None:
        return None, None
    notes = []
    rank = ttype.lora_r
    if rank is None:
        lora_limits = limits.lora_training
        # v3 uses default_rank; v1 used max_rank. default_rank is newer and may be absent.
        rank = lora_limits.default_rank or lora_limits.max_rank
        if rank is None:
            return None, None
        source = "default_rank" if lora_limits.default_rank else "max_rank"
        notes.append(f"lora_r={rank} (the model's {source})")
    alpha = ttype.lora_alpha
    if alpha is None:
        alpha = 2 * rank
        notes.append(f"lora_alpha={alpha} (2 x lora_r)")
    resolved = ttype.model_copy(update={"lora_r": rank, "lora_alpha": alpha})
    return resolved, f"Resolved LoRA defaults for {limits.model_name or cfg.model}: {', '.join(notes)}"


def limit_problems(cfg: FineTuneConfig, limits: ModelLimits) -> list[Problem]:
    """Every rule that needs the model's limits (``GET /fine-tunes/models/limits``); absent limits are skipped."""
    problems: list[Problem] = []
    model = limits.model_name or cfg.model or cfg.from_checkpoint
    ttype = cfg.training_type
    is_dpo = isinstance(cfg.training_method, DPOMethod)
    batch_limits: Any = None
    if isinstance(ttype, LoRATraining):
        if limits.lora_training is None:  # rule 6
            problems.append(("lora", f"LoRA adapters are not supported for {model}"))
        else:
            batch_limits = limits.lora_training
            problems += _lora_limits(ttype, limits.lora_training)
    elif isinstance(ttype, FullTraining):
        if not limits.full_training_supported:  # rule 7
            problems.append(("lora", f"full training (lora=False) is not supported for {model}; use LoRA"))
        else:
            batch_limits = limits.full_training
    # With no training type (inherited on resume) the batch limits are unknown, as in the SDK (rule 8).
    if batch_limits is not None and isinstance(cfg.batch_size, int):  # rule 8
        kind = "LoRA" if isinstance(ttype, LoRATraining) else "full"
        high = batch_limits.max_batch_size_dpo if is_dpo else batch_limits.max_batch_size
        low = batch_limits.min_batch_size
        if high is not None and cfg.batch_size > high:
            problems.append(
                (
                    "batch_size",
                    f"must be <= {high}, the max for {'DPO' if is_dpo else 'SFT'} {kind} training (got {cfg.batch_size})",
                )
            )
        if low is not None and cfg.batch_size < low:
            problems.append(
                ("batch_size", f"must be >= {low}, the min for {kind} training (got {cfg.batch_size})")
            )
    if cfg.multimodal_params.train_vision and not limits.supports_vision:  # rule 19
        problems.append(
            (
                "multimodal_params.train_vision",
                f"vision training is not supported: {model} is not a vision model",
            )
        )
    low_lr, high_lr = limits.min_learning_rate, limits.max_learning_rate
    if (low_lr is not None and cfg.learning_rate < low_lr) or (
        high_lr is not None and cfg.learning_rate > high_lr
    ):
        problems.append(
            ("learning_rate", f"must be within [{low_lr}, {high_lr}] for {model} (got {cfg.learning_rate})")
        )
    for name, value, high_count in (
        ("n_epochs", cfg.n_epochs, limits.max_num_epochs),
        ("n_evals", cfg.n_evals, limits.max_num_evals),
        ("n_checkpoints", cfg.n_checkpoints, limits.max_num_checkpoints),
    ):
        if high_count is not None and value > high_count:
            problems.append((name, f"must be <= {high_count}, the max for {model} (got {value})"))
    if cfg.max_seq_length is not None:  # rule 18 (equality passes)
        high_len = limits.max_seq_length_dpo if is_dpo else limits.max_seq_length_sft
        low_len = limits.min_max_seq_length
        if low_len is not None and cfg.max_seq_length < low_len:
            problems.append(("max_seq_length", f"must be >= {low_len} (got {cfg.max_seq_length})"))
        if high_len is not None and cfg.max_seq_length > high_len:
            method = "DPO" if is_dpo else "SFT"
            problems.append(
                (
                    "max_seq_length",
                    f"must be <= {high_len} for {method} on {model} (got {cfg.max_seq_length})",
                )
            )
    return problems


def _lora_limits(ttype: LoRATraining, lora_limits: LoRALimits) -> list[Problem]:
    problems: list[Problem] = []
    if ttype.lora_r is not None and lora_limits.max_rank is not None and ttype.lora_r > lora_limits.max_rank:
        problems.append(
            ("training_type.lora_r", f"must be <= {lora_limits.max_rank}, the max rank (got {ttype.lora_r})")
        )
    names = ttype.module_names
    allowed = set(lora_limits.target_modules)
    if allowed and names != [ALL_LINEAR]:
        unknown = [n for n in names if n not in allowed]
        if unknown:
            problems.append(
                (
                    "training_type.lora_trainable_modules",
                    f"unknown module(s) {', '.join(unknown)}; allowed: all-linear or {', '.join(sorted(allowed))}",
                )
            )
    return problems
