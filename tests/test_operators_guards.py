"""
The money guards of the fine-tune operator, against the emulator: the price cap fails closed for every job
kind, every check that needs no upload runs before the first upload byte (and all problems arrive in one
error), a local file is read once before it is uploaded, and answers a retry cannot change fail at once.
"""

from __future__ import annotations

import builtins
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from _fine_tune_support import BASE_MODEL, FAST, FakeTI, MemoryStateStore, make_context, write_training_file
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_together._fine_tune.reattach import STATE_KEY
from airflow_provider_together.exceptions import TogetherError
from airflow_provider_together.links import PRICE_ESTIMATE_XCOM_KEY
from airflow_provider_together.operators import TogetherFineTuneOperator

pytestmark = pytest.mark.timeout(180)

ESTIMATE = "POST /v1/fine-tunes/estimate-price"
CREATE = "POST /v1/fine-tunes"
UPLOAD = "POST /v1/files"


@pytest.fixture
def emu(together_emulator_conn: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    together_emulator_conn.admin.update_settings(speed=FAST)
    # No hook-level retries: each test decides how many failures the emulator serves.
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", together_emulator_conn.conn_json(max_retries=0))
    return together_emulator_conn


def created(emu: Any) -> int:
    """How many jobs the emulator has: each one costs money."""
    return len(emu.admin.jobs())


def run(tmp_path: Path, task_id: str = "fine_tune", **kwargs: Any) -> Any:
    options: dict[str, Any] = {"deferrable": False, "poll_interval": 0.05}
    if "training_file" not in kwargs:
        options["training_file"] = str(write_training_file(tmp_path / f"{task_id}.jsonl"))
    if not {"model", "from_checkpoint"} & set(kwargs):
        options["model"] = BASE_MODEL
    options.update(kwargs)
    return TogetherFineTuneOperator(task_id=task_id, **options).execute(make_context(FakeTI(task_id=task_id)))


def preference_file(path: Path, n: int = 20) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            row = {
                "input": {"messages": [{"role": "user", "content": f"Say hi number {i}"}]},
                "preferred_output": [{"role": "assistant", "content": f"Hi {i}!"}],
                "non_preferred_output": [{"role": "assistant", "content": "No."}],
            }
            fh.write(json.dumps(row) + "\n")
    return path


def estimate_answers(emu: Any, body: dict[str, Any] | str, status: int = 200) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    emu.admin.add_fault(ESTIMATE, "body", status=status, body=text)


# -- 1. the price cap holds for every job kind ------------------------------------------------------


def test_a_cap_below_the_estimate_refuses_a_resumed_job(emu: Any, tmp_path: Path) -> None:
    parent = run(tmp_path, task_id="parent")
    before = created(emu)
    with pytest.raises(AirflowFailException, match=r"max_price_usd.*exceeds max_price_usd=\$1\.00"):
        run(tmp_path, task_id="resume", from_checkpoint=parent["job_id"], max_price_usd=1)
    assert emu.admin.count(ESTIMATE) == 2  # the parent's and the resumed job's
    assert created(emu) == before


def test_a_cap_above_the_estimate_lets_a_resumed_job_through(emu: Any, tmp_path: Path) -> None:
    parent = run(tmp_path, task_id="parent")
    before = created(emu)
    result = run(tmp_path, task_id="resume", from_checkpoint=parent["job_id"], max_price_usd=1000)
    assert result["status"] == "completed"
    assert created(emu) == before + 1


@pytest.mark.parametrize(("cap", "jobs"), [(1, 0), (1000, 1)])
def test_a_hugging_face_start_is_estimated_and_capped(
    emu: Any, tmp_path: Path, cap: float, jobs: int
) -> None:
    kwargs = {"from_hf_model": "my-org/llama-3.1-8b-variant", "max_price_usd": cap}
    if jobs:
        assert run(tmp_path, **kwargs)["status"] == "completed"
    else:
        with pytest.raises(AirflowFailException, match="exceeds max_price_usd"):
            run(tmp_path, **kwargs)
    assert emu.admin.count(ESTIMATE) == 1
    assert created(emu) == jobs


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"estimation_available": False, "unavailable_reason": "multimodal_dataset"}, "multimodal_dataset"),
        ({"estimation_available": True, "estimated_total_price": None}, "null or missing"),
        ({"estimation_available": True, "allowed_to_proceed": True}, "null or missing"),
        ({"estimated_total_price": -3}, "not a price"),
    ],
    ids=["unavailable", "null-price", "missing-price", "negative-price"],
)
def test_a_cap_without_a_usable_price_refuses(
    emu: Any, tmp_path: Path, answer: dict[str, Any], reason: str
) -> None:
    estimate_answers(emu, answer)
    with pytest.raises(AirflowFailException, match=rf"max_price_usd=5 is set.*{reason}") as info:
        run(tmp_path, max_price_usd=5)
    assert "not submitting" in str(info.value)
    assert created(emu) == 0


