"""
Our request bodies against the ones the official ``together`` SDK 3.1.1 puts on the wire.

For each config of the table, the real SDK ``client.fine_tuning.create(..., model_limits=...)`` runs against an
``httpx.MockTransport`` (the HTTP boundary): it sends ``POST /v1/fine-tunes/estimate-price`` and then
``POST /v1/fine-tunes``, and we capture both JSON bodies. Ours come from ``FineTuneConfig.to_price_request`` and
``to_request`` for the same keywords. The bodies are compared as canonical JSON text (so ``0`` vs ``0.0``
or a missing vs a null key would show), after normalising away exactly these deliberate differences:

D1  ``validation_file``: the SDK sends ``""`` when there is none; we omit the key (an empty file id is
    meaningless and the API reference lists it as an SDK quirk).
D2  ``training_type`` when ``lora`` is not given: the SDK omits it and lets the server choose; we resolve
    LoRA by default and send it, so that batch size, rank and modules are checked before submitting. The
    table therefore gives the SDK ``lora=True`` in that case. Resuming ``from_checkpoint`` without a choice is
    not a difference: both omit it so that the parent job's type is kept.
P1  price request ``model``: the SDK sends ``""`` when resuming from a checkpoint; we omit the key.
P2  price request DPO parameters the user did not set: the SDK sends ``0`` for ``dpo_beta``, ``rpo_alpha``
    and ``simpo_gamma``; we omit them (a beta of 0 is not what the job will use). The same ``value or 0``
    turns an explicit ``0.0`` into the integer ``0``; we send the float the user gave (equal JSON numbers).

The SDK's silent ``learning_rate`` 0 -> 1e-5 is not normalised: we reject such configs instead, which the
second table shows along with the other checks the SDK skips.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import together
from together.types.finetune_model_limits import FinetuneModelLimits

from airflow_provider_together.exceptions import TogetherConfigError
from airflow_provider_together.models import FineTuneConfig, ModelLimits

TF = "file-7c1a0b8e-train"
VF = "file-2f9d4e11-valid"
DPO_PRICE_KEYS = ("dpo_beta", "rpo_alpha", "simpo_gamma")

# (id, limits name, flat SDK keywords). Secrets (wandb_api_key, hf_api_token) are SDK keywords; for us they
# are to_request() arguments, never config options.
TABLE: list[tuple[str, str, dict[str, Any]]] = [
    ("minimal", "text", {}),
    ("epochs-checkpoints-lr", "text", {"n_epochs": 3, "n_checkpoints": 2, "learning_rate": 1e-4}),
    ("evals", "text", {"validation_file": VF, "n_evals": 5}),
    ("batch-int", "text", {"batch_size": 16}),
    ("batch-min-bound", "text", {"batch_size": 8}),
    ("batch-max-bound-sft", "text", {"batch_size": 128}),
    ("dpo-batch", "text", {"training_method": "dpo", "batch_size": 64}),
    ("lora-explicit", "text", {"lora": True, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1}),
    ("lora-rank-only", "text", {"lora": True, "lora_r": 32}),
    ("lora-modules", "text", {"lora": True, "lora_trainable_modules": "q_proj,v_proj"}),
    ("lora-alpha-odd", "text", {"lora": True, "lora_r": 16, "lora_alpha": 7}),
    ("full", "text", {"lora": False}),
    ("full-dpo-batch", "text", {"lora": False, "training_method": "dpo", "batch_size": 48}),
    ("dpo-beta", "text", {"training_method": "dpo", "dpo_beta": 0.2}),
    ("dpo-rpo", "text", {"training_method": "dpo", "dpo_beta": 0.1, "rpo_alpha": 0.5}),
    ("simpo", "text", {"training_method": "dpo", "simpo_gamma": 0.5}),
    ("simpo-zero", "text", {"training_method": "dpo", "simpo_gamma": 0.0}),
    ("dpo-normalise", "text", {"training_method": "dpo", "dpo_normalize_logratios_by_length": True}),
    ("sft-train-on-inputs-true", "text", {"train_on_inputs": True}),
    ("sft-train-on-inputs-false", "text", {"train_on_inputs": False}),
    ("sft-train-on-inputs-auto", "text", {"train_on_inputs": "auto"}),
    ("linear-scheduler", "text", {"lr_scheduler_type": "linear", "min_lr_ratio": 0.1}),
    (
        "cosine-args",
        "text",
        {"lr_scheduler_type": "cosine", "min_lr_ratio": 0.05, "scheduler_num_cycles": 2.0},
    ),
    ("regularisation", "text", {"warmup_ratio": 0.1, "max_grad_norm": 0.5, "weight_decay": 0.01}),
    ("no-clipping", "text", {"max_grad_norm": 0.0, "warmup_ratio": 1.0}),
    ("seq-len", "text", {"max_seq_length": 2048}),
    ("seq-len-bounds-dpo", "text", {"training_method": "dpo", "max_seq_length": 65536}),
    ("seq-len-min", "text", {"max_seq_length": 512}),
    ("no-packing-seed-accum", "text", {"packing": False, "random_seed": 7, "gradient_accumulation_steps": 4}),
    ("suffix", "text", {"suffix": "my-run_v1.2"}),
    (
        "wandb",
        "text",
        {
            "wandb_api_key": "wk-secret",
            "wandb_project_name": "proj",
            "wandb_name": "run-1",
            "wandb_entity": "team",
            "wandb_base_url": "https://wandb.example.com",
        },
    ),
    (
        "early-stopping",
        "text",
        {
            "validation_file": VF,
            "n_evals": 5,
            "early_stopping_enabled": True,
            "early_stopping_patience": 2,
            "early_stopping_warmup_evals": 1,
            "early_stopping_min_delta": 0.01,
        },
    ),
    (
        "early-stopping-defaults",
        "text",
        {"validation_file": VF, "n_evals": 4, "early_stopping_enabled": True},
    ),
    ("early-stopping-off-with-knobs", "text", {"early_stopping_patience": 3}),
    ("resume", "text", {"model": None, "from_checkpoint": "ft-0a1b2c3d:10"}),
    ("resume-lora", "text", {"model": None, "from_checkpoint": "ft-0a1b2c3d", "lora": True, "lora_r": 16}),
    (
        "resume-full-dpo",
        "text",
        {"model": None, "from_checkpoint": "me/llama-ft-abc:20", "lora": False, "training_method": "dpo"},
    ),
    (
        "from-hf",
        "text",
        {
            "from_hf_model": "me/my-llama",
            "hf_model_revision": "607a30d783dfa663caf39e06633721c8d4cfcd7e",
            "hf_api_token": "hf-secret",
            "hf_output_repo_name": "me/out",
        },
    ),
    ("vision-minimal", "vision", {}),
    ("vision-train", "vision", {"train_vision": True, "lora": False}),
    ("vision-dpo", "vision", {"training_method": "dpo", "train_vision": False, "batch_size": 8}),
    ("lora-only-default-rank", "lora_only", {"batch_size": 2}),
    ("lora-only-dpo", "lora_only", {"training_method": "dpo", "dpo_beta": 0.05, "max_seq_length": 32768}),
    ("lr-at-max", "text", {"learning_rate": 1.0, "n_epochs": 20, "n_evals": 10, "validation_file": VF}),
    (
        "kitchen-sink",
        "text",
        {
            "validation_file": VF,
            "n_epochs": 2,
            "n_evals": 6,
            "n_checkpoints": 3,
            "batch_size": 32,
            "learning_rate": 2e-4,
            "lr_scheduler_type": "cosine",
            "min_lr_ratio": 0.1,
            "scheduler_num_cycles": 1.5,
            "warmup_ratio": 0.03,
            "max_grad_norm": 2.0,
            "weight_decay": 0.1,
            "max_seq_length": 8192,
            "packing": True,
            "random_seed": 1234,
            "gradient_accumulation_steps": 2,
            "lora": True,
            "lora_r": 16,
            "lora_alpha": 32,
            "lora_dropout": 0.05,
            "lora_trainable_modules": "q_proj,k_proj,v_proj,o_proj",
            "train_on_inputs": False,
            "suffix": "weekly.2026-11",
            "wandb_api_key": "wk-secret",
            "wandb_project_name": "retrain",
            "early_stopping_enabled": True,
            "early_stopping_patience": 3,
            "early_stopping_warmup_evals": 2,
        },
    ),
]

# Configs the SDK accepts and sends, but we reject before any HTTP call (checks the SDK skips or quirks).
REJECTED: list[tuple[str, dict[str, Any], str, str]] = [
    ("lr-zero-silently-1e-5", {"learning_rate": 0.0}, "learning_rate", "must be > 0"),
    ("lr-above-max", {"learning_rate": 2.0}, "learning_rate", "must be within [1e-06, 1.0]"),
    ("epochs-above-max", {"n_epochs": 21}, "n_epochs", "must be <= 20"),
    ("evals-without-validation", {"n_evals": 2}, "n_evals", "needs a validation_file"),
    ("rank-above-max", {"lora": True, "lora_r": 128}, "lora_r", "must be <= 64, the max rank"),
    (
        "unknown-module",
        {"lora": True, "lora_trainable_modules": "q_proj,w_up"},
        "lora_trainable_modules",
        "w_up",
    ),
    ("lora-option-with-full", {"lora": False, "lora_r": 8}, "lora_r", "lora=False"),
    ("suffix-too-long", {"suffix": "x" * 41}, "suffix", "at most 40 characters"),
    ("suffix-bad-chars", {"suffix": "my run"}, "suffix", "letters, digits"),
    (
        "num-cycles-with-linear",
        {"lr_scheduler_type": "linear", "scheduler_num_cycles": 2.0},
        "scheduler_num_cycles",
        "cosine",
    ),
    ("checkpoints-above-max", {"n_checkpoints": 11}, "n_checkpoints", "must be <= 10"),
]


class _Capture:
    """Records the JSON bodies the SDK sends; answers like the API so ``create()`` completes."""

    def __init__(self) -> None:
        self.bodies: dict[str, Any] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies[request.url.path] = json.loads(request.content)
        if request.url.path.endswith("/estimate-price"):
            return httpx.Response(
                200,
                json={
                    "estimation_available": True,
                    "estimated_total_price": 1.5,
                    "allowed_to_proceed": True,
                    "user_limit": 100.0,
                    "estimated_train_token_count": 1000,
                    "estimated_eval_token_count": 0,
                },
            )
        return httpx.Response(200, json={"id": "ft-0a1b2c3d", "status": "pending"})


@pytest.fixture
def sdk_bodies() -> Iterator[Callable[[dict[str, Any], dict[str, Any]], tuple[Any, Any]]]:
    """Run the real SDK create() offline; return (price body, create body)."""
    clients: list[Any] = []

    def run(kwargs: dict[str, Any], limits: dict[str, Any]) -> tuple[Any, Any]:
        capture = _Capture()
        client = together.Together(
            api_key="sdk-test-key",
            base_url="http://sdk.invalid",
            max_retries=0,
            http_client=httpx.Client(transport=httpx.MockTransport(capture)),
        )
        clients.append(client)
        client.fine_tuning.create(**kwargs, model_limits=FinetuneModelLimits.model_validate(limits))
        return capture.bodies["/v1/fine-tunes/estimate-price"], capture.bodies["/v1/fine-tunes"]

    yield run
    for client in clients:
        client.close()


def _canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True)


def _split(flat: dict[str, Any], limits: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The full flat keywords (model defaulted; ``model=None`` removes it) and the secrets (arguments, not config)."""
    kwargs = {"training_file": TF, "model": limits["model_name"], **flat}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    secrets = {"wandb_key": kwargs.get("wandb_api_key"), "hf_api_token": kwargs.get("hf_api_token")}
    return kwargs, secrets


