"""
Reattach instead of resubmit: find the job this task instance already paid for.

A fine-tune costs real money, and Airflow retries tasks, clears them, and kills workers between "the API
created the job" and "the task remembered it". Two sources of truth, in order:

1. **The task state store** (Airflow 3.3+, rows keyed by DAG run, task and map index, so every try of a
   task instance shares them). Before the create call we write ``{fingerprint, submit_started_at}``; right
   after it, the job id. A later try with the same config fingerprint reuses that job.
2. **The job list** (Airflow 3.1 / 3.2, a record without a job id, and after an ambiguous submit on any
   version): a job with the same training file, model and suffix created after the attempt started. To
   make this match exact, a job submitted *without* a user suffix gets a deterministic marker suffix
   ``airflow-<12 hex>`` derived from (dag_id, run_id, task_id, map_index, config fingerprint). It is the only
   place the marker can travel through Together unchanged (the suffix is echoed on the job and ends up in
   the output model name). A user-chosen suffix is never overwritten; the match then relies on file, model,
   the exact suffix, the echoed hyperparameters (:data:`ECHOED`: what tells a sweep's mapped tasks apart
   when they share a suffix) and creation time.

A running or completed job is reused; a failed, cancelled or ``cancel_requested`` one is replaced by a new
submission.

**A deferral a user cut short is not a crash.** Clearing (or marking) a deferred task makes Airflow 3.3
cancel its job from the old trigger's ``on_kill``, asynchronously: the new try may start before, during or
after that. So the operator marks the record ``deferred_try=<try>`` just before deferring and clears the mark
when the try resumes. A new try that finds another try's mark knows that deferral never resumed: Airflow
gave up on that job. With ``cancel_on_kill`` it cancels the job itself (idempotent with ``on_kill``), waits
until it ended, and submits a fresh one: the decision rests on a mark written before any user could act,
not on who cancels first. A worker crash, a lost-contact error or a trigger timeout leaves no mark (the try
never deferred or did resume), so those retries still reattach.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_together.exceptions import (
    TogetherAmbiguousSubmitError,
    TogetherError,
    TogetherNotFoundError,
)

if TYPE_CHECKING:
    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.models import FineTuneJob

__all__ = [
    "ECHOED",
    "ECHO_RTOL",
    "STATE_KEY",
    "JobSearch",
    "JobStateStore",
    "comms_errors",
    "created_since",
    "echoed_numbers",
    "find_previous_job",
    "marker_suffix",
    "submit_once",
    "suffix_matches",
]

log = logging.getLogger(__name__)

STATE_KEY = "together_fine_tune_job"
#: Field of the record: the try that deferred on the job and has not resumed yet (``None`` otherwise).
DEFERRED_TRY = "deferred_try"
MARKER_PREFIX = "airflow-"
#: Tolerated clock difference between the worker and Together when comparing creation times.
CLOCK_SKEW_S = 300.0
#: After an ambiguous create, how often and how long to look for the job before giving up (the list may
#: lag the create by a moment).
RECONCILE_ATTEMPTS = 5
RECONCILE_DELAY_S = 2.0


def comms_errors() -> tuple[type[BaseException], ...]:
    """
    Return what Airflow's XCom / task state store calls raise when they cannot serve a request.

    No supervisor channel in this process (ImportError of SUPERVISOR_COMMS), a closed channel, or a request
    the API refused (``AirflowRuntimeError`` of the Task SDK).
    """
    errors: tuple[type[BaseException], ...] = (ImportError, RuntimeError, TypeError, OSError)
    try:
        from airflow.sdk.exceptions import AirflowRuntimeError
    except ImportError:  # defensive: the Task SDK has had it since Airflow 3.0
        return errors
    return (AirflowRuntimeError, *errors)


def marker_suffix(dag_id: str, run_id: str, task_id: str, map_index: int, fingerprint: str) -> str:
    """Return the deterministic suffix that identifies this task instance's job (20 chars, within the 40 limit)."""
    basis = "\x1f".join((dag_id, run_id, task_id, str(map_index), fingerprint))
    return MARKER_PREFIX + hashlib.sha256(basis.encode()).hexdigest()[:12]


