"""FineTuneConfig behaviour: both spellings, resolution against limits, request bodies, secrets, parse()."""

from __future__ import annotations

import logging
from typing import Any

import pydantic
import pytest

from airflow_provider_together.exceptions import TogetherConfigError
from airflow_provider_together.models import (
    DPOMethod,
    FineTuneConfig,
    FullTraining,
    LinearScheduler,
    LoRATraining,
    ModelLimits,
    SFTMethod,
)

TF = "file-train"
VF = "file-valid"
MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"

# (flat SDK keywords, the nested wire-like form of the same config)
SPELLINGS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("minimal", {}, {}),
    (
        "lora-dpo-cosine",
        {
            "lora": True,
            "lora_r": 16,
            "lora_alpha": 32,
            "lora_dropout": 0.05,
            "lora_trainable_modules": "q_proj,v_proj",
            "training_method": "dpo",
            "dpo_beta": 0.1,
            "rpo_alpha": 0.2,
            "simpo_gamma": 0.0,
            "dpo_normalize_logratios_by_length": True,
            "lr_scheduler_type": "cosine",
            "min_lr_ratio": 0.1,
            "scheduler_num_cycles": 1.5,
        },
        {
            "training_type": {
                "type": "Lora",
                "lora_r": 16,
                "lora_alpha": 32,
                "lora_dropout": 0.05,
                "lora_trainable_modules": "q_proj,v_proj",
            },
            "training_method": {
                "method": "dpo",
                "dpo_beta": 0.1,
                "rpo_alpha": 0.2,
                "simpo_gamma": 0.0,
                "dpo_normalize_logratios_by_length": True,
            },
            "lr_scheduler": {
                "lr_scheduler_type": "cosine",
                "lr_scheduler_args": {"min_lr_ratio": 0.1, "num_cycles": 1.5},
            },
        },
    ),
    (
        "full-sft-linear-wandb-early-stop-vision",
        {
            "lora": False,
            "train_on_inputs": False,
            "lr_scheduler_type": "linear",
            "min_lr_ratio": 0.2,
            "wandb_project_name": "p",
            "wandb_name": "n",
            "wandb_entity": "e",
            "wandb_base_url": "https://wandb.example",
            "validation_file": VF,
            "n_evals": 6,
            "early_stopping_enabled": True,
            "early_stopping_patience": 3,
            "early_stopping_min_delta": 0.01,
            "early_stopping_warmup_evals": 2,
            "train_vision": True,
        },
        {
            "training_type": {"type": "Full"},
            "training_method": {"method": "sft", "train_on_inputs": False},
            "lr_scheduler": {"lr_scheduler_type": "linear", "lr_scheduler_args": {"min_lr_ratio": 0.2}},
            "wandb": {"project_name": "p", "name": "n", "entity": "e", "base_url": "https://wandb.example"},
            "validation_file": VF,
            "n_evals": 6,
            "early_stopping": {"enabled": True, "patience": 3, "min_delta": 0.01, "warmup_evals": 2},
            "multimodal_params": {"train_vision": True},
        },
    ),
    (
        "resume",
        {"model": None, "from_checkpoint": "ft-1:3"},
        {"model": None, "from_checkpoint": "ft-1:3", "training_type": None},
    ),
]


def _flat(**extra: Any) -> dict[str, Any]:
    return {k: v for k, v in {"training_file": TF, "model": MODEL, **extra}.items() if v is not None}


@pytest.mark.parametrize(("flat", "nested"), [s[1:] for s in SPELLINGS], ids=[s[0] for s in SPELLINGS])
def test_flat_and_nested_spellings_give_the_same_model(flat: dict[str, Any], nested: dict[str, Any]) -> None:
    from_flat = FineTuneConfig(**_flat(**flat))
    from_nested = FineTuneConfig.model_validate(_flat(**nested))
    assert from_flat == from_nested
    assert from_flat.fingerprint() == from_nested.fingerprint()
    # Flat keywords also work through model_validate, nested ones through the constructor.
    assert FineTuneConfig.model_validate(_flat(**flat)) == FineTuneConfig(**_flat(**nested))


def test_mixed_spelling_and_model_instances() -> None:
    mixed = FineTuneConfig(
        training_file=TF,
        model=MODEL,
        training_method=DPOMethod(method="dpo", dpo_beta=0.3),
        lora_r=8,
        lr_scheduler=LinearScheduler(lr_scheduler_type="linear"),
    )
    assert mixed.training_method == DPOMethod(method="dpo", dpo_beta=0.3)
    assert mixed.training_type == LoRATraining(type="Lora", lora_r=8)
    assert mixed.lr_scheduler.lr_scheduler_type == "linear"