def test_a_cap_with_a_failing_estimate_refuses_but_stays_retryable(emu: Any, tmp_path: Path) -> None:
    emu.admin.add_fault(ESTIMATE, "status", status=503)
    with pytest.raises(TogetherError, match="max_price_usd=5 is set, but the price estimate failed") as info:
        run(tmp_path, max_price_usd=5)
    assert not isinstance(info.value, AirflowFailException)  # a later try asks again
    assert created(emu) == 0


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "body", "body": json.dumps({"estimation_available": True, "estimated_total_price": None})},
        {"kind": "body", "body": json.dumps({"estimation_available": False, "unavailable_reason": "x"})},
        {"kind": "status", "status": 503},
    ],
    ids=["null-price", "unavailable", "estimate-failed"],
)
def test_without_a_cap_a_missing_estimate_is_logged_and_the_job_goes_on(
    emu: Any, tmp_path: Path, fault: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    emu.admin.add_fault(ESTIMATE, **fault)
    assert run(tmp_path)["status"] == "completed"
    assert created(emu) == 1
    assert "No price estimate" in caplog.text


def test_an_estimate_under_the_cap_is_logged_and_submitted(
    emu: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert run(tmp_path, max_price_usd="1000")["status"] == "completed"  # a rendered template is a string
    assert created(emu) == 1
    assert "Estimated price: $" in caplog.text


def test_the_estimate_goes_to_xcom_for_the_together_tab_and_a_missing_one_does_not(
    emu: Any, tmp_path: Path
) -> None:
    train = str(write_training_file(tmp_path / "train.jsonl"))
    ti = FakeTI(task_id="priced")
    op = TogetherFineTuneOperator(
        task_id="priced", training_file=train, model=BASE_MODEL, deferrable=False, poll_interval=0.05
    )
    op.execute(make_context(ti))
    assert isinstance(ti.xcoms[PRICE_ESTIMATE_XCOM_KEY], float)
    assert ti.xcoms[PRICE_ESTIMATE_XCOM_KEY] > 0

    estimate_answers(emu, {"estimation_available": False, "unavailable_reason": "not today"})
    ti = FakeTI(task_id="unpriced")
    op = TogetherFineTuneOperator(
        task_id="unpriced", training_file=train, model=BASE_MODEL, deferrable=False, poll_interval=0.05
    )
    op.execute(make_context(ti))
    assert PRICE_ESTIMATE_XCOM_KEY not in ti.xcoms  # never a made-up $0


def test_a_try_that_reattaches_pushes_the_estimate_the_submitting_try_recorded(
    emu: Any, tmp_path: Path
) -> None:
    store = MemoryStateStore()
    train = str(write_training_file(tmp_path / "train.jsonl"))

    def attempt(try_number: int) -> FakeTI:
        ti = FakeTI(task_id="priced", try_number=try_number)
        TogetherFineTuneOperator(
            task_id="priced",
            training_file=train,
            model=BASE_MODEL,
            wait_for_completion=False,
            deferrable=False,
        ).execute(make_context(ti, store))
        return ti

    first = attempt(1)
    estimates = emu.admin.count(ESTIMATE)
    reads: list[str] = []
    read = store.get
    store.get = lambda key, default=None: reads.append(key) or read(key, default)  # type: ignore[method-assign]
    second = attempt(2)  # a new try starts with no XCom, and reattaches to the running job
    assert created(emu) == 1
    assert emu.admin.count(ESTIMATE) == estimates  # carried from the task state store, not asked again
    assert second.xcoms[PRICE_ESTIMATE_XCOM_KEY] == first.xcoms[PRICE_ESTIMATE_XCOM_KEY]
    # Each read is a call to Airflow's execution API: the abandoned-deferral check, the reattach and the
    # estimate share one read of the job record (the other key is the uploaded file's).
    assert reads.count(STATE_KEY) == 1, reads


@pytest.mark.parametrize("cap", ["-1", "nan", "lots"])
def test_a_cap_that_is_not_a_price_is_a_config_error(emu: Any, tmp_path: Path, cap: str) -> None:
    with pytest.raises(AirflowFailException, match="max_price_usd"):
        run(tmp_path, max_price_usd=cap)
    assert emu.admin.count(UPLOAD) == 0


# -- 2. cheapest first: nothing is uploaded for a config that cannot run ----------------------------


def test_a_limits_violation_fails_before_any_upload(emu: Any, tmp_path: Path) -> None:
    with pytest.raises(AirflowFailException, match="lora_r") as info:
        run(tmp_path, lora_r=100000)
    assert "Invalid fine-tuning config" in str(info.value)
    assert emu.admin.count(UPLOAD) == 0
    assert emu.admin.count("PUT /_upload/{file_id}") == 0
    assert created(emu) == 0


def test_dpo_on_conversational_data_fails_before_any_upload(emu: Any, tmp_path: Path) -> None:
    with pytest.raises(AirflowFailException, match="training_file: training_method is dpo.*conversation"):
        run(tmp_path, training_method="dpo")
    assert emu.admin.count(UPLOAD) == 0


def test_sft_on_preference_data_fails_before_any_upload(emu: Any, tmp_path: Path) -> None:
    prefs = preference_file(tmp_path / "prefs.jsonl")
    with pytest.raises(AirflowFailException, match="preference data, which only training_method='dpo'"):
        run(tmp_path, training_file=str(prefs))
    assert emu.admin.count(UPLOAD) == 0


def test_images_for_a_text_only_model_fail_before_any_upload(emu: Any, tmp_path: Path) -> None:
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    path = tmp_path / "vision.jsonl"
    with path.open("w") as fh:
        for i in range(4):
            user = {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"What is {i}?"},
                    {"type": "image_url", "image_url": {"url": png}},
                ],
            }
            fh.write(
                json.dumps(
                    {
                        "messages": [
                            user,
                            {"role": "assistant", "content": [{"type": "text", "text": "A pixel."}]},
                        ]
                    }
                )
                + "\n"
            )
    with pytest.raises(AirflowFailException, match="holds images, but .* does not support vision"):
        run(tmp_path, training_file=str(path))
    assert emu.admin.count(UPLOAD) == 0


