"""
The emulator's whole state: settings, clock, files, jobs, evaluations, fault rules and request counts, plus the glue that
writes mutations to SQLite when ``--state`` is given.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_together.emulator.catalog import load_catalog
from airflow_provider_together.emulator.clock import Clock
from airflow_provider_together.emulator.evals import EvalStore
from airflow_provider_together.emulator.faults import Faults
from airflow_provider_together.emulator.files import FileRecord, FileStore
from airflow_provider_together.emulator.jobs import JobRecord, JobStore, price_usd
from airflow_provider_together.emulator.validation import resolve_request
from airflow_provider_together.models.status import FileProcessingStatus

if TYPE_CHECKING:
    from airflow_provider_together.emulator.persistence import Persistence

__all__ = ["EmulatorState", "Settings"]


@dataclass
class Settings:
    """
    Tunables, set by CLI flags and ``PATCH /_emulator/settings``.

    :param api_key: the only accepted Bearer key.
    :param speed: virtual seconds per wall second (``--speed``).
    :param credit_limit_usd: ``user_limit`` of price estimates; above it ``allowed_to_proceed`` is false.
    :param min_charge_usd: Together's minimum charge per job.
    :param multipart_threshold_bytes: single-PUT uploads above this are refused (use multipart), like S3's 5 GiB.
    :param min_part_size_bytes: every multipart part but the last must be at least this big.
    :param max_parts: most parts a multipart upload may have.
    """

    api_key: str = "emulator-key"
    speed: float = 1.0
    credit_limit_usd: float = 100.0
    min_charge_usd: float = 4.0
    multipart_threshold_bytes: int = 5 * 2**30
    min_part_size_bytes: int = 5 * 2**20
    max_parts: int = 250

    def public(self) -> dict[str, Any]:
        """Settings without the API key (the admin API never shows it)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "api_key"}


