"""
The nested groups of :class:`~airflow_provider_together.models.FineTuneConfig`.

Each group mirrors one object of the ``POST /fine-tunes`` body (or one family of flat options), so a
config reads like the request it becomes. Training method, training type and LR scheduler are
discriminated unions on the same tag the API uses (``method``, ``type``, ``lr_scheduler_type``).

.. seealso:: https://docs.together.ai/reference/post-fine-tunes
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CosineScheduler",
    "CosineSchedulerArgs",
    "DPOMethod",
    "EarlyStoppingConfig",
    "FullTraining",
    "LRScheduler",
    "LinearScheduler",
    "LinearSchedulerArgs",
    "LoRATraining",
    "MultimodalParams",
    "SFTMethod",
    "TrainingMethod",
    "TrainingType",
    "WandbConfig",
]


class _Part(BaseModel):
    """Our input, so a typo must fail (``extra="forbid"``); frozen so a validated config cannot drift."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)


class SFTMethod(_Part):
    """Supervised fine-tuning (the default method)."""

    method: Literal["sft"] = Field(description='Discriminator: "sft".')
    train_on_inputs: bool | Literal["auto"] = Field(
        default="auto",
        description="Train on prompt tokens too (true), only on completions (false), or let the server decide from "
        'the data format ("auto").',
    )


class DPOMethod(_Part):
    """Direct preference optimisation; a positive ``simpo_gamma`` switches to reference-free SimPO."""

    method: Literal["dpo"] = Field(description='Discriminator: "dpo".')
    dpo_beta: float | None = Field(
        default=None,
        description="Strength of the KL penalty against the reference model (server default 0.1).",
    )
    dpo_normalize_logratios_by_length: bool = Field(
        default=False, description="Normalise log-ratios by sequence length (forced on by SimPO)."
    )
    rpo_alpha: float | None = Field(
        default=None, description="Weight of the RPO NLL term (>= 0; server default 0)."
    )
    simpo_gamma: float | None = Field(
        default=None, description="SimPO target reward margin (>= 0); > 0 enables reference-free training."
    )

    @model_validator(mode="before")
    @classmethod
    def _simpo_normalises(cls, data: Any) -> Any:
        # SimPO is length-normalised by definition; the SDK forces the flag on, so the config says so too and a
        # request body reads back as the same config.
        if isinstance(data, dict):
            try:
                simpo = float(data.get("simpo_gamma") or 0)
            except (TypeError, ValueError):
                return data  # pydantic reports the type error
            if simpo > 0:
                return {**data, "dpo_normalize_logratios_by_length": True}
        return data

    @property
    def reference_free(self) -> bool:
        """Whether SimPO is on; the SDK derives ``dpo_reference_free`` the same way."""
        return self.simpo_gamma is not None and self.simpo_gamma > 0


TrainingMethod = Annotated[SFTMethod | DPOMethod, Field(discriminator="method")]


class LoRATraining(_Part):
    """LoRA adapters (the default). ``lora_r``/``lora_alpha`` left unset are resolved from the model's limits."""

    type: Literal["Lora"] = Field(description='Discriminator: "Lora".')
    lora_r: int | None = Field(
        default=None, description="Adapter rank; default: the model's default rank (else its max rank)."
    )
    lora_alpha: int | None = Field(default=None, description="Adapter scaling factor; default 2 x lora_r.")
    lora_dropout: float = Field(default=0.0, description="Dropout on adapter inputs, in [0, 1).")
    lora_trainable_modules: str = Field(
        default="all-linear",
        description='Comma-separated module names from the model\'s target_modules, or "all-linear".',
    )

    @property
    def module_names(self) -> list[str]:
        """The trainable modules as a list (whitespace around names ignored)."""
        return [m.strip() for m in self.lora_trainable_modules.split(",") if m.strip()]


class FullTraining(_Part):
    """Full fine-tuning of every weight (``lora=False``); only some models support it."""

    type: Literal["Full"] = Field(description='Discriminator: "Full".')


TrainingType = Annotated[LoRATraining | FullTraining, Field(discriminator="type")]


class CosineSchedulerArgs(_Part):
    """Arguments of the cosine schedule."""

    min_lr_ratio: float = Field(default=0.0, description="Final LR as a fraction of the peak LR, in [0, 1].")
    num_cycles: float = Field(default=0.5, description="Number of cosine cycles (> 0); 0.5 decays once.")


class LinearSchedulerArgs(_Part):
    """Arguments of the linear schedule."""

    min_lr_ratio: float = Field(default=0.0, description="Final LR as a fraction of the peak LR, in [0, 1].")


class CosineScheduler(_Part):
    """Cosine learning-rate decay (the default)."""

    lr_scheduler_type: Literal["cosine"] = Field(description='Discriminator: "cosine".')
    lr_scheduler_args: CosineSchedulerArgs = Field(default_factory=CosineSchedulerArgs)


class LinearScheduler(_Part):
    """Linear learning-rate decay."""

    lr_scheduler_type: Literal["linear"] = Field(description='Discriminator: "linear".')
    lr_scheduler_args: LinearSchedulerArgs = Field(default_factory=LinearSchedulerArgs)


LRScheduler = Annotated[CosineScheduler | LinearScheduler, Field(discriminator="lr_scheduler_type")]


class WandbConfig(_Part):
    """Weights & Biases logging. The API key is deliberately absent: it is a secret, passed to ``to_request``."""

    project_name: str | None = Field(default=None, description='W&B project (server default "together").')
    name: str | None = Field(default=None, description="W&B run name.")
    entity: str | None = Field(default=None, description="W&B entity (team or user).")
    base_url: str | None = Field(default=None, description="Base URL of a dedicated W&B instance.")


class EarlyStoppingConfig(_Part):
    """Stop when the eval loss stops improving; needs a validation file and enough evals."""

    enabled: bool = Field(default=False, description="Turn early stopping on.")
    patience: int | None = Field(
        default=None, description="Non-improving evals before stopping (>= 1; server 2)."
    )
    min_delta: float | None = Field(
        default=None, description="Smallest improvement that counts (>= 0; server 0)."
    )
    warmup_evals: int | None = Field(default=None, description="Evals ignored at the start (>= 0; server 1).")


class MultimodalParams(_Part):
    """Vision options; sent only for models whose limits say ``supports_vision``."""

    train_vision: bool = Field(default=False, description="Also train the vision encoder.")
