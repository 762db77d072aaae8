"""The emulator's fine-tuning API: server-side checks, lifecycle, events, checkpoints, money, downloads."""

from __future__ import annotations

import io
import json
import re
import tarfile
from typing import Any

import httpx
import pytest
from _emu_helpers import conversation_lines, preference_lines, ready_file, upload, wait_status

from airflow_provider_together.emulator import Emulator

MODEL = "Qwen/Qwen3-8B"
TERMINAL = {"completed", "cancelled", "error", "user_error"}


def create(api: httpx.Client, **body: Any) -> httpx.Response:
    return api.post("/fine-tunes", json=body)


def test_job_runs_through_every_status_and_reports_progress(
    together_emulator: Emulator, api: httpx.Client
) -> None:
    file_id = ready_file(api)
    answer = create(api, training_file=file_id, model=MODEL, n_epochs=2, suffix="demo")
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert job["id"].startswith("ft-")
    assert job["status"] == "pending"
    assert job["events"] == []
    assert re.fullmatch(r"emulator_7e3a/Qwen3-8B-demo-[0-9a-f]{8}", job["model_output_name"])
    done = wait_status(api, job["id"], TERMINAL)
    assert done["status"] == "completed"
    assert done["steps_completed"] == done["total_steps"] > 0
    assert done["epochs_completed"] == 2
    assert done["token_count"] > 0
    assert isinstance(done["total_price"], int)
    assert done["total_price"] >= 4_000_000_000
    assert done["progress"]["estimate_available"] is False
    history = [h["status"] for h in together_emulator.admin.job(job["id"])["history"]]
    assert history == ["pending", "queued", "running", "compressing", "uploading", "completed"]


def test_events_checkpoints_and_evals_follow_the_request(api: httpx.Client) -> None:
    train, valid = ready_file(api), ready_file(api, conversation_lines(12), "valid.jsonl")
    job = create(
        api, training_file=train, validation_file=valid, model=MODEL, n_epochs=3, n_checkpoints=3, n_evals=2
    ).json()
    wait_status(api, job["id"], TERMINAL)
    events = api.get(f"/fine-tunes/{job['id']}/events").json()["data"]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "job_pending"
    assert kinds[-1] == "job_complete"
    assert kinds.count("checkpoint_save") == 2  # the third save is the final model
    assert kinds.count("eval_complete") == 2
    assert kinds.count("epoch_complete") == 3
    assert "wandb_init" not in kinds
    assert (
        kinds.index("training_start")
        < kinds.index("model_compressing")
        < kinds.index("model_upload_complete")
    )
    assert {"validation_data_downloading", "validation_data_download_complete"} <= set(kinds)
    checkpoints = api.get(f"/fine-tunes/{job['id']}/checkpoints").json()["data"]
    assert [c["checkpoint_type"] for c in checkpoints] == [
        "Final Adapter",
        "Final Merged",
        "Intermediate",
        "Intermediate",
    ]
    assert checkpoints[-1]["step"] < checkpoints[-2]["step"]
    assert api.get(f"/fine-tunes/{job['id']}").json()["evals_completed"] == 2


