"""fingerprint(): one stable value per config, across processes, hash seeds and Python versions."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_together.models import FineTuneConfig

GOLDEN_KWARGS = {
    "training_file": "file-golden",
    "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
    "n_epochs": 3,
    "learning_rate": 2e-4,
    "lora_r": 16,
    "training_method": "dpo",
    "dpo_beta": 0.1,
    "min_lr_ratio": 0.1,
    "wandb_name": "ünïcode run",
    "suffix": "weekly.v1",
}
# Computed once with this release. If this changes, every job submitted before the change stops being
# recognised on retry: bump FINGERPRINT_VERSION deliberately instead of editing these values.
GOLDEN = "f03ae0882e350d55b857c425aba31253129c15439e6ef0a6aadba40a832e5dc4"
GOLDEN_MINIMAL = "498a559f0b81e4f7d1167cdb6df62d94f3e5d5165975ccf0f5cb079e81e58bd5"

_CHILD = """
import json, sys
from airflow_provider_together.models import FineTuneConfig
print(FineTuneConfig(**json.loads(sys.argv[1])).fingerprint())
"""


def test_golden_values() -> None:
    assert FineTuneConfig(**GOLDEN_KWARGS).fingerprint() == GOLDEN
    assert FineTuneConfig(training_file="file-golden", model="m").fingerprint() == GOLDEN_MINIMAL


@pytest.mark.parametrize("hash_seed", ["0", "12345"])
def test_same_value_in_a_fresh_process(hash_seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(GOLDEN_KWARGS)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    assert out.stdout.strip() == GOLDEN


def _other_pythons() -> list[str]:
    """Real interpreters of other versions (pyenv installs, or on PATH but not pyenv's shims)."""
    found = []
    pyenv = Path.home() / ".pyenv" / "versions"
    for version in ("3.10", "3.12", "3.13"):
        candidates = (
            [p / "bin" / "python3" for p in sorted(pyenv.glob(f"{version}.*"))] if pyenv.is_dir() else []
        )
        on_path = shutil.which(f"python{version}")
        if on_path and "shims" not in on_path:
            candidates.append(Path(on_path))
        exe = next((str(c) for c in candidates if c.is_file()), None)
        if exe:
            found.append(exe)
    return found


def test_canonical_json_is_the_same_in_other_interpreters() -> None:
    """
    The only version-sensitive step is JSON canonicalisation (float repr, key order, escaping): redo it with
    stdlib json in a fresh interpreter with another hash seed (always), and on every other Python version
    installed here, and compare digests.
    """
    pythons = [sys.executable, *_other_pythons()]
    config = FineTuneConfig(**GOLDEN_KWARGS)
    payload = json.dumps(
        {"fingerprint_version": 1, "config": config.model_dump(mode="json", exclude_defaults=True)}
    )
    child = (
        "import hashlib, json, sys\n"
        "obj = json.loads(sys.stdin.read())\n"
        "text = json.dumps(obj, sort_keys=True, separators=(',', ':'), ensure_ascii=True, allow_nan=False)\n"
        "print(sys.version_info[:2], hashlib.sha256(text.encode('ascii')).hexdigest())\n"
    )
    for exe in pythons:
        out = subprocess.run(
            [exe, "-s", "-c", child],  # not -I: it would ignore the hash seed
            input=payload,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": "12345"},
        )
        version, _, digest = out.stdout.strip().rpartition(" ")
        assert digest == GOLDEN, f"{exe} {version}"


def test_equal_configs_share_a_fingerprint_and_different_ones_do_not() -> None:
    base = FineTuneConfig(training_file="f", model="m")
    assert (
        base.fingerprint()
        == FineTuneConfig(training_file="f", model="m", n_epochs=1, lora=True).fingerprint()
    )
    assert (
        base.fingerprint()
        == FineTuneConfig.model_validate({"training_file": "f", "model": "m"}).fingerprint()
    )
    variants = [
        {"n_epochs": 2},
        {"learning_rate": 1.1e-5},
        {"lora": False},
        {"training_method": "dpo"},
        {"suffix": "a"},
        {"validation_file": "v"},
        {"wandb_project_name": "p"},
        {"train_vision": True},
        {"lora_r": 64},
    ]
    digests = {FineTuneConfig(training_file="f", model="m", **v).fingerprint() for v in variants}  # type: ignore[arg-type]
    assert len(digests) == len(variants)
    assert base.fingerprint() not in digests


def test_fingerprint_is_sha256_hex_of_canonical_json() -> None:
    # Options equal to their default (including the default LoRA / SFT / cosine groups) are left out.
    config = FineTuneConfig(training_file="f", model="m", n_epochs=2, lora=True, training_method="sft")
    text = '{"config":{"model":"m","n_epochs":2,"training_file":"f"},"fingerprint_version":1}'
    assert config.fingerprint() == hashlib.sha256(text.encode()).hexdigest()