def test_table_is_big_and_varied() -> None:
    assert len(TABLE) >= 30
    assert len({case_id for case_id, _, _ in TABLE}) == len(TABLE)
    options = {key for _, _, flat in TABLE for key in flat}
    # Every SDK option appears in at least one row.
    assert {
        "validation_file", "n_epochs", "n_evals", "n_checkpoints", "batch_size", "learning_rate", "lr_scheduler_type",
        "min_lr_ratio", "scheduler_num_cycles", "warmup_ratio", "max_grad_norm", "weight_decay", "max_seq_length",
        "packing", "random_seed", "gradient_accumulation_steps", "lora", "lora_r", "lora_alpha", "lora_dropout",
        "lora_trainable_modules", "train_vision", "suffix", "wandb_api_key", "wandb_project_name", "wandb_name",
        "wandb_entity", "wandb_base_url", "early_stopping_enabled", "early_stopping_patience",
        "early_stopping_min_delta", "early_stopping_warmup_evals", "train_on_inputs", "training_method", "dpo_beta",
        "dpo_normalize_logratios_by_length", "rpo_alpha", "simpo_gamma", "from_checkpoint", "from_hf_model",
        "hf_model_revision", "hf_api_token", "hf_output_repo_name",
    } <= options  # fmt: skip


