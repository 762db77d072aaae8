"""
Tolerant models of what the Evaluations API sends back, and the figures a gate reads from them.

``results`` is read by the job's ``type`` from the raw JSON keys, never by the shape of the object: the v3
SDK picks its results class by shape, and a classify result whose ``label_counts`` is an object parses there
as score results, while ``{"error": ...}`` parses as classify results (reference, section 2.4). So
:class:`EvaluationJob` keeps ``results`` as the raw dict and :meth:`EvaluationJob.summary` builds the typed
view for the job's own type.

.. seealso:: https://docs.together.ai/reference/get-evaluation-jobs-id
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal, TypedDict

from pydantic import Field, field_validator, model_validator

from airflow_provider_together.models.responses import _Response
from airflow_provider_together.models.status import EvaluationStatus

__all__ = [
    "ClassifyResults",
    "CompareResults",
    "EvaluationJob",
    "EvaluationResult",
    "EvaluationStatusUpdate",
    "EvaluationType",
    "ScoreResults",
    "parse_results",
]

log = logging.getLogger(__name__)

EvaluationType = Literal["classify", "score", "compare"]
EVALUATION_TYPES: tuple[str, ...] = ("classify", "score", "compare")


def _number(value: Any) -> float | None:
    """A count or rate as the API sends it (int, float, numeric string, null); anything else is None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class _Results(_Response):
    """Fields every result type carries."""

    generation_fail_count: float | None = None
    judge_fail_count: float | None = None
    result_file_id: str | None = None

    @field_validator("generation_fail_count", "judge_fail_count", mode="before")
    @classmethod
    def _counts(cls, value: Any) -> float | None:
        return _number(value)


class ClassifyResults(_Results):
    """
    Results of a ``classify`` evaluation.

    ``label_counts`` arrives as a JSON *string* (spec, v3 SDK) or as an object (Together's own skills docs);
    both become a dict here. ``pass_percentage`` is a percentage (0-100).
    """

    pass_percentage: float | None = None
    label_counts: dict[str, float] = Field(default_factory=dict)
    invalid_label_count: float | None = None

    @field_validator("pass_percentage", "invalid_label_count", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> float | None:
        return _number(value)

    @field_validator("label_counts", mode="before")
    @classmethod
    def _counts_object(cls, value: Any) -> dict[str, float]:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                log.warning("Unreadable label_counts in evaluation results; ignoring them")
                return {}
        if not isinstance(value, dict):
            return {}
        counts = {str(k): _number(v) for k, v in value.items()}
        return {k: v for k, v in counts.items() if v is not None}


class ScoreResults(_Results):
    """Results of a ``score`` evaluation (``aggregated_scores`` flattened)."""

    mean_score: float | None = None
    std_score: float | None = None
    pass_percentage: float | None = None
    invalid_score_count: float | None = None
    failed_samples: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("aggregated_scores"), dict):
            data = {
                **data["aggregated_scores"],
                **{k: v for k, v in data.items() if k != "aggregated_scores"},
            }
        return data

    @field_validator(
        "mean_score", "std_score", "pass_percentage", "invalid_score_count", "failed_samples", mode="before"
    )
    @classmethod
    def _numbers(cls, value: Any) -> float | None:
        return _number(value)


class CompareResults(_Results):
    """Results of a ``compare`` evaluation: counts only (the API has no win rate; :attr:`win_rate` computes it)."""

    a_wins: int | None = Field(default=None, alias="A_wins")
    b_wins: int | None = Field(default=None, alias="B_wins")
    ties: int | None = Field(default=None, alias="Ties")
    num_samples: int | None = None

    @field_validator("a_wins", "b_wins", "ties", "num_samples", mode="before")
    @classmethod
    def _ints(cls, value: Any) -> int | None:
        number = _number(value)
        return None if number is None else int(number)

    @property
    def win_rate(self) -> float | None:
        """A wins / (A wins + B wins); ties and failures are left out (None when nobody won)."""
        decided = (self.a_wins or 0) + (self.b_wins or 0)
        return None if decided == 0 else (self.a_wins or 0) / decided


def parse_results(
    evaluation_type: str | None, raw: Any
) -> ClassifyResults | ScoreResults | CompareResults | None:
    """
    Read ``results`` for the evaluation's own ``type``; ``None`` when there are none or they hold an error.

    :param evaluation_type: ``classify``, ``score`` or ``compare`` (the job's ``type``).
    :param raw: the ``results`` object as sent by the API.
    """
    if not isinstance(raw, dict) or not raw or (set(raw) <= {"error"}):
        return None
    kind = str(evaluation_type or "")
    if kind == "classify":
        return ClassifyResults.model_validate(raw)
    if kind == "score":
        return ScoreResults.model_validate(raw)
    if kind == "compare":
        return CompareResults.model_validate(raw)
    return None