class JobStateStore:
    """The Airflow 3.3 ``task_state_store`` of the running task, or a no-op on older versions."""

    def __init__(self, context: Mapping[str, Any]) -> None:
        self._store = context.get("task_state_store")
        # Read once per try and kept in step with put(): only this try writes the record, and every read is a
        # call to Airflow's execution API (the abandoned-deferral check, the reattach and the estimate read it).
        self._record: dict[str, Any] | None = None
        self._read = False

    @property
    def available(self) -> bool:
        """Whether this Airflow keeps per-task-instance state across tries."""
        return self._store is not None

    def get(self) -> dict[str, Any] | None:
        """Return the record of the last submission, if any."""
        if self._store is None:
            return None
        if not self._read:
            value = self._store.get(STATE_KEY)
            self._record, self._read = (value if isinstance(value, dict) else None), True
        return self._record

    def put(self, record: dict[str, Any]) -> None:
        """Write the record at once: the next try depends on it."""
        if self._store is not None:
            self._store.set(STATE_KEY, record)
            self._record, self._read = record, True

    def recorded_estimate(self, job_id: str) -> float | None:
        """The price estimate recorded with ``job_id`` when it was submitted, if this store has it."""
        record = self.get()
        if record is None or record.get("job_id") != job_id:
            return None
        from airflow_provider_together._fine_tune.price import dollars

        return dollars(record.get("estimated_usd"))

    def mark_deferred(self, job_id: str, try_number: int) -> None:
        """
        Record that try ``try_number`` hands job ``job_id`` to the triggerer (written just before deferring).

        A later try that still finds this mark knows the deferral never resumed: a user cleared or marked
        the deferred task, and Airflow gave up on that job (on 3.3 the trigger's ``on_kill`` cancels it).
        """
        record = self.get()
        if record is not None:
            self.put({**record, "job_id": job_id, DEFERRED_TRY: try_number})

    def mark_resumed(self) -> None:
        """Clear the deferral mark: the trigger fired and this try resumed, so a retry may reattach."""
        record = self.get()
        if record is not None and record.get(DEFERRED_TRY) is not None:
            self.put({**record, DEFERRED_TRY: None})

    def abandoned_deferral(self, try_number: int | None) -> tuple[int, str] | None:
        """Return ``(try, job_id)`` when an earlier try deferred on a job and never resumed, else ``None``."""
        record = self.get()
        if record is None or not isinstance(try_number, int):
            return None
        deferred_try = record.get(DEFERRED_TRY)
        job_id = record.get("job_id")
        if not isinstance(deferred_try, int) or deferred_try == try_number:
            return None
        if not isinstance(job_id, str) or not job_id:
            return None
        return deferred_try, job_id


#: Numbers a job echoes from its create request, as dotted paths into the body. A search compares each one
#: both sides carry. Mapped tasks of one sweep share the training file and model and may share a suffix; what
#: they submit differs here (a learning rate, a LoRA rank, a DPO beta...). Strings are left out: the server
#: resolves some (``batch_size: "max"``, ``train_on_inputs: "auto"``), and a job that fails to match its own
#: request would be submitted again.
ECHOED = (
    "learning_rate",
    "n_epochs",
    "n_checkpoints",
    "n_evals",
    "batch_size",
    "warmup_ratio",
    "max_grad_norm",
    "weight_decay",
    "max_seq_length",
    "random_seed",
    "training_type.lora_r",
    "training_type.lora_alpha",
    "training_type.lora_dropout",
    "training_method.dpo_beta",
    "training_method.rpo_alpha",
    "training_method.simpo_gamma",
)
#: Relative tolerance of a number compare: a server that keeps floats in single precision still matches.
ECHO_RTOL = 1e-6


def echoed_numbers(source: Mapping[str, Any] | FineTuneJob) -> dict[str, float]:
    """The :data:`ECHOED` numbers of a create body or of a job (fields the server left out are skipped)."""
    # A job's echoed inputs are declared fields or, for the ones the model does not declare, extras; the
    # dump holds both.
    body = source if isinstance(source, Mapping) else source.model_dump(exclude={"events", "progress"})
    found: dict[str, float] = {}
    for path in ECHOED:
        value: Any = body
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found[path] = float(value)
    return found


def suffix_matches(suffix: str, job: FineTuneJob) -> bool:
    """
    Whether ``job`` carries exactly ``suffix``: its echoed ``suffix``, else the end of its output model name.

    Together names the model ``<account>/<base>-<suffix>-<id>``. A substring test would let ``sweep-1`` match a
    sibling's ``sweep-12`` and hand one task another task's job, so the name must end with the suffix, then
    at most one ``-<id>`` part (which has no ``-`` of its own).
    """
    if job.suffix is not None:
        return job.suffix == suffix
    name = job.model_output_name or ""
    return re.search(rf"(?:^|[-/]){re.escape(suffix)}(?:-[0-9A-Za-z]+)?$", name) is not None


