"""Pure pieces of the emulator, in process: clock, lifecycle plan, Range parsing, catalogue, persistence."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from airflow_provider_together.emulator.archive import build_archive, parse_range
from airflow_provider_together.emulator.catalog import load_catalog
from airflow_provider_together.emulator.clock import Clock, iso
from airflow_provider_together.emulator.errors import APIError
from airflow_provider_together.emulator.jobs import JobRecord
from airflow_provider_together.emulator.persistence import Persistence
from airflow_provider_together.emulator.timeline import JobSpec, Scenario, plan, progress_at


def spec(**changes: object) -> JobSpec:
    base = {
        "job_id": "ft-1",
        "model": "Qwen/Qwen3-8B",
        "output_name": "acct/Qwen3-8B-x-1234abcd",
        "created_v": 1000.0,
        "n_epochs": 2,
        "n_checkpoints": 4,
        "n_evals": 2,
        "steps_per_epoch": 50,
        "queue_ahead": 0,
        "token_count": 10_000,
        "param_count": 8_000_000_000,
        "lora": True,
        "has_validation": True,
        "wandb_url": None,
    }
    base.update(changes)
    return JobSpec(**base)  # type: ignore[arg-type]


def test_changing_speed_keeps_the_past_where_it_was() -> None:
    clock = Clock.start(1.0)
    past = clock.now() - 5
    before = clock.wall_of(past)
    clock.set_speed(100.0)
    assert clock.wall_of(past) == pytest.approx(before)
    assert clock.speed == 100.0
    start = clock.now()
    time.sleep(0.05)
    assert clock.now() - start >= 4.0  # 0.05 s of wall time at 100x
    with pytest.raises(ValueError, match="speed"):
        clock.set_speed(0)
    assert iso(0).startswith("1970-01-01T00:00:00.000")


def test_plan_reaches_completed_with_all_counters() -> None:
    job = spec()
    result = plan(job)
    statuses = [status for status, _ in result.stages]
    assert statuses == ["pending", "queued", "running", "compressing", "uploading", "completed"]
    end = progress_at(job, result, result.stages[-1][1] + 1)
    assert (end.status, end.steps, end.epochs, end.evals) == ("completed", 100, 2, 2)
    middle = progress_at(job, result, (result.train_start + result.train_end) / 2)
    assert middle.status == "running"
    assert 0 < middle.steps < 100
    assert [cp["step"] for _, cp in result.checkpoints][:3] == [25, 50, 75]


def test_cancel_and_scenarios_cut_the_plan() -> None:
    job = spec()
    middle = (plan(job).train_start + plan(job).train_end) / 2
    cancelled = plan(spec(cancel_v=middle))
    assert [s for s, _ in cancelled.stages][-2:] == ["cancel_requested", "cancelled"]
    assert progress_at(job, cancelled, middle + 100).steps == progress_at(job, cancelled, middle).steps
    failed = plan(spec(scenario=Scenario.ERROR, scenario_params={"at": 0.25}))
    assert failed.stages[-1][0] == "error"
    assert failed.events[-2][1]["level"] == "error"
    odd = plan(spec(scenario=Scenario.UNKNOWN_STATUS, scenario_params={"status": "weird"}))
    assert "weird" in [s for s, _ in odd.stages]
    assert odd.stages[-1][0] == "completed"


def test_a_late_scenario_never_rewrites_what_was_already_shown() -> None:
    now = plan(spec()).train_end - 1  # nearly done training
    late = plan(spec(scenario=Scenario.ERROR, scenario_params={"at": 0.1}, scenario_not_before=now))
    assert late.stages[-1] == ("error", pytest.approx(now + 0.2))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-1", (0, 1)),
        ("bytes=5-", (5, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=0-500", (0, 99)),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


def test_unsatisfiable_range_is_416() -> None:
    with pytest.raises(APIError) as excinfo:
        parse_range("bytes=100-", 100)
    assert excinfo.value.status_code == 416


def test_archive_is_deterministic() -> None:
    assert build_archive("ft-1", "a/b", "m", "merged", 10) == build_archive("ft-1", "a/b", "m", "merged", 10)
    assert build_archive("ft-1", "a/b", "m", "merged", 10) != build_archive("ft-1", "a/b", "m", "adapter", 10)


def test_catalogue_limits_are_consistent() -> None:
    catalog = load_catalog()
    assert len(catalog.names()) >= 6
    for name in catalog.names():
        entry = catalog.get(name)
        assert entry is not None
        lora = entry.limits["lora_training"]
        assert lora["min_batch_size"] <= lora["max_batch_size"]
        assert lora["default_rank"] <= lora["max_rank"]
        full = entry.limits["full_training"]
        assert entry.supports_full == (full["max_batch_size"] > 0)
        assert entry.price_per_million(dpo=True, full=False) > entry.price_per_million(dpo=False, full=False)


def test_job_records_round_trip_through_sqlite(tmp_path: Path) -> None:
    store = Persistence(tmp_path / "state.sqlite")
    record = JobRecord(
        spec(scenario=Scenario.STALL), {"model": "Qwen/Qwen3-8B"}, 1.5, 4_000_000_000, 40, 1234
    )
    store.put("jobs", "ft-1", record.to_row())
    store.put("jobs", "ft-2", record.to_row())
    store.put("jobs", "ft-1", record.to_row())  # an update keeps the listing order
    rows = store.load("jobs")
    store.close()
    restored = JobRecord.from_row(rows[0])
    assert restored.spec == record.spec
    assert restored.echo == record.echo
    assert len(rows) == 2
    reopened = Persistence(tmp_path / "state.sqlite")
    assert reopened.load("jobs")[1] == record.to_row()
    reopened.close()