@pytest.mark.parametrize(
    ("limits_name", "flat"), [(name, f) for _, name, f in TABLE], ids=[c for c, _, _ in TABLE]
)
def test_bodies_equal_the_sdk(
    limits_name: str,
    flat: dict[str, Any],
    limits_payload: Callable[[str], dict[str, Any]],
    sdk_bodies: Callable[[dict[str, Any], dict[str, Any]], tuple[Any, Any]],
) -> None:
    payload = limits_payload(limits_name)
    kwargs, secrets = _split(flat, payload)
    sdk_kwargs = dict(kwargs)
    if "lora" not in sdk_kwargs and "from_checkpoint" not in sdk_kwargs:
        sdk_kwargs["lora"] = True  # D2
    sdk_price, sdk_create = sdk_bodies(sdk_kwargs, payload)

    config = FineTuneConfig(**{k: v for k, v in kwargs.items() if k not in ("wandb_api_key", "hf_api_token")})
    limits = ModelLimits.model_validate(payload)
    ours_create = config.to_request(limits, **secrets)
    ours_price = config.to_price_request(limits)

    if sdk_create.get("validation_file") == "":  # D1
        del sdk_create["validation_file"]
    if sdk_price.get("model") == "":  # P1
        del sdk_price["model"]
    method = sdk_price["training_method"]
    for key in DPO_PRICE_KEYS:  # P2
        if method["method"] == "dpo" and method.get(key) == 0:
            if key in kwargs:
                method[key] = float(method[key])
            else:
                del method[key]
    assert _canonical(ours_create) == _canonical(sdk_create)
    assert _canonical(ours_price) == _canonical(sdk_price)