def test_wandb_gets_an_init_event_and_the_key_is_never_echoed(
    together_emulator: Emulator, api: httpx.Client
) -> None:
    file_id = ready_file(api)
    secret = "wandb-secret-0123456789"
    job = create(
        api,
        training_file=file_id,
        model=MODEL,
        wandb_key=secret,
        wandb_project_name="proj",
        hf_api_token=secret,
    ).json()
    wait_status(api, job["id"], TERMINAL)
    full = api.get(f"/fine-tunes/{job['id']}")
    init = [e for e in full.json()["events"] if e["type"] == "wandb_init"]
    assert len(init) == 1
    assert init[0]["wandb_url"].endswith(job["id"])
    assert full.json()["wandb_url"] == init[0]["wandb_url"]
    seen = [
        full.text,
        json.dumps(job),
        api.get("/fine-tunes").text,
        httpx.get(f"{together_emulator.root_url}/_emulator/jobs").text,
    ]
    assert not any(secret in text for text in seen)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n_epochs": 21}, "n_epochs"),
        ({"n_epochs": "3"}, "n_epochs"),
        ({"n_checkpoints": 0}, "n_checkpoints"),
        ({"n_evals": 2}, "validation_file"),
        ({"batch_size": 4}, "batch_size"),
        ({"learning_rate": 2.0}, "learning_rate"),
        ({"training_type": {"type": "Lora", "lora_r": 128}}, "training_type.lora_r"),
        ({"training_type": {"type": "Lora", "lora_r": 8, "lora_dropout": 1.0}}, "training_type.lora_dropout"),
        (
            {"training_type": {"type": "Lora", "lora_r": 8, "lora_trainable_modules": "q_proj,w_up"}},
            "training_type.lora_trainable_modules",
        ),
        ({"training_type": {"type": "Qlora"}}, "training_type.type"),
        ({"training_method": {"method": "ppo"}}, "training_method.method"),
        ({"training_method": {"method": "sft", "dpo_beta": 0.2}}, "training_method.dpo_beta"),
        ({"warmup_ratio": 1.5}, "warmup_ratio"),
        (
            {
                "lr_scheduler": {
                    "lr_scheduler_type": "cosine",
                    "lr_scheduler_args": {"min_lr_ratio": 0, "num_cycles": 0},
                }
            },
            "lr_scheduler.lr_scheduler_args.num_cycles",
        ),
        ({"suffix": "x" * 41}, "suffix"),
        ({"max_seq_length": 100}, "max_seq_length"),
        ({"multimodal_params": {"train_vision": True}}, "multimodal_params.train_vision"),
        ({"from_checkpoint": "ft-nope"}, "from_checkpoint"),
    ],
)
def test_server_side_checks_answer_400_naming_the_parameter(
    api: httpx.Client, body: dict[str, Any], param: str
) -> None:
    file_id = ready_file(api)
    request = {"training_file": file_id, "model": MODEL, **body}
    if "from_checkpoint" in body:
        del request["model"]
    answer = api.post("/fine-tunes", json=request)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert api.get("/fine-tunes").json()["data"] == []


def test_unknown_model_is_404_and_full_training_on_a_lora_only_model_is_400(api: httpx.Client) -> None:
    file_id = ready_file(api)
    unknown = create(api, training_file=file_id, model="acme/not-a-model")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["param"] == "model"
    full = create(api, training_file=file_id, model="openai/gpt-oss-20b", training_type={"type": "Full"})
    assert full.status_code == 400
    assert full.json()["error"]["param"] == "training_type"
    ok = create(api, training_file=file_id, model="Qwen/Qwen3-8B", training_type={"type": "Full"})
    assert ok.status_code == 200
    assert ok.json()["training_type"] == {"type": "Full"}


def test_a_file_that_is_not_ready_or_invalid_is_rejected(
    together_emulator: Emulator, api: httpx.Client
) -> None:
    together_emulator.admin.update_settings(speed=0.01)  # validation now takes ~100 s of wall time
    pending = upload(api, conversation_lines(4))
    answer = create(api, training_file=pending, model=MODEL)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "file_not_ready"
    estimate = api.post("/fine-tunes/estimate-price", json={"training_file": pending, "model": MODEL}).json()
    assert estimate == {"estimation_available": False, "unavailable_reason": "train_file_not_validated"}
    missing = create(api, training_file="file-missing", model=MODEL)
    assert missing.status_code == 404
    assert missing.json()["error"]["param"] == "training_file"


