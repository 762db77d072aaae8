"""Model-limits payloads shared by the models tests (shapes of GET /fine-tunes/models/limits)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

# Numbers follow the reference's catalogue (together-models.md) and the SDK unit-test fixture.
_TEXT = {
    "model_name": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
    "max_num_epochs": 20,
    "max_num_evals": 10,
    "max_num_checkpoints": 10,
    "max_learning_rate": 1.0,
    "min_learning_rate": 1e-6,
    "max_seq_length_sft": 131072,
    "max_seq_length_dpo": 65536,
    "min_max_seq_length": 512,
    "default_gradient_accumulation_steps": 1,
    "supports_vision": False,
    "supports_tools": True,
    "supports_reasoning": False,
    "supports_full_training": True,
    "merge_output_lora": True,
    "lora_training": {
        "max_batch_size": 128,
        "max_batch_size_dpo": 64,
        "min_batch_size": 8,
        "max_rank": 64,
        "default_rank": 64,
        "target_modules": ["k_proj", "up_proj", "o_proj", "q_proj", "down_proj", "v_proj", "gate_proj"],
    },
    "full_training": {"max_batch_size": 96, "max_batch_size_dpo": 48, "min_batch_size": 8},
}
_VISION = {
    **copy.deepcopy(_TEXT),
    "model_name": "Qwen/Qwen3-VL-8B-Instruct",
    "max_seq_length_sft": 32768,
    "max_seq_length_dpo": 40960,
    "supports_vision": True,
    "lora_training": {
        **_TEXT["lora_training"],
        "max_batch_size": 8,
        "max_batch_size_dpo": 8,
        "default_rank": 32,
    },
    "full_training": {"max_batch_size": 8, "max_batch_size_dpo": 8, "min_batch_size": 8},
}
_LORA_ONLY = {
    **copy.deepcopy(_TEXT),
    "model_name": "deepseek-ai/DeepSeek-V3.1",
    "max_seq_length_sft": 65536,
    "max_seq_length_dpo": 32768,
    "supports_full_training": False,
    "default_gradient_accumulation_steps": 8,
    "lora_training": {
        "max_batch_size": 2,
        "max_batch_size_dpo": 2,
        "min_batch_size": 2,
        "max_rank": 16,
        "default_rank": 16,
        "target_modules": ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "mlp.gate_proj"],
    },
    "full_training": None,
}
LIMITS: dict[str, dict[str, Any]] = {"text": _TEXT, "vision": _VISION, "lora_only": _LORA_ONLY}


@pytest.fixture
def limits_payload() -> Callable[[str], dict[str, Any]]:
    """A fresh copy of a limits payload by name: text, vision or lora_only."""
    return lambda name: copy.deepcopy(LIMITS[name])


@pytest.fixture
def text_limits(limits_payload: Callable[[str], dict[str, Any]]) -> Any:
    """Parsed limits of a text model that supports LoRA and full training."""
    from airflow_provider_together.models import ModelLimits

    return ModelLimits.model_validate(limits_payload("text"))
