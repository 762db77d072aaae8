"""
The option names of a fine-tuning config: flat SDK keywords, nested groups, secrets and defaults.

Kept apart from the folding logic so that the error path (spelling hints) and the fold share one list.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DPO_KEYS",
    "FALSE_WORDS",
    "FLAT_KEYS",
    "GROUPS",
    "LORA_DEFAULTS",
    "NESTED_TO_FLAT",
    "SECRET_KEYS",
    "TAGS",
    "TAG_ERRORS",
    "TAG_VALUES",
    "TRUE_WORDS",
]

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
TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}


TAGS = {"training_type": "type", "training_method": "method", "lr_scheduler": "lr_scheduler_type"}
TAG_VALUES = {
    "training_type": {"lora": "Lora", "full": "Full"},
    "training_method": {"sft": "sft", "dpo": "dpo"},
    "lr_scheduler": {"cosine": "cosine", "linear": "linear"},
}
TAG_ERRORS = {
    "training_type": ("training_type.type", "must be 'Lora' or 'Full'"),
    "training_method": ("training_method", "must be 'sft' or 'dpo'"),
    "lr_scheduler": ("lr_scheduler.lr_scheduler_type", "must be 'cosine' or 'linear'"),
}