def test_dpo_needs_a_preference_file_and_accepts_one(api: httpx.Client) -> None:
    conversation = ready_file(api)
    wrong = create(api, training_file=conversation, model=MODEL, training_method={"method": "dpo"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["param"] == "training_file"
    preference = ready_file(api, preference_lines(), "prefs.jsonl")
    right = create(
        api, training_file=preference, model=MODEL, training_method={"method": "dpo", "dpo_beta": 0.2}
    )
    assert right.status_code == 200, right.text
    assert right.json()["training_method"]["dpo_beta"] == 0.2


def test_cancel_goes_through_cancel_requested_and_stops_billing(
    together_emulator: Emulator, api: httpx.Client
) -> None:
    file_id = ready_file(api)
    # Still running when the cancel arrives, however slow the machine.
    together_emulator.admin.add_scenario("stall", count=1)
    job = create(api, training_file=file_id, model=MODEL).json()
    cancelled = api.post(f"/fine-tunes/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancel_requested"
    assert api.post(f"/fine-tunes/{job['id']}/cancel").json()["status"] == "cancel_requested"
    done = wait_status(api, job["id"], TERMINAL)
    assert done["status"] == "cancelled"
    assert done["total_price"] == 0
    kinds = [e["type"] for e in done["events"]]
    assert kinds[-2:] == ["cancel_requested", "job_stopped"]
    again = api.post(f"/fine-tunes/{job['id']}/cancel")
    assert again.status_code == 400


def test_delete_refuses_a_live_job_and_removes_a_finished_one(
    together_emulator: Emulator, api: httpx.Client
) -> None:
    file_id = ready_file(api)
    together_emulator.admin.update_settings(speed=0.5)
    live = create(api, training_file=file_id, model=MODEL).json()
    assert api.delete(f"/fine-tunes/{live['id']}").status_code == 400
    api.post(f"/fine-tunes/{live['id']}/cancel")
    together_emulator.admin.update_settings(speed=100)
    wait_status(api, live["id"], TERMINAL)
    assert api.delete(f"/fine-tunes/{live['id']}").json() == {
        "message": f"Fine-tune job {live['id']} deleted"
    }
    assert api.get(f"/fine-tunes/{live['id']}").status_code == 404
    assert api.get("/fine-tunes").json()["data"] == []
    # The admin API still shows it, so "exactly one job was created" stays checkable after a delete.
    [kept] = together_emulator.admin.jobs()
    assert kept["id"] == live["id"]
    assert kept["deleted"] is True


def test_list_returns_truncated_jobs_in_creation_order(api: httpx.Client) -> None:
    file_id = ready_file(api)
    ids = [create(api, training_file=file_id, model=MODEL, suffix=f"s{i}").json()["id"] for i in range(3)]
    listed = api.get("/fine-tunes").json()["data"]
    assert [job["id"] for job in listed] == ids
    assert all(job["events"] == [] for job in listed)


def test_metrics_show_a_falling_loss(api: httpx.Client) -> None:
    file_id = ready_file(api, conversation_lines(200))
    job = create(api, training_file=file_id, model=MODEL, n_epochs=2).json()
    wait_status(api, job["id"], TERMINAL)
    metrics = api.get(f"/fine-tunes/{job['id']}/metrics").json()["metrics"]
    losses = [m["train/loss"] for m in metrics]
    assert len(losses) == api.get(f"/fine-tunes/{job['id']}").json()["total_steps"]
    assert losses[-1] < losses[0] * 0.5
    sampled = api.get(
        f"/fine-tunes/{job['id']}/metrics", params={"resolution": 5, "global_step_from": 3}
    ).json()["metrics"]
    assert len(sampled) == 5
    assert sampled[0]["train/global_step"] >= 3


def test_download_is_a_real_archive_with_range_support(api: httpx.Client) -> None:
    file_id = ready_file(api)
    job = create(api, training_file=file_id, model=MODEL).json()
    early = api.get("/finetune/download", params={"ft_id": job["id"]})
    assert early.status_code == 400
    wait_status(api, job["id"], TERMINAL)
    whole = api.get("/finetune/download", params={"ft_id": job["id"], "checkpoint": "adapter"})
    assert whole.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(whole.content), mode="r:gz") as tar:
        names = tar.getnames()
    assert any(name.endswith("adapter_model.safetensors") for name in names)
    head = api.get(
        "/finetune/download",
        params={"ft_id": job["id"], "checkpoint": "adapter"},
        headers={"Range": "bytes=0-1"},
    )
    assert head.status_code == 206
    assert head.content == whole.content[:2]
    assert head.headers["Content-Range"] == f"bytes 0-1/{len(whole.content)}"
    tail = api.get(
        "/finetune/download",
        params={"ft_id": job["id"], "checkpoint": "adapter"},
        headers={"Range": "bytes=100-"},
    )
    assert tail.content == whole.content[100:]
    beyond = api.get(
        "/finetune/download",
        params={"ft_id": job["id"]},
        headers={"Range": f"bytes={len(whole.content) + 5}-"},
    )
    assert beyond.status_code == 416


def test_estimate_price_in_dollars_against_the_credit_limit(
    together_emulator: Emulator, api: httpx.Client
) -> None:
    file_id = ready_file(api, conversation_lines(400))
    estimate = api.post(
        "/fine-tunes/estimate-price", json={"training_file": file_id, "model": MODEL, "n_epochs": 3}
    ).json()
    assert estimate["estimation_available"] is True
    assert estimate["allowed_to_proceed"] is True
    assert estimate["estimated_train_token_count"] > 0
    assert estimate["estimated_total_price"] == 4.0  # the minimum charge for a small file
    together_emulator.admin.update_settings(credit_limit_usd=1.0, min_charge_usd=0.000001)
    low = api.post(
        "/fine-tunes/estimate-price", json={"training_file": file_id, "model": MODEL, "n_epochs": 3}
    ).json()
    assert low["user_limit"] == 1.0
    assert low["estimated_total_price"] == pytest.approx(low["estimated_train_token_count"] / 1e6 * 0.48)
    together_emulator.admin.update_settings(credit_limit_usd=1e-9)
    assert (
        api.post("/fine-tunes/estimate-price", json={"training_file": file_id, "model": MODEL}).json()[
            "allowed_to_proceed"
        ]
        is False
    )


def test_model_limits_cover_real_lora_only_full_and_vision_models(api: httpx.Client) -> None:
    names = api.get("/fine-tunes/models/supported").json()["models"]
    assert len(names) >= 6
    limits = {
        name: api.get("/fine-tunes/models/limits", params={"model_name": name}).json() for name in names
    }
    assert any(not lim["supports_full_training"] for lim in limits.values())
    assert any(lim["supports_full_training"] for lim in limits.values())
    assert any(lim["supports_vision"] for lim in limits.values())
    assert any(not lim["supports_vision"] for lim in limits.values())
    gpt = limits["openai/gpt-oss-20b"]
    assert gpt["full_training"] == {"max_batch_size": 0, "max_batch_size_dpo": 0, "min_batch_size": 0}
    assert gpt["default_gradient_accumulation_steps"] == 8
    assert limits["deepseek-ai/DeepSeek-V3.1"]["lora_training"]["max_rank"] == 16
    unknown = api.get("/fine-tunes/models/limits", params={"model_name": "acme/x"})
    assert unknown.status_code == 404
    assert set(unknown.json()) == {"message"}


def test_from_checkpoint_trains_on_from_a_completed_job(api: httpx.Client) -> None:
    file_id = ready_file(api)
    parent = create(api, training_file=file_id, model=MODEL).json()
    assert create(api, training_file=file_id, from_checkpoint=parent["id"]).status_code == 400
    wait_status(api, parent["id"], TERMINAL)
    child = create(api, training_file=file_id, from_checkpoint=f"{parent['model_output_name']}")
    assert child.status_code == 200, child.text
    assert child.json()["model"] == MODEL
    assert child.json()["from_checkpoint"] == parent["model_output_name"]


def test_download_of_an_intermediate_checkpoint_by_step(api: httpx.Client) -> None:
    file_id = ready_file(api, conversation_lines(80))
    job = create(api, training_file=file_id, model=MODEL, n_checkpoints=2).json()
    wait_status(api, job["id"], TERMINAL)
    [intermediate] = [
        c
        for c in api.get(f"/fine-tunes/{job['id']}/checkpoints").json()["data"]
        if c["checkpoint_type"] == "Intermediate"
    ]
    step = intermediate["step"]
    by_param = api.get("/finetune/download", params={"ft_id": job["id"], "checkpoint_step": step})
    by_suffix = api.get("/finetune/download", params={"ft_id": f"{job['id']}:{step}"})
    assert by_param.status_code == 200
    assert by_param.content == by_suffix.content
    assert f"-checkpoint-{step}.tar.gz" in by_param.headers["Content-Disposition"]
    missing = api.get("/finetune/download", params={"ft_id": job["id"], "checkpoint_step": step + 1})
    assert missing.status_code == 404
    assert missing.json()["error"]["param"] == "checkpoint_step"