def test_d2_the_sdk_really_omits_training_type_without_lora(
    limits_payload: Callable[[str], dict[str, Any]],
    sdk_bodies: Callable[[dict[str, Any], dict[str, Any]], tuple[Any, Any]],
) -> None:
    payload = limits_payload("text")
    _, sdk_create = sdk_bodies({"training_file": TF, "model": payload["model_name"]}, payload)
    ours = FineTuneConfig(training_file=TF, model=payload["model_name"]).to_request(
        ModelLimits.model_validate(payload)
    )
    assert "training_type" not in sdk_create
    assert ours["training_type"] == {
        "type": "Lora",
        "lora_r": 64,
        "lora_alpha": 128,
        "lora_dropout": 0.0,
        "lora_trainable_modules": "all-linear",
    }
    assert sdk_create["validation_file"] == ""  # D1 is real too
    assert "validation_file" not in ours


@pytest.mark.parametrize(("flat", "field", "rule"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_sdk_accepts_but_we_reject(
    flat: dict[str, Any],
    field: str,
    rule: str,
    limits_payload: Callable[[str], dict[str, Any]],
    sdk_bodies: Callable[[dict[str, Any], dict[str, Any]], tuple[Any, Any]],
) -> None:
    payload = limits_payload("text")
    kwargs = {"training_file": TF, "model": payload["model_name"], **flat}
    _, sdk_create = sdk_bodies(kwargs, payload)  # the SDK would submit this job
    assert sdk_create["training_file"] == TF
    with pytest.raises(TogetherConfigError) as info:
        FineTuneConfig(**kwargs).to_request(ModelLimits.model_validate(payload))
    assert any(f == field and rule in message for f, message in info.value.problems), info.value.problems