class EvaluationStatusUpdate(_Response):
    """One entry of ``status_updates`` (admin only, per the spec; often absent)."""

    status: str | None = None
    message: str | None = None
    timestamp: str | None = None


class EvaluationResult(TypedDict):
    """
    The figures of a finished evaluation, as the operator returns them (XCom) and attaches to its outlets.

    Rates are fractions except ``pass_percentage`` (0-100, as Together reports it). Keys that do not apply
    to the type are ``None``.
    """

    evaluation_id: str
    type: str
    status: str
    pass_percentage: float | None
    mean_score: float | None
    std_score: float | None
    label_counts: dict[str, float] | None
    a_wins: int | None
    b_wins: int | None
    ties: int | None
    win_rate: float | None
    generation_fail_count: float | None
    judge_fail_count: float | None
    result_file_id: str | None


class EvaluationJob(_Response):
    """
    An evaluation job (``GET /evaluation/{id}``; also the create answer and the status answer).

    ``status`` is always an :class:`EvaluationStatus` (``UNKNOWN`` for values added after this release);
    ``status_raw`` keeps the string the server sent. ``results`` stays raw: read it with :meth:`summary`.
    """

    workflow_id: str = ""
    type: str | None = None
    status: EvaluationStatus = EvaluationStatus.UNKNOWN
    status_raw: str | None = None
    parameters: dict[str, Any] | None = None
    results: dict[str, Any] | None = None
    status_updates: list[EvaluationStatusUpdate] = Field(default_factory=list)
    created_at: str | None = None
    updated_at: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _keep_raw_status(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("status") is not None and "status_raw" not in data:
            raw = data["status"]
            data = {**data, "status_raw": raw.value if isinstance(raw, EvaluationStatus) else str(raw)}
        return data

    @field_validator("status", mode="before")
    @classmethod
    def _status_or_unknown(cls, value: Any) -> EvaluationStatus:
        return EvaluationStatus(value) if value is not None else EvaluationStatus.UNKNOWN

    @field_validator("results", mode="before")
    @classmethod
    def _results_object(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else None

    @field_validator("status_updates", mode="before")
    @classmethod
    def _updates_list(cls, value: Any) -> Any:
        return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []

    @property
    def id(self) -> str:
        """The evaluation id (the API calls it ``workflow_id``)."""
        return self.workflow_id

    @property
    def error_message(self) -> str | None:
        """Together's own explanation of a failure: ``results.error``, else the newest status update's message."""
        error = (self.results or {}).get("error")
        if isinstance(error, str) and error.strip():
            return error.strip()
        for update in reversed(self.status_updates):
            if update.message and update.message.strip():
                return update.message.strip()
        return None

    def typed_results(self) -> ClassifyResults | ScoreResults | CompareResults | None:
        """``results`` read for this job's ``type`` (see :func:`parse_results`)."""
        return parse_results(self.type, self.results)

    def summary(self) -> EvaluationResult:
        """The figures a gate reads, small and JSON-able (no parameters: they may name external endpoints)."""
        results = self.typed_results()
        summary = EvaluationResult(
            evaluation_id=self.workflow_id,
            type=str(self.type),
            status=self.status_raw or self.status.value,
            pass_percentage=None,
            mean_score=None,
            std_score=None,
            label_counts=None,
            a_wins=None,
            b_wins=None,
            ties=None,
            win_rate=None,
            generation_fail_count=results.generation_fail_count if results else None,
            judge_fail_count=results.judge_fail_count if results else None,
            result_file_id=results.result_file_id if results else None,
        )
        if isinstance(results, ClassifyResults):
            summary["pass_percentage"] = results.pass_percentage
            summary["label_counts"] = results.label_counts
        elif isinstance(results, ScoreResults):
            summary["pass_percentage"] = results.pass_percentage
            summary["mean_score"] = results.mean_score
            summary["std_score"] = results.std_score
        elif isinstance(results, CompareResults):
            summary["a_wins"] = results.a_wins
            summary["b_wins"] = results.b_wins
            summary["ties"] = results.ties
            summary["win_rate"] = results.win_rate
        return summary
