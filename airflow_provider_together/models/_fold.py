"""
Fold the flat SDK keyword spelling of a config into the nested form, and apply the cross-group rules.

``FineTuneConfig(lora=True, lora_r=16, training_method="dpo", dpo_beta=0.1, min_lr_ratio=0.1, ...)`` is how
the SDK and most user code spell a job; the model itself is nested (``training_type``, ``training_method``,
``lr_scheduler`` ...). Folding happens before pydantic sees the data, so both spellings give the same model.
The rules that depend on *which* keys were given (LoRA options with ``lora=False``, DPO options with SFT,
``train_on_inputs`` with DPO) are checked here, because after folding the information is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

__all__ = ["FLAT_KEYS", "NESTED_TO_FLAT", "SECRET_KEYS", "FoldResult", "fold"]

Problem = tuple[str, str]

#: flat SDK keyword -> path in the nested form.
FLAT_KEYS: dict[str, tuple[str, ...]] = {
    "lora_r": ("training_type", "lora_r"),
    "lora_alpha": ("training_type", "lora_alpha"),
    "lora_dropout": ("training_type", "lora_dropout"),
    "lora_trainable_modules": ("training_type", "lora_trainable_modules"),
    "train_on_inputs": ("training_method", "train_on_inputs"),
    "dpo_beta": ("training_method", "dpo_beta"),
    "dpo_normalize_logratios_by_length": ("training_method", "dpo_normalize_logratios_by_length"),
    "dpo_reference_free": ("training_method", "dpo_reference_free"),
    "rpo_alpha": ("training_method", "rpo_alpha"),
    "simpo_gamma": ("training_method", "simpo_gamma"),
    "lr_scheduler_type": ("lr_scheduler", "lr_scheduler_type"),
    "min_lr_ratio": ("lr_scheduler", "lr_scheduler_args", "min_lr_ratio"),
    "scheduler_num_cycles": ("lr_scheduler", "lr_scheduler_args", "num_cycles"),
    "wandb_project_name": ("wandb", "project_name"),
    "wandb_name": ("wandb", "name"),
    "wandb_entity": ("wandb", "entity"),
    "wandb_base_url": ("wandb", "base_url"),
    "early_stopping_enabled": ("early_stopping", "enabled"),
    "early_stopping_patience": ("early_stopping", "patience"),
    "early_stopping_min_delta": ("early_stopping", "min_delta"),
    "early_stopping_warmup_evals": ("early_stopping", "warmup_evals"),
    "train_vision": ("multimodal_params", "train_vision"),
}
#: nested path -> flat keyword, to name a field the way most users write it when their spelling is unknown.
NESTED_TO_FLAT = {".".join(path): flat for flat, path in FLAT_KEYS.items()}
GROUPS = ("training_type", "training_method", "lr_scheduler", "wandb", "early_stopping", "multimodal_params")

#: Secrets never belong in a config: it is rendered in the UI, stored in XCom and fingerprinted.
SECRET_KEYS = frozenset({"wandb_key", "wandb_api_key", "hf_api_token", "api_key", "together_api_key"})

#: LoRA options and their defaults; a non-default value with full training is a mistake.
LORA_DEFAULTS: dict[str, Any] = {
    "lora_r": None,
    "lora_alpha": None,
    "lora_dropout": 0.0,
    "lora_trainable_modules": "all-linear",
}
DPO_KEYS = ("dpo_beta", "dpo_normalize_logratios_by_length", "dpo_reference_free", "rpo_alpha", "simpo_gamma")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class FoldResult:
    """
    The nested dict to validate, the problems found while folding, and how the user spelled each option.

    :param data: the nested form, ready for pydantic.
    :param problems: ``(field_path, message)`` pairs.
    :param spelled: nested path -> the flat name the user wrote, so messages use the user's own words.
    """

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.problems: list[Problem] = []
        self.spelled: dict[str, str] = {}


def _as_bool(value: Any) -> bool | None:
    """Read a bool the way pydantic would (templates render ``"false"``); ``None`` if it is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _group(value: Any, tag: str | None) -> dict[str, Any] | None:
    """A group as a mutable dict; a bare string is its tag (``training_method="dpo"``); ``None`` if unusable."""
    if value is None:
        return {}
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, Mapping):
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in value.items()}
    if isinstance(value, str) and tag is not None:
        return {tag: value}
    return None


def fold(raw: Any) -> FoldResult:
    """
    Turn a flat, nested or mixed config mapping into the nested form, collecting every problem.

    :param raw: what the user gave (a mapping; anything else is reported as a problem).
    """
    out = FoldResult()
    if not isinstance(raw, Mapping):
        out.problems.append(
            ("", f"a fine-tuning config must be a mapping of options, got {type(raw).__name__}")
        )
        return out
    data = {str(k): v for k, v in raw.items()}
    for key in sorted(SECRET_KEYS & data.keys()):
        data.pop(key)
        out.problems.append(
            (
                key,
                "is a secret and not a config option; pass it to to_request() (the operator reads it from a connection)",
            )
        )

    tags = {"training_type": "type", "training_method": "method", "lr_scheduler": "lr_scheduler_type"}
    groups: dict[str, dict[str, Any]] = {}
    for name in GROUPS:
        group = _group(data.pop(name, None), tags.get(name))
        if group is None:  # a wrong type: leave it to pydantic, which names the expected type
            data[name] = raw[name]
            continue
        groups[name] = group
    explicit_training_type = bool(groups.get("training_type"))

    for flat, path in FLAT_KEYS.items():
        if flat not in data:
            continue
        value = data.pop(flat)
        if value is None:  # the SDK's "unset"
            continue
        group_name = path[0]
        if group_name not in groups:
            out.problems.append(
                (flat, f"cannot be combined with {group_name} given as {type(raw[group_name]).__name__}")
            )
            continue
        target = groups[group_name]
        for part in path[1:-1]:
            target = target.setdefault(part, {})
        leaf = path[-1]
        if leaf in target and target[leaf] != value:
            out.problems.append(
                (flat, f"given twice, as {flat} and as {'.'.join(path)}, with different values")
            )
            continue
        target[leaf] = value
        out.spelled[".".join(path)] = flat

    _fold_training_type(data, groups, raw, explicit_training_type, out)
    _fold_training_method(groups, out)
    _fold_scheduler(groups, out)
    data.update(groups)
    out.data = data
    return out


