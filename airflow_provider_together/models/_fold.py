"""
Fold the flat SDK keyword spelling of a config into the nested form, and apply the cross-group rules.

``FineTuneConfig(lora=True, lora_r=16, training_method="dpo", dpo_beta=0.1, min_lr_ratio=0.1, ...)`` is how
the SDK and most user code spell a job; the model itself is nested (``training_type``, ``training_method``,
``lr_scheduler`` ...). Folding happens before pydantic sees the data, so both spellings give the same model.
The rules that depend on *which* keys were given (LoRA options with ``lora=False``, DPO options with SFT,
``train_on_inputs`` with DPO) are checked here, because after folding the information is gone.

Folding has two steps so that a config can be overridden by keywords (``FineTuneConfig.parse(base, **flat)``):
:func:`collect` turns one mapping into nested groups holding only what was given, :func:`merge` lays one
collected mapping over another (a group whose tag changes is replaced, not merged), and :func:`finish`
fills the tags' defaults and applies the cross-group rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from airflow_provider_together.models._names import (
    DPO_KEYS,
    FALSE_WORDS,
    FLAT_KEYS,
    GROUPS,
    LORA_DEFAULTS,
    SECRET_KEYS,
    TAG_ERRORS,
    TAG_VALUES,
    TAGS,
    TRUE_WORDS,
)

Problem = tuple[str, str]

__all__ = ["FoldResult", "collect", "finish", "fold", "merge"]


class FoldResult:
    """
    The nested dict to validate, the problems found while folding, and how the user spelled each option.

    :param data: the nested form, ready for pydantic once finished.
    :param problems: ``(field_path, message)`` pairs.
    :param spelled: nested path -> the flat name the user wrote, so messages use the user's own words.
    """

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.problems: list[Problem] = []
        self.spelled: dict[str, str] = {}
        self.is_mapping = True

    def where(self, path: str) -> str:
        """The field name to show for a nested path."""
        return self.spelled.get(path, path)


def _as_bool(value: Any) -> bool | None:
    """Read a bool the way pydantic would (templates render ``"false"``); ``None`` if it is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
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
        return value.model_dump(exclude_none=True)
    if isinstance(value, Mapping):
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in value.items()}
    if isinstance(value, str) and tag is not None:
        return {tag: value}
    return None


def collect(raw: Any) -> FoldResult:
    """
    Turn one flat, nested or mixed mapping into nested groups holding only what it gives (no defaults).

    :param raw: what the user gave (a mapping; anything else is reported as a problem).
    """
    out = FoldResult()
    if not isinstance(raw, Mapping):
        out.is_mapping = False
        out.problems.append(
            ("", f"a fine-tuning config must be a mapping of options, got {type(raw).__name__}")
        )
        return out
    data = {str(k): v for k, v in raw.items()}
    for key in sorted(SECRET_KEYS & data.keys()):
        data.pop(key)
        message = "is a secret and not a config option; pass it to to_request() (the operator reads it from a connection)"
        out.problems.append((key, message))
    groups: dict[str, dict[str, Any]] = {}
    for name in GROUPS:
        if name not in data:
            continue
        group = _group(data[name], TAGS.get(name))
        if group is None:
            continue  # a wrong type: left in place for pydantic, which names the expected type
        del data[name]
        if group:
            groups[name] = group
    for flat, path in FLAT_KEYS.items():
        value = data.pop(flat, None)
        if value is None:  # absent, or the SDK's "unset"
            continue
        if path[0] in data:
            out.problems.append(
                (flat, f"cannot be combined with {path[0]} given as {type(data[path[0]]).__name__}")
            )
            continue
        target: Any = groups.setdefault(path[0], {})
        for part in path[1:-1]:
            target = target.setdefault(part, {})
        if not isinstance(target, dict):
            out.problems.append(
                (flat, f"cannot be combined with {'.'.join(path[:-1])} given as {type(target).__name__}")
            )
            continue
        if path[-1] in target and target[path[-1]] != value:
            out.problems.append(
                (flat, f"given twice, as {flat} and as {'.'.join(path)}, with different values")
            )
            continue
        target[path[-1]] = value
        out.spelled[".".join(path)] = flat
    for name, tag in TAGS.items():
        group = groups.get(name)
        if group is not None and group.get(tag) is not None:
            normalised = TAG_VALUES[name].get(str(group[tag]).strip().lower())
            if normalised is None:
                tag_path, rule = TAG_ERRORS[name]
                out.problems.append((out.where(tag_path), f"{rule} (got {group[tag]!r})"))
                del groups[name]
            else:
                group[tag] = normalised
    _collect_lora_flag(data, groups, out)
    out.data = {**data, **groups}
    return out


