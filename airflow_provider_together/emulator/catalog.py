"""
The emulator's catalogue of fine-tunable models: limits as ``GET /fine-tunes/models/limits`` returns them,
and the per-token prices the emulator bills with.

The numbers live in ``catalog.json`` beside this module (with their sources) because Together changes them
over time for the same model id; a stale row is then a data fix, not a code change.

.. seealso:: https://docs.together.ai/docs/fine-tuning/supported-models
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["Catalog", "ModelEntry", "load_catalog"]

_CATALOG_FILE = Path(__file__).with_name("catalog.json")


@dataclass(frozen=True)
class ModelEntry:
    """
    One fine-tunable base model.

    :param name: the API model string.
    :param limits: the limits object exactly as the API serves it.
    :param params_b: total parameters in billions (prices follow total, not active, parameters).
    :param prices: USD per million tokens keyed ``sft_lora``, ``sft_full``, ``dpo_lora``, ``dpo_full``.
    :param expert_modules: LoRA modules that may not be combined with attention modules in one job.
    """

    name: str
    limits: dict[str, Any]
    params_b: float
    prices: dict[str, float]
    expert_modules: frozenset[str]

    @property
    def supports_full(self) -> bool:
        """Whether full (non-LoRA) training is allowed."""
        return bool(self.limits["supports_full_training"])

    def price_per_million(self, *, dpo: bool, full: bool) -> float:
        """USD per million billed tokens for this training method and type."""
        return self.prices[f"{'dpo' if dpo else 'sft'}_{'full' if full else 'lora'}"]


class Catalog:
    """
    Model lookup by API name; case-sensitive, like the service.

    :param entries: the models, in the order ``/fine-tunes/models/supported`` lists them.
    """

    def __init__(self, entries: list[ModelEntry]) -> None:
        self._by_name = {entry.name: entry for entry in entries}

    def get(self, name: str) -> ModelEntry | None:
        """Return the model, or ``None`` when it is not fine-tunable here."""
        return self._by_name.get(name)

    def names(self) -> list[str]:
        """Return every model name."""
        return list(self._by_name)


def _build_entry(row: dict[str, Any], data: dict[str, Any]) -> ModelEntry:
    defaults = data["defaults"]
    lora_max, lora_max_dpo, lora_min = row["lora"]
    full = row["full"]
    max_rank = int(row["max_rank"])
    limits: dict[str, Any] = {
        "model_name": row["name"],
        "max_num_epochs": defaults["max_num_epochs"],
        "max_num_evals": defaults["max_num_evals"],
        "max_num_checkpoints": defaults["max_num_checkpoints"],
        "max_learning_rate": defaults["max_learning_rate"],
        "min_learning_rate": defaults["min_learning_rate"],
        "max_seq_length_sft": row["ctx_sft"],
        "max_seq_length_dpo": row["ctx_dpo"],
        "min_max_seq_length": defaults["min_max_seq_length"],
        "default_gradient_accumulation_steps": row["ga"],
        "supports_vision": row["vision"],
        "supports_tools": row["tools"],
        "supports_reasoning": row["reasoning"],
        "supports_full_training": full is not None,
        "merge_output_lora": defaults["merge_output_lora"],
        "lora_training": {
            "max_batch_size": lora_max,
            "max_batch_size_dpo": lora_max_dpo,
            "min_batch_size": lora_min,
            "max_rank": max_rank,
            "default_rank": min(64, max_rank),
            "target_modules": list(data["module_sets"][row["modules"]]),
        },
        # The v3 SDK documents that LoRA-only models report zeroed full limits rather than null.
        "full_training": {
            "max_batch_size": full[0] if full else 0,
            "max_batch_size_dpo": full[1] if full else 0,
            "min_batch_size": full[2] if full else 0,
        },
    }
    return ModelEntry(
        name=row["name"],
        limits=limits,
        params_b=float(row["params_b"]),
        prices=dict(data["price_brackets_usd_per_million"][row["bracket"]]),
        expert_modules=frozenset(data["expert_modules"]),
    )


@cache
def load_catalog(path: str | None = None) -> Catalog:
    """
    Load and cache the catalogue.

    :param path: an alternative JSON file with the same layout (for users who need other models).
    """
    data = json.loads(Path(path or _CATALOG_FILE).read_text(encoding="utf-8"))
    return Catalog([_build_entry(row, data) for row in data["models"]])