def test_every_problem_of_every_kind_arrives_in_one_error(emu: Any, tmp_path: Path) -> None:
    bad_validation = tmp_path / "val.jsonl"
    bad_validation.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"not json\n')
    with pytest.raises(AirflowFailException) as info:
        run(
            tmp_path,
            training_method="dpo",
            lora_r=100000,
            validation_file=str(bad_validation),
            n_evals=1,
            wandb_conn_id="no_such_wandb_connection",
        )
    text = str(info.value)
    for expected in (
        "lora_r",
        "training_file: training_method is dpo",
        "validation_file:",
        "line 2",
        "wandb_conn_id",
    ):
        assert expected in text, expected
    assert emu.admin.count(UPLOAD) == 0


def test_a_static_config_error_and_a_bad_file_line_arrive_together(emu: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\nnot json\n'
    )
    with pytest.raises(AirflowFailException) as info:
        run(tmp_path, training_file=str(bad), n_epochs=0)
    assert "n_epochs" in str(info.value)
    assert "line 2" in str(info.value)
    assert emu.admin.count("GET /v1/fine-tunes/models/limits") == 0  # a static error costs no HTTP call


def test_a_resumed_job_is_checked_against_its_parents_model(emu: Any, tmp_path: Path) -> None:
    parent = run(tmp_path, task_id="parent")
    uploads = emu.admin.count(UPLOAD)
    with pytest.raises(AirflowFailException, match="lora_r"):
        run(tmp_path, task_id="resume", from_checkpoint=parent["job_id"], lora_r=100000)
    assert emu.admin.count(UPLOAD) == uploads


def test_an_unknown_checkpoint_is_named_before_any_upload(emu: Any, tmp_path: Path) -> None:
    with pytest.raises(AirflowFailException, match="from_checkpoint: Together has no such job"):
        run(tmp_path, from_checkpoint="ft-00000000-0000-0000-0000-000000000000")
    assert emu.admin.count(UPLOAD) == 0


# -- 3. one read of a local file before the upload --------------------------------------------------


