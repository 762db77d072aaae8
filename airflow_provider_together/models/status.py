"""
Job and file statuses, and :func:`classify`: the one place in the package that interprets a job status.

Statuses are enums so that no caller compares bare strings. Values the API adds later map to ``UNKNOWN``
instead of crashing a running DAG (together-python #246 was exactly that crash); a job whose status is
unknown is treated as still running, so the caller's timeout bounds it.

.. seealso:: https://docs.together.ai/reference/get-fine-tunes-id
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["EvaluationStatus", "FileProcessingStatus", "JobStatus", "Outcome", "classify"]


class _TolerantStatus(str, Enum):
    """A status read from the API: matched case-insensitively, ``UNKNOWN`` for anything new."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        # Case and whitespace differ between API generations; anything else is a status added after this
        # release, which must not crash a poll loop.
        if isinstance(value, str):
            normalised = value.strip().lower()
            for member in cls:
                if member.value.lower() == normalised:
                    return member
        return cls["UNKNOWN"]


class JobStatus(_TolerantStatus):
    """
    Status of a fine-tuning job, as sent by the API (``FineTuneJob.status``).

    ``user_error`` is missing from the OpenAPI spec but sent by the service and listed in both SDKs'
    terminal set. Any other unknown value becomes ``UNKNOWN`` (see :meth:`_missing_`).
    """

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    COMPRESSING = "compressing"
    UPLOADING = "uploading"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"
    ERROR = "error"
    USER_ERROR = "user_error"
    COMPLETED = "completed"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """Whether the job can no longer change (the SDKs' ``COMPLETED_STATUSES``)."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {JobStatus.COMPLETED, JobStatus.CANCELLED, JobStatus.ERROR, JobStatus.USER_ERROR}
)
SUCCESS_STATUSES = frozenset({JobStatus.COMPLETED})


class Outcome(str, Enum):
    """What a job's status means for the Airflow task waiting on it."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


_OUTCOMES: dict[JobStatus, Outcome] = {
    JobStatus.PENDING: Outcome.RUNNING,
    JobStatus.QUEUED: Outcome.RUNNING,
    JobStatus.RUNNING: Outcome.RUNNING,
    JobStatus.COMPRESSING: Outcome.RUNNING,
    JobStatus.UPLOADING: Outcome.RUNNING,
    # The cancellation is not done until the server says ``cancelled``; the job may still finish.
    JobStatus.CANCEL_REQUESTED: Outcome.RUNNING,
    JobStatus.CANCELLED: Outcome.CANCELLED,
    JobStatus.ERROR: Outcome.FAILED,
    JobStatus.USER_ERROR: Outcome.FAILED,
    JobStatus.COMPLETED: Outcome.SUCCEEDED,
    # A status added after this release: keep waiting (bounded by the caller's timeout), never fail a
    # job that may be training fine.
    JobStatus.UNKNOWN: Outcome.RUNNING,
}


class EvaluationStatus(_TolerantStatus):
    """
    Status of an evaluation job (``EvaluationJob.status``): ``pending -> queued -> running -> completed``.

    ``error`` and ``user_error`` (e.g. a dataset column no template uses) are the failures; evaluations cannot
    be cancelled through the API, so there is no ``cancelled``. Unknown values become ``UNKNOWN``.
    """

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"
    USER_ERROR = "user_error"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """Whether the evaluation can no longer change."""
        return _EVALUATION_OUTCOMES[self] is not Outcome.RUNNING


_EVALUATION_OUTCOMES: dict[EvaluationStatus, Outcome] = {
    EvaluationStatus.PENDING: Outcome.RUNNING,
    EvaluationStatus.QUEUED: Outcome.RUNNING,
    EvaluationStatus.RUNNING: Outcome.RUNNING,
    EvaluationStatus.COMPLETED: Outcome.SUCCEEDED,
    EvaluationStatus.ERROR: Outcome.FAILED,
    EvaluationStatus.USER_ERROR: Outcome.FAILED,
    # As for fine-tunes: a status added after this release means "keep waiting", bounded by the timeout.
    EvaluationStatus.UNKNOWN: Outcome.RUNNING,
}


def classify(job_or_status: Any) -> Outcome:
    """
    Map a job (or its status) to the outcome the waiting task acts on.

    The sync wait loops, the sensor's ``poke`` and the trigger's ``run`` all call this, so the status tables
    exist exactly once. Evaluations are told apart by their status type (:class:`EvaluationStatus`).

    :param job_or_status: a :class:`~airflow_provider_together.models.FineTuneJob` or
        :class:`~airflow_provider_together.models.EvaluationJob`, a :class:`JobStatus` or
        :class:`EvaluationStatus`, or a raw fine-tuning status string (unknown strings count as running and
        are logged as a warning).
    """
    raw = getattr(job_or_status, "status", job_or_status)
    if isinstance(raw, EvaluationStatus):
        if raw is EvaluationStatus.UNKNOWN:
            shown = getattr(job_or_status, "status_raw", None) or raw
            log.warning("Unknown evaluation status %r; treating the evaluation as still running.", shown)
        return _EVALUATION_OUTCOMES[raw]
    status = raw if isinstance(raw, JobStatus) else JobStatus(raw)
    if status is JobStatus.UNKNOWN:
        shown = getattr(job_or_status, "status_raw", None) or raw
        log.warning("Unknown fine-tuning job status %r; treating the job as still running.", shown)
    return _OUTCOMES[status]


class FileProcessingStatus(_TolerantStatus):
    """
    Server-side validation state of an uploaded file (``FileObject.processing_status``).

    Only ``COMPLETED`` means the file can be used for fine-tuning; ``FAILED`` and ``INVALID_FORMAT`` are final.
    """

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    INVALID_FORMAT = "INVALID_FORMAT"
    UNKNOWN = "UNKNOWN"

    @property
    def is_ready(self) -> bool:
        """Whether the file passed validation and can be used in a job."""
        return self is FileProcessingStatus.COMPLETED

    @property
    def is_failed(self) -> bool:
        """Whether validation ended without a usable file."""
        return self in (FileProcessingStatus.FAILED, FileProcessingStatus.INVALID_FORMAT)