class EmulatorState:
    """
    Everything the routes read and change.

    :param settings: initial settings.
    :param store: SQLite persistence, or ``None`` for in-memory state.
    :param seed: seed for fault-rate draws.
    """

    def __init__(self, settings: Settings, store: Persistence | None = None, seed: int | None = None) -> None:
        self.settings = settings
        self.initial = dataclasses.replace(settings)
        self.store = store
        self.catalog = load_catalog()
        self.faults = Faults(seed)
        self.counts: Counter[str] = Counter()
        anchors = store.get_meta("clock") if store else None
        self.clock = Clock([tuple(a) for a in anchors]) if anchors else Clock.start(settings.speed)
        if store is not None:
            # Settings come from the command line; the state file keeps files, jobs and the clock, so jobs go
            # on progressing across a restart (at the new --speed from now on, if it changed).
            if self.clock.speed != settings.speed:
                self.clock.set_speed(settings.speed)
            data_dir = store.path.with_name(store.path.name + ".files")
            data_dir.mkdir(exist_ok=True)
        else:
            data_dir = Path(tempfile.mkdtemp(prefix="together-emulator-"))
        self._owns_data_dir = store is None
        self.files = FileStore(data_dir, self.clock)
        self.files.on_change = self.save_file
        self.jobs = JobStore(self.clock)
        # Evaluations live in memory only (``--state`` keeps files, jobs and the clock).
        self.evals = EvalStore(self.clock, self.files)
        if store is not None:
            self._load(store)
            self.save_meta()

    def _load(self, store: Persistence) -> None:
        for row in store.load("files"):
            record = FileRecord(**row)
            self.files.files[record.id] = record
        for row in store.load("jobs"):
            job = JobRecord.from_row(row)
            self.jobs.jobs[job.spec.job_id] = job

    def save_file(self, record: FileRecord) -> None:
        """Persist one file record (no-op in memory mode)."""
        if self.store is not None:
            self.store.put("files", record.id, record.to_row())

    def save_job(self, record: JobRecord) -> None:
        """Persist one job record (no-op in memory mode)."""
        if self.store is not None:
            self.store.put("jobs", record.spec.job_id, record.to_row())

    def save_meta(self) -> None:
        """Persist the clock (settings are the command line's)."""
        if self.store is not None:
            self.store.put_meta("clock", self.clock.anchors)

    def update_settings(self, changes: dict[str, Any]) -> None:
        """Apply admin changes; an unknown or mistyped setting is a ValueError naming it."""
        for key, value in changes.items():
            if key == "api_key" or not hasattr(self.settings, key):
                raise ValueError(f"unknown setting {key!r}")
            current = getattr(self.settings, key)
            floor_ok = isinstance(value, (int, float)) and (
                value >= 0 if key == "min_charge_usd" else value > 0
            )
            if isinstance(value, bool) or not floor_ok:
                raise ValueError(f"setting {key!r} must be a positive number")
            setattr(self.settings, key, type(current)(value))
            if key == "speed":
                self.clock.set_speed(float(value))
        self.save_meta()

    def reset(self) -> None:
        """Forget files, jobs, faults, scenarios and counts; restore the start-up settings."""
        for file_id in list(self.files.files):
            self.files.delete(file_id)
        self.jobs.jobs.clear()
        self.evals.reset()
        self.faults.reset()
        self.counts.clear()
        self.settings = dataclasses.replace(self.initial)
        if self.clock.speed != self.settings.speed:
            self.clock.set_speed(self.settings.speed)
        if self.store is not None:
            self.store.clear()
        self.save_meta()

    def create_job(self, body: Any) -> JobRecord:
        """Validate a create request and register the job."""
        resolved = resolve_request(
            body, catalog=self.catalog, files=self.files, parent_of=self.jobs.parent, now_v=self.clock.now()
        )
        scenario, params = self.faults.scenario_for(resolved.echo["model"], resolved.echo.get("suffix"))
        record = self.jobs.create(
            resolved, scenario=scenario, params=params, min_charge=self.settings.min_charge_usd
        )
        self.save_job(record)
        return record

    def estimate(self, body: Any) -> dict[str, Any]:
        """Answer ``POST /fine-tunes/estimate-price`` (v3 shape, with the unavailable variant)."""
        now_v = self.clock.now()
        for param, reason in (("training_file", "train"), ("validation_file", "eval")):
            file_id = body.get(param) if isinstance(body, dict) else None
            if not file_id:
                continue
            record = self.files.get(file_id)
            status = record.status(now_v)
            if status is FileProcessingStatus.PENDING:
                return {"estimation_available": False, "unavailable_reason": f"{reason}_file_not_validated"}
            if status is not FileProcessingStatus.COMPLETED:
                return {"estimation_available": False, "unavailable_reason": f"{reason}_file_invalid"}
            if (record.check or {}).get("dataset_is_multimodal"):
                return {"estimation_available": False, "unavailable_reason": "multimodal_dataset"}
        request = dict(body) if isinstance(body, dict) else body
        if isinstance(request, dict):
            request.setdefault("n_checkpoints", 1)
        resolved = resolve_request(
            request, catalog=self.catalog, files=self.files, parent_of=self.jobs.parent, now_v=now_v
        )
        dollars, train, evals = price_usd(
            resolved, resolved.echo["n_epochs"], resolved.echo["n_evals"], self.settings.min_charge_usd
        )
        return {
            "estimation_available": True,
            "estimated_total_price": dollars,
            "allowed_to_proceed": dollars <= self.settings.credit_limit_usd,
            "user_limit": self.settings.credit_limit_usd,
            "estimated_train_token_count": train,
            "estimated_eval_token_count": evals,
        }

    def close(self) -> None:
        """Release the database and, in memory mode, the uploaded bytes."""
        if self.store is not None:
            self.store.close()
        if self._owns_data_dir:
            shutil.rmtree(self.files.data_dir, ignore_errors=True)