def test_defaults_match_the_sdk() -> None:
    config = FineTuneConfig(training_file=TF, model=MODEL)
    assert config.training_method == SFTMethod(method="sft", train_on_inputs="auto")
    assert config.training_type == LoRATraining(type="Lora")
    assert (config.n_epochs, config.n_checkpoints, config.n_evals, config.batch_size) == (1, 1, 0, "max")
    assert (config.learning_rate, config.warmup_ratio, config.max_grad_norm, config.weight_decay) == (
        1e-5,
        0.0,
        1.0,
        0.0,
    )
    assert config.packing is True
    assert config.lr_scheduler.model_dump() == {
        "lr_scheduler_type": "cosine",
        "lr_scheduler_args": {"min_lr_ratio": 0.0, "num_cycles": 0.5},
    }


def test_rendered_template_strings_are_coerced() -> None:
    config = FineTuneConfig(
        training_file=TF,
        model=MODEL,
        n_epochs="3",
        learning_rate="2e-4",
        lora="false",
        batch_size="16",
        validation_file="",
        suffix=" ",
        train_on_inputs="auto",
    )
    assert (config.n_epochs, config.learning_rate, config.batch_size) == (3, 2e-4, 16)
    assert config.training_type == FullTraining(type="Full")
    assert config.validation_file is None  # an absent template value renders as "": it means "not set"
    assert config.suffix is None


def test_nested_tags_are_case_insensitive_and_default() -> None:
    config = FineTuneConfig.model_validate(
        {
            "training_file": TF,
            "model": MODEL,
            "training_type": {"type": "LORA", "lora_r": 4},
            "training_method": {"method": "DPO"},
            "lr_scheduler": {"lr_scheduler_args": {"min_lr_ratio": 0.5}},
        }
    )
    assert config.training_type == LoRATraining(type="Lora", lora_r=4)
    assert config.training_method == DPOMethod(method="dpo")
    assert config.lr_scheduler.lr_scheduler_type == "cosine"


def test_config_is_frozen() -> None:
    config = FineTuneConfig(training_file=TF, model=MODEL)
    with pytest.raises(pydantic.ValidationError):
        config.n_epochs = 0  # type: ignore[misc]


def test_parse_accepts_config_or_mapping() -> None:
    config = FineTuneConfig(training_file=TF, model=MODEL)
    assert FineTuneConfig.parse(config) is config
    assert FineTuneConfig.parse({"training_file": TF, "model": MODEL}) == config
    with pytest.raises(TogetherConfigError):
        FineTuneConfig.parse({"training_file": TF})


def test_validate_against_resolves_lora_defaults_and_logs_once(
    text_limits: ModelLimits, caplog: pytest.LogCaptureFixture
) -> None:
    config = FineTuneConfig(training_file=TF, model=MODEL)
    with caplog.at_level(logging.INFO, logger="airflow_provider_together.models"):
        resolved = config.validate_against(text_limits)
        again = resolved.validate_against(text_limits)
    assert resolved.training_type == LoRATraining(type="Lora", lora_r=64, lora_alpha=128)
    assert again == resolved
    assert config.training_type == LoRATraining(type="Lora")  # the original is untouched
    messages = [
        r.getMessage() for r in caplog.records if r.name.startswith("airflow_provider_together.models")
    ]
    assert messages == [
        "Resolved LoRA defaults for meta-llama/Meta-Llama-3.1-8B-Instruct-Reference: "
        "lora_r=64 (the model's default_rank), lora_alpha=128 (2 x lora_r)."
    ]


def test_default_rank_falls_back_to_max_rank_and_alpha_follows_explicit_rank(limits_payload: Any) -> None:
    payload = limits_payload("text")
    del payload["lora_training"]["default_rank"]
    resolved = FineTuneConfig(training_file=TF, model=MODEL).validate_against(
        ModelLimits.model_validate(payload)
    )
    assert resolved.training_type == LoRATraining(type="Lora", lora_r=64, lora_alpha=128)
    explicit = FineTuneConfig(training_file=TF, model=MODEL, lora_r=8).validate_against(
        ModelLimits.model_validate(payload)
    )
    assert explicit.training_type == LoRATraining(type="Lora", lora_r=8, lora_alpha=16)
    kept = FineTuneConfig(training_file=TF, model=MODEL, lora_alpha=5).validate_against(
        ModelLimits.model_validate(payload)
    )
    assert kept.training_type == LoRATraining(type="Lora", lora_r=64, lora_alpha=5)


def test_request_body_reads_back_as_the_resolved_config(limits_payload: Any) -> None:
    limits = ModelLimits.model_validate(limits_payload("vision"))
    config = FineTuneConfig(
        **_flat(
            validation_file=VF, n_evals=4, early_stopping_enabled=True, training_method="dpo", simpo_gamma=0.4
        )
    )
    body = config.to_request(limits, wandb_key="wk-secret")
    body.pop("wandb_key")
    assert FineTuneConfig.model_validate(body) == config.validate_against(limits)