@dataclass(frozen=True)
class JobSearch:
    """What identifies this task's job in the job list."""

    training_file: str
    model: str | None
    suffix: str | None
    not_before: float
    #: The request's :data:`ECHOED` numbers (:func:`echoed_numbers`); each is compared when the job echoes it.
    echoed: Mapping[str, float] = field(default_factory=dict)

    def matches(self, job: FineTuneJob, not_before: float | None = None) -> bool:
        """Whether ``job`` looks like the one this task submitted."""
        if job.training_file != self.training_file:
            return False
        if self.model and job.model and job.model != self.model:
            return False
        if self.suffix and not suffix_matches(self.suffix, job):
            return False
        if not created_since(job.created_at, self.not_before if not_before is None else not_before):
            return False
        got = echoed_numbers(job)  # last: it dumps the job's model
        return all(
            math.isclose(got[path], wanted, rel_tol=ECHO_RTOL)
            for path, wanted in self.echoed.items()
            if path in got
        )

    def find(self, hook: TogetherHook, not_before: float | None = None) -> FineTuneJob | None:
        """Return the newest matching job in the account's job list."""
        found = [job for job in hook.list_fine_tunes() if self.matches(job, not_before)]
        found.sort(key=lambda job: _epoch(job.created_at) or 0.0)
        return found[-1] if found else None


def created_since(created_at: str | float | None, bound: float) -> bool:
    """Whether a job created at ``created_at`` can be one started at or after ``bound`` (minus clock skew).

    A job without a readable creation time passes: the other criteria must then tell it apart.
    """
    created = _epoch(created_at)
    return created is None or created >= bound - CLOCK_SKEW_S


def _epoch(value: str | float | None) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def find_previous_job(
    hook: TogetherHook, store: JobStateStore, fingerprint: str, search: JobSearch
) -> FineTuneJob | None:
    """
    Return the job a previous try of this task instance submitted with the same config, if any.

    The caller decides what to do with it (reuse when running or completed, replace when failed).
    """
    record = store.get()
    if record is not None:
        if record.get("fingerprint") != fingerprint:
            log.info("The config changed since the last try (fingerprint differs): submitting a new job")
            return None
        job_id = record.get("job_id")
        if isinstance(job_id, str) and job_id:
            try:
                return hook.get_fine_tune(job_id)
            except TogetherNotFoundError:
                log.warning("Job %s recorded by a previous try no longer exists", job_id)
                return None
        # The previous try started a create but never learned the job id (crash or ambiguous answer).
        started = record.get("submit_started_at")
        return search.find(hook, float(started) if isinstance(started, (int, float)) else None)
    if store.available:
        # Airflow 3.3+ and nothing recorded: no try of this task instance ever reached the create call.
        return None
    return search.find(hook)


def submit_once(
    hook: TogetherHook,
    request: Mapping[str, Any],
    *,
    store: JobStateStore,
    fingerprint: str,
    search: JobSearch,
    estimated_usd: float | None = None,
) -> FineTuneJob:
    """
    Create the job exactly once, recording the attempt before and the job id right after the call.

    :param estimated_usd: the price estimate checked before the call, kept with the job id so that a try that
        reattaches can show it again (the Together tab reads it from XCom, which a new try starts without).

    :raises TogetherError: the create was ambiguous and the job could not be found; the request is never
        resent, and the next try looks for the job again.
    """
    started = time.time()
    store.put({"job_id": None, "fingerprint": fingerprint, "submit_started_at": started})
    try:
        job = hook.create_fine_tune(request)
    except TogetherAmbiguousSubmitError as exc:
        log.warning("The create call may have succeeded (%s); looking for the job instead of resending", exc)
        for attempt in range(RECONCILE_ATTEMPTS):
            found = search.find(hook, not_before=started)
            if found is not None:
                log.info("Found the job created by the ambiguous call: %s", found.id)
                job = found
                break
            if attempt + 1 < RECONCILE_ATTEMPTS:
                time.sleep(RECONCILE_DELAY_S)
        else:
            raise TogetherError(
                "Together may or may not have created the fine-tuning job and it is not in the job list yet; "
                "the request was not resent. A retry of this task looks for the job again before submitting."
            ) from exc
    store.put(
        {
            "job_id": job.id,
            "fingerprint": fingerprint,
            "submit_started_at": started,
            "estimated_usd": estimated_usd,
        }
    )
    return job
