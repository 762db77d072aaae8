"""
``FineTuneConfig``: the whole fine-tuning job, validated before a cent is spent.

Two spellings give the same model: the flat keyword form of the ``together`` SDK
(``FineTuneConfig(training_file=..., model=..., lora_r=16, training_method="dpo", dpo_beta=0.1)``) and the
nested, wire-like form (``FineTuneConfig.model_validate({"training_method": {"method": "dpo", ...}})``).
Every problem is collected and raised once, as :class:`~airflow_provider_together.exceptions.TogetherConfigError`
naming each field and rule: pydantic's own type errors, the static rules (no network) and, in
:meth:`FineTuneConfig.validate_against`, the model's limits.

.. seealso:: https://docs.together.ai/reference/post-fine-tunes
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from airflow_provider_together.models._errors import pydantic_problems, raise_config_error
from airflow_provider_together.models._fold import FoldResult, collect, fold, merge
from airflow_provider_together.models._names import NESTED_TO_FLAT
from airflow_provider_together.models._parts import (
    CosineScheduler,
    EarlyStoppingConfig,
    LoRATraining,
    LRScheduler,
    MultimodalParams,
    SFTMethod,
    TrainingMethod,
    TrainingType,
    WandbConfig,
)
from airflow_provider_together.models._request import create_body, price_body
from airflow_provider_together.models._rules import limit_problems, resolve_lora, static_problems

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_together.models.responses import ModelLimits

log = logging.getLogger(__name__)

__all__ = ["FINGERPRINT_VERSION", "FineTuneConfig"]

#: Bumped only if the canonical form changes meaning; part of the hashed text.
FINGERPRINT_VERSION = 1
_PLACEHOLDER_FILE = "file-placeholder"
_COLLECTED = "airflow_provider_together.collected"
_OPTIONAL_STRINGS = (
    "validation_file",
    "model",
    "from_checkpoint",
    "from_hf_model",
    "hf_model_revision",
    "hf_output_repo_name",
    "suffix",
)


class FineTuneConfig(BaseModel):
    """
    A validated Together fine-tuning job config (the body of ``POST /fine-tunes`` minus secrets).

    Construct it with the SDK's flat keywords or the nested form; both raise
    :class:`~airflow_provider_together.exceptions.TogetherConfigError` (not pydantic's ``ValidationError``)
    listing every problem. Limits-dependent defaults (``lora_r``) stay unset until :meth:`validate_against`.

    :param training_file: id of the uploaded training file.
    :param model: base model; exactly one of ``model`` and ``from_checkpoint`` (``from_hf_model`` needs ``model``).

    The remaining options are documented on each field (``FineTuneConfig.model_fields``) and in docs/config.md.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, protected_namespaces=(), defer_build=True
    )

    training_file: str = Field(description="Id of the uploaded training file (file-...).")
    validation_file: str | None = Field(default=None, description="Id of the uploaded validation file.")
    model: str | None = Field(
        default=None, description="Base model, e.g. meta-llama/Meta-Llama-3.1-8B-Instruct-Reference."
    )
    from_checkpoint: str | None = Field(
        default=None, description="Resume from a job: JOB_ID or OUTPUT_MODEL_NAME, optionally ':STEP'."
    )
    from_hf_model: str | None = Field(
        default=None, description="Hugging Face repo to start from (needs model)."
    )
    hf_model_revision: str | None = Field(
        default=None, description="Commit or branch of from_hf_model (default main)."
    )
    hf_output_repo_name: str | None = Field(
        default=None, description="Hugging Face repo to push the result to."
    )
    suffix: str | None = Field(
        default=None,
        description="Up to 40 letters, digits, '-', '_' or '.', appended to the output model name.",
    )
    n_epochs: int = Field(default=1, description="Passes over the training data (>= 1).")
    n_checkpoints: int = Field(default=1, description="Checkpoints to save (>= 1).")
    n_evals: int = Field(
        default=0, description="Evaluations on the validation file (> 0 needs validation_file)."
    )
    batch_size: int | Literal["max"] = Field(
        default="max", description='Batch size, or "max" for the model maximum.'
    )
    learning_rate: float = Field(
        default=1e-5, description="Peak learning rate (> 0, within the model's bounds)."
    )
    warmup_ratio: float = Field(
        default=0.0, description="Fraction of steps spent in linear warm-up, in [0, 1]."
    )
    max_grad_norm: float = Field(
        default=1.0, description="Gradient clipping norm (>= 0; 0 disables clipping)."
    )
    weight_decay: float = Field(default=0.0, description="Weight decay (>= 0).")
    max_seq_length: int | None = Field(
        default=None, description="Max sequence length; default: the model maximum."
    )
    packing: bool = Field(default=True, description="Pack several short examples into one sequence.")
    random_seed: int | None = Field(default=None, description="Training seed (server default 42).")
    gradient_accumulation_steps: int | None = Field(
        default=None, description="Gradient accumulation steps (>= 1); default: the model's default."
    )
    lr_scheduler: LRScheduler = Field(
        default_factory=lambda: CosineScheduler(lr_scheduler_type="cosine"),
        description="Learning-rate schedule (flat: lr_scheduler_type, min_lr_ratio, scheduler_num_cycles).",
    )
    training_method: TrainingMethod = Field(
        default_factory=lambda: SFTMethod(method="sft"),
        description='SFT or DPO (flat: training_method="dpo", train_on_inputs, dpo_beta, rpo_alpha, simpo_gamma...).',
    )
    training_type: TrainingType | None = Field(
        default_factory=lambda: LoRATraining(type="Lora"),
        description="LoRA (default) or Full (flat: lora, lora_r, lora_alpha, lora_dropout, lora_trainable_modules). "
        "None only when resuming from_checkpoint without a choice: the job keeps its parent's type.",
    )
    wandb: WandbConfig = Field(
        default_factory=WandbConfig,
        description="W&B project, run name, entity, base URL (flat: wandb_project_name, wandb_name, ...).",
    )
    early_stopping: EarlyStoppingConfig = Field(
        default_factory=EarlyStoppingConfig,
        description="Early stopping (flat: early_stopping_enabled, early_stopping_patience, ...).",
    )
    multimodal_params: MultimodalParams = Field(
        default_factory=MultimodalParams, description="Vision options (flat: train_vision)."
    )

    if TYPE_CHECKING:
        # For type checkers only: the flat SDK keywords are not fields, and pydantic's mypy plugin would reject
        # them. At runtime pydantic's own __init__ must stay, because a custom one makes pydantic-core
        # validate twice (and lose the context parse() passes).
        def __init__(self, /, **data: Any) -> None: ...

    @field_validator(*_OPTIONAL_STRINGS, mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # A Jinja template for an optional value renders "" when the value is absent; that means "not set",
        # and must not reach the API as an empty file id (the SDK's validation_file="" quirk).
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="wrap")
    @classmethod
    def _fold_and_check(cls, data: Any, handler: ModelWrapValidatorHandler[Any], info: ValidationInfo) -> Any:
        if isinstance(data, FineTuneConfig):
            return data
        folded = fold(data)
        collected = (info.context or {}).get(_COLLECTED)
        if isinstance(collected, FoldResult):  # parse() with overrides: keep what collecting them found
            folded.problems[:0] = collected.problems
            folded.spelled = {**collected.spelled, **folded.spelled}
        problems = list(folded.problems)
        config: FineTuneConfig | None = None
        if folded.is_mapping:
            try:
                config = handler(folded.data)
            except ValidationError as exc:
                problems += pydantic_problems(exc)
                partial, skip = _best_effort(handler, folded.data, exc)
                if partial is not None:
                    problems += [p for p in static_problems(partial) if p[0].split(".")[0] not in skip]
                config = None
            else:
                problems += static_problems(config)
        if problems or config is None:
            raise_config_error(problems, folded.spelled)
        return config

    @classmethod
    def parse(
        cls, obj: FineTuneConfig | Mapping[str, Any] | None = None, /, **overrides: Any
    ) -> FineTuneConfig:
        """
        Return ``obj`` with ``overrides`` laid over it, validated; the operator calls this after rendering.

        Overrides win, option by option, in either spelling; a group whose variant changes is replaced
        (``lora=False`` over a LoRA config drops the LoRA group, and a LoRA option given with it is an error).

        :param obj: a config, a mapping in either spelling, or ``None``.
        :param overrides: options to set on top (flat SDK keywords or nested groups).
        :raises TogetherConfigError: listing every problem (field path and rule).
        """
        if not overrides:
            return obj if isinstance(obj, FineTuneConfig) else cls.model_validate(obj)
        base = (
            obj.model_dump(exclude_none=True)
            if isinstance(obj, FineTuneConfig)
            else ({} if obj is None else obj)
        )
        merged = merge(collect(base), collect(overrides))
        return cls.model_validate(merged.data, context={_COLLECTED: merged})

    def validate_against(self, limits: ModelLimits) -> FineTuneConfig:
        """
        Check the config against the model's limits and return a copy with limits-dependent defaults resolved.

        ``lora_r`` defaults to ``lora_training.default_rank`` (else ``max_rank``) and ``lora_alpha`` to
        ``2 * lora_r``; the choice is logged once, at INFO.

        :param limits: the answer of ``GET /fine-tunes/models/limits`` for the base model.
        :raises TogetherConfigError: listing every limit the config breaks.
        """
        resolved, note = resolve_lora(self, limits)
        config = self if resolved is None else self.model_copy(update={"training_type": resolved})
        problems = limit_problems(config, limits)
        if problems:
            # The config no longer knows how the user spelled each option; the flat name is the common one.
            raise_config_error(problems, NESTED_TO_FLAT)
        if note:
            log.info("%s.", note)
        return config

    def to_request(
        self, limits: ModelLimits, *, wandb_key: str | None = None, hf_api_token: str | None = None
    ) -> dict[str, Any]:
        """
        Build the exact ``POST /fine-tunes`` JSON body (validating against ``limits`` first).

        :param limits: the model's limits.
        :param wandb_key: W&B API key, sent as ``wandb_key``; never stored on the config.
        :param hf_api_token: Hugging Face token; never stored on the config.
        """
        config = self.validate_against(limits)
        return create_body(config, limits, wandb_key=wandb_key, hf_api_token=hf_api_token)

    def to_price_request(self, limits: ModelLimits) -> dict[str, Any]:
        """Build the ``POST /fine-tunes/estimate-price`` body matching :meth:`to_request`."""
        return price_body(self.validate_against(limits))

    def fingerprint(self) -> str:
        """
        A sha256 hex digest of this config, stable across processes, machines and Python versions.

        The hashed text is canonical JSON (sorted keys, no whitespace, ASCII, options equal to their default
        left out, so that spelling a default explicitly does not change the hash). Secrets are never part of
        a config, so never part of the hash. Call it on the config as parsed (before ``validate_against``)
        so the value does not depend on the model's limits.
        """
        canonical = json.dumps(
            {
                "fingerprint_version": FINGERPRINT_VERSION,
                "config": self.model_dump(mode="json", exclude_defaults=True),
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
        )
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _best_effort(
    handler: ModelWrapValidatorHandler[Any], data: dict[str, Any], exc: ValidationError
) -> tuple[FineTuneConfig | None, set[str]]:
    """
    Validate again without the options pydantic rejected, so the rules can still check all the others.

    All problems are reported in one go; without this, a type error would hide every rule violation until
    the next attempt. Rule problems about the dropped options are skipped (they were already reported).
    """
    skip = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
    retry = {key: value for key, value in data.items() if key not in skip}
    if "training_file" not in retry:
        retry["training_file"] = _PLACEHOLDER_FILE
        skip.add("training_file")
    try:
        return handler(retry), skip
    except ValidationError:
        return None, skip