class ReadCounter:
    """Counts the bytes read from one file, apart for reads made by the upload itself."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)
        self.before_upload = 0
        self.by_upload = 0

    def count(self, n: int) -> None:
        # The upload streams the body through file_chunks(); any other reader is one of the checks.
        frame, uploading = sys._getframe(1), False
        while frame is not None:
            if frame.f_code.co_name in ("file_chunks", "afile_chunks"):
                uploading = True
                break
            frame = frame.f_back
        if uploading:
            self.by_upload += n
        else:
            self.before_upload += n


def install_read_counter(monkeypatch: pytest.MonkeyPatch, counter: ReadCounter) -> None:
    real_open, real_fileio = builtins.open, io.FileIO

    class CountingFileIO(real_fileio):  # type: ignore[misc, valid-type]
        def readinto(self, buffer: Any) -> int | None:
            n = super().readinto(buffer)
            if n and self.name == counter.target:
                counter.count(n)
            return n

        def read(self, size: int = -1) -> bytes:
            data = super().read(size)
            if data and self.name == counter.target:
                counter.count(len(data))
            return data

    def counting_open(file: Any, mode: str = "r", buffering: int = -1, *args: Any, **kwargs: Any) -> Any:
        if str(file) != counter.target or "b" not in mode or "r" not in mode:
            return real_open(file, mode, buffering, *args, **kwargs)
        raw = CountingFileIO(str(file), "rb")
        return raw if buffering == 0 else io.BufferedReader(raw)

    monkeypatch.setattr(io, "FileIO", CountingFileIO)
    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr(builtins, "open", counting_open)


def test_a_local_file_is_read_once_before_the_upload(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_training_file(tmp_path / "big.jsonl", n=40_000)  # a few MB: several checker blocks
    size = path.stat().st_size
    counter = ReadCounter(path)
    install_read_counter(monkeypatch, counter)
    assert run(tmp_path, training_file=str(path))["status"] == "completed"
    assert counter.by_upload == size  # the bytes were sent once
    # Checker, checksum and file inspection: one streaming pass.
    assert 0 < counter.before_upload <= 1.05 * size


# -- 4. answers a retry cannot change fail the task at once ------------------------------------------


@pytest.mark.parametrize("route", [ESTIMATE, CREATE])
@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_client_error_fails_without_retry_carrying_togethers_message(
    emu: Any, tmp_path: Path, route: str, status: int
) -> None:
    emu.admin.add_fault(route, "status", status=status, message=f"Together says no ({status})")
    with pytest.raises(AirflowFailException, match=rf"Together says no \({status}\)"):
        run(tmp_path)
    assert created(emu) == 0


@pytest.mark.parametrize("route", [ESTIMATE, CREATE])
@pytest.mark.parametrize("status", [401, 403])
def test_an_auth_error_fails_without_retry_and_points_at_the_connection(
    emu: Any, tmp_path: Path, route: str, status: int
) -> None:
    emu.admin.add_fault(route, "status", status=status, message="Invalid API key")
    with pytest.raises(
        AirflowFailException, match="Invalid API key.*check the password \\(API key\\) and host"
    ):
        run(tmp_path)
    assert created(emu) == 0


@pytest.mark.parametrize("route", [ESTIMATE, CREATE])
@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 408},
        {"kind": "status", "status": 429},
        {"kind": "status", "status": 503},
        {"kind": "drop"},
    ],
    ids=["408", "429", "503", "dropped-connection"],
)
def test_transient_errors_stay_retryable(emu: Any, tmp_path: Path, route: str, fault: dict[str, Any]) -> None:
    emu.admin.add_fault(route, **fault)
    with pytest.raises(TogetherError) as info:
        run(tmp_path, max_price_usd=1000)
    assert not isinstance(info.value, AirflowFailException)
    assert created(emu) == 0


# -- 6. checkpoints download anywhere ----------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_checkpoint_downloads_to_object_storage(emu: Any, tmp_path: Path, scheme: str) -> None:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.operators import TogetherDownloadCheckpointOperator

    if scheme == "memory":
        import fsspec
        from airflow.sdk.io import attach

        attach("memory", fs=fsspec.filesystem("memory"))  # Airflow registers only file:// by itself
    job_id = run(tmp_path)["job_id"]
    reference = TogetherHook().download_fine_tune(job_id, tmp_path / "reference.tar.zst").read_bytes()
    base = f"file://{tmp_path}/store/" if scheme == "file" else "memory://bucket/checkpoints/"
    if scheme == "file":
        (tmp_path / "store").mkdir()
    for dest, name in (
        (ObjectStoragePath(base), None),
        (ObjectStoragePath(base + "model.tar.zst"), "model.tar.zst"),
    ):
        where = TogetherDownloadCheckpointOperator(task_id="dl", job_id=job_id, dest=dest).execute(
            make_context()
        )
        written = ObjectStoragePath(where) if scheme == "memory" else Path(where)
        assert written.read_bytes() == reference
        if name:
            assert str(where).endswith(name)


# -- 7. a public surface that matches the docs -------------------------------------------------------


def test_public_names_are_importable_and_listed() -> None:
    import airflow_provider_together.exceptions as exceptions
    import airflow_provider_together.operators as operators

    assert "FineTuneResult" in operators.__all__
    assert operators.FineTuneResult.__annotations__["job_id"]
    assert "TogetherJobUserError" in exceptions.__all__
    assert issubclass(exceptions.TogetherJobUserError, AirflowFailException)
    for name in ("poll_interval", "timeout", "wandb_conn_id", "hf_conn_id", "max_price_usd"):
        assert name in TogetherFineTuneOperator.template_fields


def test_templated_poll_interval_and_timeout_are_rendered_numbers(emu: Any, tmp_path: Path) -> None:
    result = run(tmp_path, poll_interval="0.05", timeout="600")
    assert result["status"] == "completed"
    with pytest.raises(AirflowFailException, match="poll_interval: must be a number"):
        run(tmp_path, task_id="bad", poll_interval="soon")
