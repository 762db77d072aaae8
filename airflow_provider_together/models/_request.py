"""
Build the JSON bodies of ``POST /fine-tunes`` and ``POST /fine-tunes/estimate-price`` from a resolved config.

This is the one place that serialises a config for the wire. The bodies match what the v3 ``together`` SDK
(3.1.1) sends for the same options, except for these deliberate fixes of documented SDK quirks:

* ``validation_file`` is omitted when there is none (the SDK sends ``""``).
* ``training_type`` is always sent, LoRA unless ``lora=False`` (the SDK omits it when ``lora`` is not given
  and lets the server pick). Sending it makes the batch-size, rank and module checks meaningful and the
  request self-describing. Exception: when resuming ``from_checkpoint`` with no choice made, it is omitted,
  so the server keeps the parent job's type, as the SDK does.
* No silent ``learning_rate`` 0 -> 1e-5 substitution: the config rejects a learning rate <= 0 instead.
* Price request: ``model`` is omitted when resuming from a checkpoint (the SDK sends ``""``), and unset DPO
  parameters are omitted (the SDK sends ``0`` for an unset ``dpo_beta``, which is not what the job will use).

Secrets (``wandb_key``, ``hf_api_token``) come in as arguments and go only into the returned body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_together.models._parts import SFTMethod

if TYPE_CHECKING:
    from airflow_provider_together.models.config import FineTuneConfig
    from airflow_provider_together.models.responses import ModelLimits

__all__ = ["create_body", "price_body"]


def _method_body(cfg: FineTuneConfig) -> dict[str, Any]:
    method = cfg.training_method
    if isinstance(method, SFTMethod):
        return method.model_dump(mode="json")
    body: dict[str, Any] = method.model_dump(mode="json", exclude_none=True)
    # SimPO (simpo_gamma > 0) is reference-free and length-normalised by definition, as in the SDK.
    body["dpo_reference_free"] = method.reference_free
    if method.reference_free:
        body["dpo_normalize_logratios_by_length"] = True
    return body


def _type_body(cfg: FineTuneConfig) -> dict[str, Any] | None:
    if cfg.training_type is None:
        return None
    return cfg.training_type.model_dump(mode="json", exclude_none=True)


def _optional(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def create_body(
    cfg: FineTuneConfig, limits: ModelLimits, *, wandb_key: str | None, hf_api_token: str | None
) -> dict[str, Any]:
    """
    The ``POST /fine-tunes`` body for an already resolved config (see ``FineTuneConfig.to_request``).

    :param cfg: a config returned by ``validate_against``.
    :param limits: the model's limits; decide whether ``multimodal_params`` is sent.
    :param wandb_key: the W&B API key, or ``None``.
    :param hf_api_token: the Hugging Face token, or ``None``.
    """
    stop = cfg.early_stopping
    body: dict[str, Any] = {
        "training_file": cfg.training_file,
        "packing": cfg.packing,
        "n_epochs": cfg.n_epochs,
        "learning_rate": cfg.learning_rate,
        "lr_scheduler": cfg.lr_scheduler.model_dump(mode="json"),
        "warmup_ratio": cfg.warmup_ratio,
        "max_grad_norm": cfg.max_grad_norm,
        "weight_decay": cfg.weight_decay,
        "n_checkpoints": cfg.n_checkpoints,
        "n_evals": cfg.n_evals,
        "batch_size": cfg.batch_size,
        "early_stopping_enabled": stop.enabled,
        "training_method": _method_body(cfg),
    }
    body.update(
        _optional(
            validation_file=cfg.validation_file,
            model=cfg.model,
            max_seq_length=cfg.max_seq_length,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            suffix=cfg.suffix,
            wandb_key=wandb_key,
            wandb_base_url=cfg.wandb.base_url,
            wandb_project_name=cfg.wandb.project_name,
            wandb_name=cfg.wandb.name,
            wandb_entity=cfg.wandb.entity,
            random_seed=cfg.random_seed,
            early_stopping_patience=stop.patience,
            early_stopping_min_delta=stop.min_delta,
            early_stopping_warmup_evals=stop.warmup_evals,
            training_type=_type_body(cfg),
            from_checkpoint=cfg.from_checkpoint,
            from_hf_model=cfg.from_hf_model,
            hf_model_revision=cfg.hf_model_revision,
            hf_api_token=hf_api_token,
            hf_output_repo_name=cfg.hf_output_repo_name,
        )
    )
    if limits.supports_vision:
        # The SDK always sends it for vision models (train_vision false included) and never for others.
        body["multimodal_params"] = cfg.multimodal_params.model_dump(mode="json")
    return body


def price_body(cfg: FineTuneConfig) -> dict[str, Any]:
    """The ``POST /fine-tunes/estimate-price`` body for an already resolved config."""
    body: dict[str, Any] = {
        "training_file": cfg.training_file,
        "n_epochs": cfg.n_epochs,
        "n_evals": cfg.n_evals,
        "training_method": _method_body(cfg),
        # null means "the server's default": LoRA, or the parent job's type when resuming.
        "training_type": _type_body(cfg),
    }
    body.update(
        _optional(from_checkpoint=cfg.from_checkpoint, validation_file=cfg.validation_file, model=cfg.model)
    )
    return body
