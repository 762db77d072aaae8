"""
Field-level checks of a create request: typed bounds, training type (LoRA/Full), training method (SFT/DPO)
and the learning-rate scheduler. Each failure is a 400 whose ``param`` is the dotted path of the field.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from airflow_provider_together.emulator.errors import APIError

if TYPE_CHECKING:
    from airflow_provider_together.emulator.catalog import ModelEntry

__all__ = ["bad", "check_int", "check_number", "scheduler", "training_method", "training_type"]

_DPO_ONLY = (
    "dpo_beta",
    "rpo_alpha",
    "simpo_gamma",
    "dpo_normalize_logratios_by_length",
    "dpo_reference_free",
)


def bad(message: str, param: str, code: str | None = "invalid_parameter") -> APIError:
    """Build a 400 naming ``param``."""
    return APIError(400, message, param=param, code=code)


def check_int(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    """Read an integer field (``default`` when absent) and check ``low <= value <= high``."""
    value = body.get(name, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"{name} must be an integer, got {value!r}", name)
    if not low <= value <= high:
        raise bad(f"{name} must be between {low} and {high} for this model, got {value}", name)
    return value


def check_number(value: Any, name: str, low: float, high: float, *, high_open: bool = False) -> float:
    """Check a numeric field is in ``[low, high]`` (``[low, high)`` with ``high_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise bad(f"{name} must be a number, got {value!r}", name)
    if value < low or value > high or (high_open and value >= high):
        bound = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise bad(f"{name} must be in {bound}, got {value}", name)
    return float(value)


def training_type(body: dict[str, Any], entry: ModelEntry, default_lora: bool) -> tuple[bool, dict[str, Any]]:
    """
    Resolve ``training_type``: ``(is_lora, echoed object)``; LoRA defaults from the model's limits.

    :param default_lora: the type when the request leaves it out (LoRA, or the parent job's when resuming).
    """
    raw = body.get("training_type")
    lora_limits = entry.limits["lora_training"]
    if raw is None:
        raw = {"type": "Lora"} if default_lora else {"type": "Full"}
    if not isinstance(raw, dict) or str(raw.get("type", "")).lower() not in ("lora", "full", ""):
        raise bad("training_type.type must be 'Lora' or 'Full'", "training_type.type")
    if str(raw.get("type", "")).lower() in ("full", ""):
        if not entry.supports_full:
            raise bad(f"Full training is not supported for model {entry.name}; use LoRA", "training_type")
        return False, {"type": "Full"}
    rank = raw.get("lora_r", lora_limits["default_rank"])
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= lora_limits["max_rank"]:
        raise bad(
            f"lora_r must be an integer in [1, {lora_limits['max_rank']}] for {entry.name}, got {rank!r}",
            "training_type.lora_r",
        )
    alpha = raw.get("lora_alpha", 2 * rank)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise bad(f"lora_alpha must be a positive number, got {alpha!r}", "training_type.lora_alpha")
    dropout = check_number(
        raw.get("lora_dropout", 0.0), "training_type.lora_dropout", 0.0, 1.0, high_open=True
    )
    modules = raw.get("lora_trainable_modules", "all-linear") or "all-linear"
    if not isinstance(modules, str):
        raise bad(
            "lora_trainable_modules must be a comma-separated string", "training_type.lora_trainable_modules"
        )
    if modules != "all-linear":
        names = {name.strip() for name in modules.split(",") if name.strip()}
        allowed = set(lora_limits["target_modules"])
        unknown = sorted(names - allowed)
        if not names or unknown:
            shown = ", ".join(unknown) or repr(modules)
            raise bad(
                f"Invalid LoRA target modules {shown}; allowed: {', '.join(sorted(allowed))}",
                "training_type.lora_trainable_modules",
            )
        if names & entry.expert_modules and names - entry.expert_modules:
            raise bad(
                "Expert modules (w_up, w_gate, w_down) cannot be combined with attention modules",
                "training_type.lora_trainable_modules",
            )
    return True, {
        "type": "Lora",
        "lora_r": rank,
        "lora_alpha": int(alpha),
        "lora_dropout": dropout,
        "lora_trainable_modules": modules,
    }


def training_method(body: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Resolve ``training_method``: ``(is_dpo, echoed object)``; DPO-only fields are refused for SFT."""
    raw = body.get("training_method") or {"method": "sft"}
    if not isinstance(raw, dict) or raw.get("method") not in ("sft", "dpo"):
        raise bad("training_method.method must be 'sft' or 'dpo'", "training_method.method")
    if raw["method"] == "sft":
        for name in _DPO_ONLY:
            if raw.get(name) not in (None, False, 0, 0.0):
                raise bad(f"{name} is only allowed with training_method 'dpo'", f"training_method.{name}")
        inputs = raw.get("train_on_inputs", body.get("train_on_inputs", "auto"))
        if inputs not in (True, False, "auto"):
            raise bad("train_on_inputs must be true, false or 'auto'", "training_method.train_on_inputs")
        return False, {"method": "sft", "train_on_inputs": inputs}
    if raw.get("train_on_inputs") is not None:
        raise bad(
            "train_on_inputs is only allowed with training_method 'sft'", "training_method.train_on_inputs"
        )
    method: dict[str, Any] = {"method": "dpo"}
    for name, default in (("dpo_beta", 0.1), ("rpo_alpha", 0.0), ("simpo_gamma", 0.0)):
        method[name] = check_number(raw.get(name, default), f"training_method.{name}", 0.0, 1e6)
    for name in ("dpo_normalize_logratios_by_length", "dpo_reference_free"):
        method[name] = bool(raw.get(name, False))
    return True, method


def scheduler(body: dict[str, Any]) -> dict[str, Any]:
    """Resolve ``lr_scheduler`` (cosine by default), checking its ratios and cycles."""
    raw = body.get("lr_scheduler") or {"lr_scheduler_type": "cosine", "lr_scheduler_args": {}}
    kind = raw.get("lr_scheduler_type") if isinstance(raw, dict) else None
    if kind not in ("linear", "cosine"):
        raise bad(
            "lr_scheduler.lr_scheduler_type must be 'linear' or 'cosine'", "lr_scheduler.lr_scheduler_type"
        )
    args = raw.get("lr_scheduler_args") or {}
    result = {
        "min_lr_ratio": check_number(
            args.get("min_lr_ratio", 0.0), "lr_scheduler.lr_scheduler_args.min_lr_ratio", 0.0, 1.0
        )
    }
    if kind == "cosine":
        cycles = check_number(
            args.get("num_cycles", 0.5), "lr_scheduler.lr_scheduler_args.num_cycles", 0.0, 1e6
        )
        if cycles <= 0:
            raise bad(
                "num_cycles must be > 0 for the cosine scheduler", "lr_scheduler.lr_scheduler_args.num_cycles"
            )
        result["num_cycles"] = cycles
    return {"lr_scheduler_type": kind, "lr_scheduler_args": result}
