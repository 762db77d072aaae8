"""Every validation rule of FineTuneConfig: a failing case naming field and rule, and a passing neighbour."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from airflow_provider_together.exceptions import TogetherConfigError
from airflow_provider_together.models import FineTuneConfig, LoRATraining, ModelLimits

TF = "file-train"
VF = "file-valid"
BASE: dict[str, Any] = {"training_file": TF, "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"}


def _cfg(**overrides: Any) -> FineTuneConfig:
    kwargs = {**BASE, **overrides}
    return FineTuneConfig(**{k: v for k, v in kwargs.items() if v is not None})


def _problems(**overrides: Any) -> list[tuple[str, str]]:
    with pytest.raises(TogetherConfigError) as info:
        _cfg(**overrides)
    return info.value.problems


# (rule, bad options, good options, field reported, words of the message). Section 3.4 rule numbers first.
STATIC: list[tuple[str, dict[str, Any], dict[str, Any], str, str]] = [
    ("r1-model-and-checkpoint", {"from_checkpoint": "ft-1"}, {"model": None, "from_checkpoint": "ft-1"}, "from_checkpoint", "not both"),
    ("r2-no-starting-point", {"model": None}, {}, "model", "a starting point is required"),
    ("r3-checkpoint-and-hf", {"model": None, "from_checkpoint": "ft-1", "from_hf_model": "me/m"}, {"from_hf_model": "me/m"}, "from_hf_model", "either from_checkpoint or from_hf_model"),
    ("r4-hf-needs-model", {"model": None, "from_hf_model": "me/m"}, {"from_hf_model": "me/m"}, "model", "from_hf_model needs model"),
    ("r5-dropout-one", {"lora_dropout": 1.0}, {"lora_dropout": 0.99}, "lora_dropout", "must be in [0, 1)"),
    ("r5-dropout-negative", {"lora_dropout": -0.1}, {"lora_dropout": 0.0}, "lora_dropout", "must be in [0, 1)"),
    ("r9-warmup-high", {"warmup_ratio": 1.01}, {"warmup_ratio": 1.0}, "warmup_ratio", "between 0 and 1 inclusive"),
    ("r9-warmup-negative", {"warmup_ratio": -0.1}, {"warmup_ratio": 0.0}, "warmup_ratio", "between 0 and 1 inclusive"),
    ("r10-min-lr-ratio", {"min_lr_ratio": 1.5}, {"min_lr_ratio": 1.0}, "min_lr_ratio", "between 0 and 1 inclusive"),
    ("r10-min-lr-ratio-linear", {"lr_scheduler_type": "linear", "min_lr_ratio": -0.5}, {"lr_scheduler_type": "linear", "min_lr_ratio": 0.0}, "min_lr_ratio", "between 0 and 1"),
    ("r11-grad-norm", {"max_grad_norm": -1.0}, {"max_grad_norm": 0.0}, "max_grad_norm", "must be >= 0"),
    ("r12-weight-decay", {"weight_decay": -0.01}, {"weight_decay": 0.0}, "weight_decay", "must be >= 0"),
    ("r13-method", {"training_method": "ppo"}, {"training_method": "dpo"}, "training_method", "must be 'sft' or 'dpo'"),
    ("r14-train-on-inputs-dpo", {"training_method": "dpo", "train_on_inputs": True}, {"train_on_inputs": True}, "train_on_inputs", "only applies to SFT"),
    ("r15-dpo-beta-sft", {"dpo_beta": 0.1}, {"training_method": "dpo", "dpo_beta": 0.1}, "dpo_beta", "DPO option but training_method is 'sft'"),
    ("r15-normalise-sft", {"dpo_normalize_logratios_by_length": True}, {"dpo_normalize_logratios_by_length": False}, "dpo_normalize_logratios_by_length", "DPO option"),
    ("r16-rpo-sft", {"rpo_alpha": 0.5}, {"training_method": "dpo", "rpo_alpha": 0.5}, "rpo_alpha", "DPO option"),
    ("r16-rpo-negative", {"training_method": "dpo", "rpo_alpha": -0.5}, {"training_method": "dpo", "rpo_alpha": 0.0}, "rpo_alpha", "must be >= 0"),
    ("r16-simpo-sft", {"simpo_gamma": 0.5}, {"training_method": "dpo", "simpo_gamma": 0.5}, "simpo_gamma", "DPO option"),
    ("r16-simpo-negative", {"training_method": "dpo", "simpo_gamma": -1.0}, {"training_method": "dpo", "simpo_gamma": 0.0}, "simpo_gamma", "must be >= 0"),
    ("r17-cycles", {"scheduler_num_cycles": 0.0}, {"scheduler_num_cycles": 0.1}, "scheduler_num_cycles", "must be > 0 for the cosine"),
    ("r20-patience", {"validation_file": VF, "n_evals": 4, "early_stopping_enabled": True, "early_stopping_patience": 0}, {"validation_file": VF, "n_evals": 4, "early_stopping_enabled": True, "early_stopping_patience": 1}, "early_stopping_patience", "must be >= 1"),
    ("r20-warmup-evals", {"validation_file": VF, "n_evals": 4, "early_stopping_enabled": True, "early_stopping_warmup_evals": -1}, {"validation_file": VF, "n_evals": 4, "early_stopping_enabled": True, "early_stopping_warmup_evals": 0}, "early_stopping_warmup_evals", "must be >= 0"),
    ("r20-min-delta", {"validation_file": VF, "n_evals": 4, "early_stopping_enabled": True, "early_stopping_min_delta": -0.1}, {"validation_file": VF, "n_evals": 4, "early_stopping_enabled": True, "early_stopping_min_delta": 0.0}, "early_stopping_min_delta", "must be >= 0"),
    ("r20-needs-validation", {"early_stopping_enabled": True, "n_evals": 4}, {"early_stopping_enabled": True, "n_evals": 4, "validation_file": VF}, "validation_file", "early stopping needs a validation_file"),
    ("r20-enough-evals", {"validation_file": VF, "n_evals": 3, "early_stopping_enabled": True}, {"validation_file": VF, "n_evals": 4, "early_stopping_enabled": True}, "n_evals", "patience + warmup_evals + 1 = 4"),
    ("r20-off-ignores-knobs", {"validation_file": VF, "n_evals": 1, "early_stopping_enabled": True, "early_stopping_patience": 1, "early_stopping_warmup_evals": 0}, {"early_stopping_patience": 0}, "n_evals", "= 2 (got 1)"),
    ("lr-zero", {"learning_rate": 0}, {"learning_rate": 1e-9}, "learning_rate", "must be > 0"),
    ("lr-negative", {"learning_rate": -1e-5}, {"learning_rate": 1e-5}, "learning_rate", "must be > 0"),
    ("evals-need-validation", {"n_evals": 1}, {"n_evals": 1, "validation_file": VF}, "n_evals", "n_evals > 0 needs a validation_file"),
    ("lora-r-with-full", {"lora": False, "lora_r": 8}, {"lora": False, "lora_r": None}, "lora_r", "LoRA option but lora=False"),
    ("lora-alpha-with-full", {"lora": False, "lora_alpha": 8}, {"lora": True, "lora_alpha": 8}, "lora_alpha", "LoRA option but lora=False"),
    ("lora-dropout-with-full", {"lora": False, "lora_dropout": 0.1}, {"lora": False, "lora_dropout": 0.0}, "lora_dropout", "LoRA option but lora=False"),
    ("lora-modules-with-full", {"lora": False, "lora_trainable_modules": "q_proj"}, {"lora": False, "lora_trainable_modules": "all-linear"}, "lora_trainable_modules", "LoRA option"),
    ("suffix-length", {"suffix": "a" * 41}, {"suffix": "a" * 40}, "suffix", "at most 40 characters (got 41)"),
    ("suffix-chars", {"suffix": "my/run"}, {"suffix": "My-run_2.0"}, "suffix", "only letters, digits, '-', '_' and '.'"),
    ("suffix-unicode", {"suffix": "run-é"}, {"suffix": "run-e"}, "suffix", "only letters, digits"),
    ("epochs", {"n_epochs": 0}, {"n_epochs": 1}, "n_epochs", "must be >= 1"),
    ("checkpoints", {"n_checkpoints": 0}, {"n_checkpoints": 1}, "n_checkpoints", "must be >= 1"),
    ("evals-negative", {"n_evals": -1}, {"n_evals": 0}, "n_evals", "must be >= 0"),
    ("batch-size", {"batch_size": 0}, {"batch_size": "max"}, "batch_size", 'must be >= 1 or "max"'),
    ("seq-len", {"max_seq_length": 0}, {"max_seq_length": 1}, "max_seq_length", "must be >= 1"),
    ("grad-accum", {"gradient_accumulation_steps": 0}, {"gradient_accumulation_steps": 1}, "gradient_accumulation_steps", "must be >= 1"),
    ("lora-r", {"lora_r": 0}, {"lora_r": 1}, "lora_r", "must be >= 1"),
    ("lora-alpha", {"lora_alpha": 0}, {"lora_alpha": 1}, "lora_alpha", "must be >= 1"),
    ("modules-empty", {"lora_trainable_modules": " , "}, {"lora_trainable_modules": "q_proj, v_proj"}, "lora_trainable_modules", "at least one module"),
    ("modules-all-linear-mixed", {"lora_trainable_modules": "all-linear,q_proj"}, {"lora_trainable_modules": "all-linear"}, "lora_trainable_modules", "use it alone"),
    ("checkpoint-format", {"model": None, "from_checkpoint": "ft-1:last"}, {"model": None, "from_checkpoint": "ft-1:12"}, "from_checkpoint", "optionally followed by ':STEP'"),
    ("hf-revision-alone", {"hf_model_revision": "main"}, {"hf_model_revision": "main", "from_hf_model": "me/m"}, "hf_model_revision", "only applies with from_hf_model"),
    ("dpo-beta-positive", {"training_method": "dpo", "dpo_beta": 0.0}, {"training_method": "dpo", "dpo_beta": 0.01}, "dpo_beta", "must be > 0"),
    ("cycles-with-linear", {"lr_scheduler_type": "linear", "scheduler_num_cycles": 1.0}, {"lr_scheduler_type": "cosine", "scheduler_num_cycles": 1.0}, "scheduler_num_cycles", "only applies to the cosine scheduler"),
    ("scheduler-type", {"lr_scheduler_type": "step"}, {"lr_scheduler_type": "LINEAR"}, "lr_scheduler_type", "must be 'cosine' or 'linear'"),
    ("lora-flag", {"lora": "maybe"}, {"lora": "false"}, "lora", "must be true (LoRA) or false"),
    ("lora-contradiction", {"lora": False, "training_type": {"type": "Lora"}}, {"lora": True, "training_type": {"type": "Lora"}}, "lora", "contradicts training_type.type='Lora'"),
    ("training-type-tag", {"training_type": {"type": "QLoRA"}}, {"training_type": {"type": "full"}}, "training_type.type", "must be 'Lora' or 'Full'"),
    ("given-twice", {"dpo_beta": 0.2, "training_method": {"method": "dpo", "dpo_beta": 0.1}}, {"dpo_beta": 0.1, "training_method": {"method": "dpo", "dpo_beta": 0.1}}, "dpo_beta", "given twice"),
    ("reference-free-derived", {"training_method": "dpo", "dpo_reference_free": True}, {"training_method": "dpo", "dpo_reference_free": True, "simpo_gamma": 0.3}, "dpo_reference_free", "derived from simpo_gamma"),
    ("secret-wandb", {"wandb_key": "wk-123"}, {"wandb_project_name": "p"}, "wandb_key", "is a secret and not a config option"),
    ("secret-wandb-sdk-name", {"wandb_api_key": "wk-123"}, {}, "wandb_api_key", "is a secret"),
    ("secret-hf", {"hf_api_token": "hf-123"}, {}, "hf_api_token", "is a secret"),
    ("unknown-option", {"n_epoch": 3}, {"n_epochs": 3}, "n_epoch", "unknown option; did you mean 'n_epochs'?"),
    ("unknown-nested-option", {"wandb": {"project": "p"}}, {"wandb": {"project_name": "p"}}, "wandb.project", "unknown option; did you mean 'project_name'?"),
    ("type-error", {"n_epochs": "three"}, {"n_epochs": "3"}, "n_epochs", "valid integer"),
    ("not-finite", {"learning_rate": math.nan}, {"learning_rate": 3e-4}, "learning_rate", "finite number"),
    ("training-file-blank", {"training_file": " "}, {"training_file": "file-x"}, "training_file", "is required"),
    ("batch-size-word", {"batch_size": "min"}, {"batch_size": "16"}, "batch_size", "valid integer, unable to parse string as an integer, or input should be 'max'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "good", "field", "words"), [r[1:] for r in STATIC], ids=[r[0] for r in STATIC]
)
def test_static_rule(bad: dict[str, Any], good: dict[str, Any], field: str, words: str) -> None:
    problems = _problems(**bad)
    assert any(f == field and words in message for f, message in problems), problems
    _cfg(**good)  # the neighbouring valid value passes


def test_every_problem_in_one_exception() -> None:
    problems = _problems(
        model=None,
        learning_rate=0,
        warmup_ratio=2,
        suffix="x" * 50,
        dpo_beta=0.1,
        n_epochs="many",
        lora_dropout=1,
        wandb_key="wk-never-shown",
    )
    fields = [field for field, _ in problems]
    assert set(fields) >= {
        "model",
        "learning_rate",
        "warmup_ratio",
        "suffix",
        "dpo_beta",
        "n_epochs",
        "lora_dropout",
        "wandb_key",
    }


def test_error_message_lists_fields_and_never_the_rejected_values() -> None:
    with pytest.raises(TogetherConfigError) as info:
        _cfg(wandb_key="wk-SECRET-1", n_epochs="hf-SECRET-2", suffix="SECRET 3")
    text = str(info.value)
    assert "Invalid fine-tuning config: 3 problem(s)" in text
    assert "  - wandb_key: is a secret" in text
    assert "SECRET" not in text
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_nested_spelling_reports_nested_paths() -> None:
    with pytest.raises(TogetherConfigError) as info:
        FineTuneConfig.model_validate(
            {
                **BASE,
                "training_type": {"type": "Lora", "lora_dropout": 2},
                "lr_scheduler": {"lr_scheduler_type": "cosine", "lr_scheduler_args": {"num_cycles": -1}},
                "training_method": {"method": "dpo", "rpo_alpha": "x"},
            }
        )
    assert set(info.value.problems) == {
        ("training_type.lora_dropout", "must be in [0, 1) (got 2.0)"),
        ("lr_scheduler.lr_scheduler_args.num_cycles", "must be > 0 for the cosine scheduler (got -1.0)"),
        ("training_method.rpo_alpha", "Input should be a valid number, unable to parse string as a number"),
    }


def test_type_error_does_not_hide_rule_problems_elsewhere() -> None:
    problems = _problems(n_checkpoints="lots", warmup_ratio=3, training_file=None)
    assert (
        "n_checkpoints",
        "Input should be a valid integer, unable to parse string as an integer",
    ) in problems
    assert ("warmup_ratio", "must be between 0 and 1 inclusive (got 3.0)") in problems
    assert ("training_file", "is required") in problems


def test_not_a_mapping() -> None:
    with pytest.raises(TogetherConfigError) as info:
        FineTuneConfig.parse(["training_file", TF])  # type: ignore[arg-type]
    assert info.value.problems == [("", "a fine-tuning config must be a mapping of options, got list")]


# --- rules that need the model's limits --------------------------------------------------------------------

LIMITED: list[tuple[str, dict[str, Any], dict[str, Any], str, str]] = [
    ("r8-sft-max", {"batch_size": 129}, {"batch_size": 128}, "batch_size", "must be <= 128, the max for SFT LoRA training"),
    ("r8-dpo-max", {"training_method": "dpo", "batch_size": 65}, {"training_method": "dpo", "batch_size": 64}, "batch_size", "must be <= 64, the max for DPO LoRA"),
    ("r8-min", {"batch_size": 7}, {"batch_size": 8}, "batch_size", "must be >= 8, the min for LoRA training"),
    ("r8-full-sft-max", {"lora": False, "batch_size": 97}, {"lora": False, "batch_size": 96}, "batch_size", "must be <= 96, the max for SFT full"),
    ("r8-full-dpo-max", {"lora": False, "training_method": "dpo", "batch_size": 49}, {"lora": False, "training_method": "dpo", "batch_size": 48}, "batch_size", "the max for DPO full"),
    ("r18-seq-min", {"max_seq_length": 511}, {"max_seq_length": 512}, "max_seq_length", "must be >= 512"),
    ("r18-seq-max-sft", {"max_seq_length": 131073}, {"max_seq_length": 131072}, "max_seq_length", "must be <= 131072 for SFT"),
    ("r18-seq-max-dpo", {"training_method": "dpo", "max_seq_length": 65537}, {"training_method": "dpo", "max_seq_length": 65536}, "max_seq_length", "must be <= 65536 for DPO"),
    ("r19-vision", {"train_vision": True}, {"train_vision": False}, "train_vision", "not a vision model"),
    ("rank", {"lora_r": 65}, {"lora_r": 64}, "lora_r", "must be <= 64, the max rank (got 65)"),
    ("modules", {"lora_trainable_modules": "q_proj,w_gate"}, {"lora_trainable_modules": "q_proj, v_proj"}, "lora_trainable_modules", "unknown module(s) w_gate; allowed: all-linear or"),
    ("lr-max", {"learning_rate": 1.5}, {"learning_rate": 1.0}, "learning_rate", "must be within [1e-06, 1.0]"),
    ("lr-min", {"learning_rate": 1e-7}, {"learning_rate": 1e-6}, "learning_rate", "must be within [1e-06, 1.0]"),
    ("epochs-max", {"n_epochs": 21}, {"n_epochs": 20}, "n_epochs", "must be <= 20"),
    ("evals-max", {"n_evals": 11, "validation_file": VF}, {"n_evals": 10, "validation_file": VF}, "n_evals", "must be <= 10"),
    ("checkpoints-max", {"n_checkpoints": 11}, {"n_checkpoints": 10}, "n_checkpoints", "must be <= 10"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "good", "field", "words"), [r[1:] for r in LIMITED], ids=[r[0] for r in LIMITED]
)
def test_limit_rule(
    bad: dict[str, Any], good: dict[str, Any], field: str, words: str, text_limits: ModelLimits
) -> None:
    config = _cfg(**bad)  # statically fine
    with pytest.raises(TogetherConfigError) as info:
        config.validate_against(text_limits)
    assert any(f == field and words in message for f, message in info.value.problems), info.value.problems
    _cfg(**good).validate_against(text_limits)


def test_r6_lora_needs_lora_limits(limits_payload: Any) -> None:
    payload = limits_payload("text")
    payload["lora_training"] = None
    with pytest.raises(TogetherConfigError) as info:
        _cfg().validate_against(ModelLimits.model_validate(payload))
    assert info.value.problems == [
        ("lora", "LoRA adapters are not supported for meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
    ]
    _cfg(lora=False).validate_against(ModelLimits.model_validate(payload))


@pytest.mark.parametrize(
    "patch",
    [
        {"full_training": None},
        {
            "supports_full_training": False,
            "full_training": {"max_batch_size": 0, "max_batch_size_dpo": 0, "min_batch_size": 0},
        },
    ],
    ids=["null-limits", "zero-limits"],
)
def test_r7_full_training_must_be_supported(patch: dict[str, Any], limits_payload: Any) -> None:
    limits = ModelLimits.model_validate({**limits_payload("text"), **patch})
    with pytest.raises(TogetherConfigError) as info:
        _cfg(lora=False).validate_against(limits)
    assert info.value.problems[0][0] == "lora"
    assert "full training (lora=False) is not supported" in info.value.problems[0][1]
    _cfg(lora=True).validate_against(limits)


def test_limit_problems_reported_together(text_limits: ModelLimits) -> None:
    config = _cfg(
        batch_size=500, lora_r=100, n_epochs=99, learning_rate=5.0, train_vision=True, max_seq_length=10
    )
    with pytest.raises(TogetherConfigError) as info:
        config.validate_against(text_limits)
    assert [f for f, _ in info.value.problems] == [
        "lora_r",
        "batch_size",
        "train_vision",
        "learning_rate",
        "n_epochs",
        "max_seq_length",
    ]


def test_absent_limits_are_skipped_not_guessed() -> None:
    sparse = ModelLimits.model_validate({"model_name": "m", "lora_training": {"max_rank": 8}})
    resolved = _cfg(n_epochs=500, batch_size=1000, learning_rate=3.0).validate_against(sparse)
    assert isinstance(resolved.training_type, LoRATraining)
    assert resolved.training_type.lora_r == 8  # max_rank: no default_rank in these limits


def test_resume_without_choice_inherits_type_and_skips_batch_limits(text_limits: ModelLimits) -> None:
    config = _cfg(model=None, from_checkpoint="ft-abc:5", batch_size=1000)
    assert config.training_type is None
    body = config.to_request(text_limits)
    assert "training_type" not in body
    assert config.to_price_request(text_limits)["training_type"] is None


def test_limits_payload_is_not_mutated(limits_payload: Any) -> None:
    payload = limits_payload("vision")
    before = copy.deepcopy(payload)
    _cfg(train_vision=True).to_request(ModelLimits.model_validate(payload))
    assert payload == before