def _collect_lora_flag(data: dict[str, Any], groups: dict[str, dict[str, Any]], out: FoldResult) -> None:
    """``lora=True/False`` is the SDK's spelling of the training type tag."""
    if data.get("lora") is None:
        data.pop("lora", None)
        return
    flag = _as_bool(data.pop("lora"))
    if flag is None:
        out.problems.append(("lora", "must be true (LoRA) or false (full training)"))
        return
    tag = "Lora" if flag else "Full"
    ttype = groups.setdefault("training_type", {})
    if ttype.get("type") not in (None, tag):
        out.problems.append(("lora", f"contradicts training_type.type={ttype['type']!r}"))
        return
    ttype["type"] = tag


def merge(base: FoldResult, override: FoldResult) -> FoldResult:
    """
    Lay ``override`` over ``base`` (both from :func:`collect`): later options win, groups merge key by key.

    A group whose tag changes (``lora=False`` over a LoRA config, ``training_method="dpo"`` over SFT) is
    replaced, so options of the old variant do not leak into the new one.
    """
    out = FoldResult()
    out.is_mapping = base.is_mapping and override.is_mapping
    out.problems = [*base.problems, *override.problems]
    out.spelled = {**base.spelled, **override.spelled}
    out.data = _deep_merge(base.data, override.data, top=True)
    return out


def _deep_merge(base: dict[str, Any], override: dict[str, Any], *, top: bool = False) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        if not (isinstance(value, dict) and isinstance(old, dict)):
            merged[key] = value
            continue
        tag = TAGS.get(key) if top else None
        if tag is not None and None not in (value.get(tag), old.get(tag)) and value[tag] != old[tag]:
            merged[key] = dict(value)
        else:
            merged[key] = _deep_merge(old, value)
    return merged


def finish(out: FoldResult) -> FoldResult:
    """Fill the tags' defaults and apply the rules that depend on which options were given."""
    data = out.data
    ttype = data.get("training_type")
    if isinstance(ttype, dict):
        _finish_training_type(ttype, out)
    elif "training_type" not in data and data.get("from_checkpoint"):
        # No choice made and resuming: send no training_type, so the server keeps the parent job's type
        # (forcing LoRA here could silently turn a full-training job into a LoRA one).
        data["training_type"] = None
    if isinstance(data.get("training_method"), dict):
        _finish_training_method(data["training_method"], out)
    if isinstance(data.get("lr_scheduler"), dict):
        _finish_scheduler(data["lr_scheduler"], out)
    return out


def fold(raw: Any) -> FoldResult:
    """Collect and finish one mapping: the whole path from user input to the nested form."""
    return finish(collect(raw))


def _finish_training_type(ttype: dict[str, Any], out: FoldResult) -> None:
    """LoRA unless Full was chosen; LoRA options with full training are an error."""
    ttype.setdefault("type", "Lora")
    if ttype["type"] != "Full":
        return
    for key, default in LORA_DEFAULTS.items():
        value = ttype.pop(key, None)
        if value is not None and value != default:
            out.problems.append(
                (
                    out.where(f"training_type.{key}"),
                    "is a LoRA option but lora=False (full training); remove it",
                )
            )


def _finish_training_method(method: dict[str, Any], out: FoldResult) -> None:
    """Options of the other method are errors (rules 14-16)."""
    method.setdefault("method", "sft")
    if method["method"] == "sft":
        for key in DPO_KEYS:
            value = method.pop(key, None)
            flag_key = key in ("dpo_normalize_logratios_by_length", "dpo_reference_free")
            if value is not None and (not flag_key or _as_bool(value) is not False):
                where = out.where(f"training_method.{key}")
                out.problems.append(
                    (where, "is a DPO option but training_method is 'sft'; remove it or use 'dpo'")
                )
        return
    if method.pop("train_on_inputs", None) is not None:
        where = out.where("training_method.train_on_inputs")
        out.problems.append(
            (where, "only applies to SFT; DPO always trains on the preferred/rejected completions")
        )
    if "dpo_reference_free" in method:
        # The API field is derived (SimPO <=> reference free), as in the SDK; accept it only when consistent so
        # that a request body read back parses.
        given = _as_bool(method.pop("dpo_reference_free"))
        gamma = _as_float(method.get("simpo_gamma")) or 0.0
        if given is not None and given != (gamma > 0):
            where = out.where("training_method.dpo_reference_free")
            out.problems.append(
                (where, "is derived from simpo_gamma (reference-free exactly when simpo_gamma > 0)")
            )


def _finish_scheduler(sched: dict[str, Any], out: FoldResult) -> None:
    """Cosine by default; ``num_cycles`` belongs to cosine only."""
    sched.setdefault("lr_scheduler_type", "cosine")
    args = sched.get("lr_scheduler_args")
    if (
        sched["lr_scheduler_type"] == "linear"
        and isinstance(args, dict)
        and args.get("num_cycles") is not None
    ):
        args.pop("num_cycles")
        where = out.where("lr_scheduler.lr_scheduler_args.num_cycles")
        out.problems.append((where, "only applies to the cosine scheduler, not 'linear'"))