def test_simpo_turns_on_reference_free_and_normalisation(text_limits: ModelLimits) -> None:
    body = FineTuneConfig(**_flat(training_method="dpo", simpo_gamma=0.5)).to_request(text_limits)
    assert body["training_method"] == {
        "method": "dpo",
        "simpo_gamma": 0.5,
        "dpo_reference_free": True,
        "dpo_normalize_logratios_by_length": True,
    }


def test_multimodal_params_only_for_vision_models(text_limits: ModelLimits, limits_payload: Any) -> None:
    config = FineTuneConfig(**_flat())
    assert "multimodal_params" not in config.to_request(text_limits)
    vision = ModelLimits.model_validate(limits_payload("vision"))
    assert config.to_request(vision)["multimodal_params"] == {"train_vision": False}


def test_price_request_matches_the_create_request(text_limits: ModelLimits) -> None:
    config = FineTuneConfig(
        **_flat(validation_file=VF, n_evals=2, n_epochs=3, lora=False, training_method="dpo")
    )
    body = config.to_request(text_limits)
    price = config.to_price_request(text_limits)
    assert price == {
        "training_file": TF,
        "validation_file": VF,
        "model": MODEL,
        "n_epochs": 3,
        "n_evals": 2,
        "training_type": {"type": "Full"},
        "training_method": body["training_method"],
    }


def test_secrets_stay_out_of_the_config(text_limits: ModelLimits) -> None:
    config = FineTuneConfig(**_flat(wandb_project_name="p", from_hf_model="me/m"))
    body = config.to_request(text_limits, wandb_key="wk-SECRET", hf_api_token="hf-SECRET")
    assert (body["wandb_key"], body["hf_api_token"]) == ("wk-SECRET", "hf-SECRET")
    for text in (repr(config), str(config), config.model_dump_json(), str(config.model_json_schema())):
        assert "SECRET" not in text
    assert "wandb_key" not in config.to_request(text_limits)
    assert "hf_api_token" not in config.to_request(text_limits)


def test_json_schema_documents_every_field() -> None:
    schema = FineTuneConfig.model_json_schema()
    assert schema["additionalProperties"] is False
    assert all("description" in prop for prop in schema["properties"].values())


def test_parse_lays_overrides_over_a_config() -> None:
    base = FineTuneConfig(
        training_file=TF, model=MODEL, lora_r=16, training_method="dpo", dpo_beta=0.1, min_lr_ratio=0.1
    )
    full = FineTuneConfig.parse(base, lora=False, n_epochs=2)
    assert full.training_type == FullTraining(type="Full")  # the LoRA group is replaced, not merged
    assert full.n_epochs == 2
    assert full.training_method == DPOMethod(method="dpo", dpo_beta=0.1)
    tweaked = FineTuneConfig.parse(base, dpo_beta=0.3, scheduler_num_cycles=2.0)
    assert tweaked.training_method == DPOMethod(method="dpo", dpo_beta=0.3)
    assert tweaked.lr_scheduler.lr_scheduler_args.model_dump() == {"min_lr_ratio": 0.1, "num_cycles": 2.0}
    assert tweaked.training_type == LoRATraining(type="Lora", lora_r=16)
    sft = FineTuneConfig.parse(base, training_method="sft")
    assert sft.training_method == SFTMethod(method="sft")


def test_parse_overrides_on_a_mapping_or_nothing() -> None:
    flat = {"training_file": TF, "model": MODEL, "lora_r": 8}
    assert FineTuneConfig.parse(None, **flat) == FineTuneConfig(**flat)
    assert FineTuneConfig.parse({"training_file": TF}, model=MODEL, lora_r=8) == FineTuneConfig(**flat)
    resumed = FineTuneConfig.parse({"training_file": TF, "from_checkpoint": "ft-1"}, n_epochs=2)
    assert resumed.training_type is None


@pytest.mark.parametrize(
    ("base", "overrides", "field", "words"),
    [
        ({}, {"dpo_beta": 0.1}, "dpo_beta", "DPO option but training_method is 'sft'"),
        ({"lora": False}, {"lora_r": 8}, "lora_r", "LoRA option but lora=False"),
        ({}, {"wandb_key": "wk-1"}, "wandb_key", "is a secret"),
        ({"training_method": "dpo"}, {"train_on_inputs": True}, "train_on_inputs", "only applies to SFT"),
        ({}, {"n_epochs": 0, "lora": "sometimes"}, "lora", "must be true (LoRA) or false"),
    ],
    ids=["dpo-option-on-sft", "lora-option-on-full", "secret", "train-on-inputs-on-dpo", "bad-flag"],
)
def test_parse_overrides_are_validated_with_the_base(
    base: dict[str, Any], overrides: dict[str, Any], field: str, words: str
) -> None:
    config = FineTuneConfig(**_flat(**base))
    with pytest.raises(TogetherConfigError) as info:
        FineTuneConfig.parse(config, **overrides)
    assert any(f == field and words in message for f, message in info.value.problems), info.value.problems