def _fold_training_type(
    data: dict[str, Any],
    groups: dict[str, dict[str, Any]],
    raw: Mapping[str, Any],
    explicit: bool,
    out: FoldResult,
) -> None:
    ttype = groups.get("training_type")
    lora_flag: bool | None = None
    if data.get("lora") is not None:
        lora_flag = _as_bool(data["lora"])
        if lora_flag is None:
            out.problems.append(("lora", "must be true (LoRA) or false (full training)"))
    data.pop("lora", None)
    if ttype is None:
        return
    tag = ttype.get("type")
    if tag is not None:
        normalised = {"lora": "Lora", "full": "Full"}.get(str(tag).strip().lower())
        if normalised is None:
            out.problems.append(("training_type.type", f"must be 'Lora' or 'Full' (got {tag!r})"))
            groups.pop("training_type")
            return
        if lora_flag is not None and (normalised == "Lora") != lora_flag:
            out.problems.append(("lora", f"contradicts training_type.type={normalised!r}"))
        tag = normalised
    elif lora_flag is not None:
        tag = "Lora" if lora_flag else "Full"
    elif any(k in ttype for k in LORA_DEFAULTS) or explicit:
        tag = "Lora"
    elif data.get("from_checkpoint"):
        # No choice made and resuming: send no training_type, so the server keeps the parent job's type
        # (forcing LoRA here could silently turn a full-training job into a LoRA one).
        groups.pop("training_type")
        data["training_type"] = None
        return
    else:
        tag = "Lora"
    ttype["type"] = tag
    if tag == "Full":
        for key, default in LORA_DEFAULTS.items():
            if key in ttype:
                value = ttype.pop(key)
                if value is not None and value != default:
                    where = out.spelled.get(f"training_type.{key}", f"training_type.{key}")
                    out.problems.append((where, "is a LoRA option but lora=False (full training); remove it"))


def _fold_training_method(groups: dict[str, dict[str, Any]], out: FoldResult) -> None:
    method = groups.get("training_method")
    if method is None:
        return
    name = str(method.get("method", "sft")).strip().lower()
    if name not in ("sft", "dpo"):
        out.problems.append(("training_method", f"must be 'sft' or 'dpo' (got {method.get('method')!r})"))
        groups["training_method"] = {"method": "sft"}
        return
    method["method"] = name
    if name == "sft":
        for key in DPO_KEYS:
            if key not in method:
                continue
            value = method.pop(key)
            flag_key = key in ("dpo_normalize_logratios_by_length", "dpo_reference_free")
            if value is not None and (not flag_key or _as_bool(value) is not False):
                where = out.spelled.get(f"training_method.{key}", f"training_method.{key}")
                out.problems.append(
                    (where, "is a DPO option but training_method is 'sft'; remove it or use 'dpo'")
                )
        return
    if method.get("train_on_inputs") is not None:
        where = out.spelled.get("training_method.train_on_inputs", "training_method.train_on_inputs")
        out.problems.append(
            (where, "only applies to SFT; DPO always trains on the preferred/rejected completions")
        )
    method.pop("train_on_inputs", None)
    if "dpo_reference_free" in method:
        # The API field is derived (SimPO <=> reference free), as in the SDK; accept it only when consistent so
        # that a request body read back parses.
        given = _as_bool(method.pop("dpo_reference_free"))
        gamma = _as_float(method.get("simpo_gamma")) or 0.0
        if given is not None and given != (gamma > 0):
            where = out.spelled.get(
                "training_method.dpo_reference_free", "training_method.dpo_reference_free"
            )
            out.problems.append(
                (where, "is derived from simpo_gamma (reference-free exactly when simpo_gamma > 0)")
            )


def _fold_scheduler(groups: dict[str, dict[str, Any]], out: FoldResult) -> None:
    sched = groups.get("lr_scheduler")
    if sched is None:
        return
    name = str(sched.get("lr_scheduler_type", "cosine")).strip().lower()
    if name not in ("cosine", "linear"):
        out.problems.append(
            (
                "lr_scheduler.lr_scheduler_type",
                f"must be 'cosine' or 'linear' (got {sched['lr_scheduler_type']!r})",
            )
        )
        groups["lr_scheduler"] = {"lr_scheduler_type": "cosine"}
        return
    sched["lr_scheduler_type"] = name
    args = sched.get("lr_scheduler_args")
    if name == "linear" and isinstance(args, dict) and args.get("num_cycles") is not None:
        args.pop("num_cycles")
        where = out.spelled.get(
            "lr_scheduler.lr_scheduler_args.num_cycles", "lr_scheduler.lr_scheduler_args.num_cycles"
        )
        out.problems.append((where, "only applies to the cosine scheduler, not 'linear'"))
