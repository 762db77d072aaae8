"""
The gate: which figures an evaluation must reach for the pipeline to promote the model.

``min_pass_percentage`` (classify, score; 0-100 as Together reports it), ``min_mean_score`` (score) and
``min_win_rate`` (compare: A wins / (A wins + B wins), ties and failures reported beside it). Checked against
the evaluation type before anything is sent; decided on the figures once the evaluation completed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_together.models import EvaluationResult

__all__ = ["Gate", "Verdict"]

Problem = tuple[str, str]
_APPLIES = {
    "min_pass_percentage": ("classify", "score"),
    "min_mean_score": ("score",),
    "min_win_rate": ("compare",),
}
_FIGURE = {
    "min_pass_percentage": "pass_percentage",
    "min_mean_score": "mean_score",
    "min_win_rate": "win_rate",
}


@dataclass(frozen=True)
class Verdict:
    """The gate's decision: passed, or the first figure below its minimum."""

    passed: bool
    message: str
    figure: str | None = None
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Gate:
    """Minimums an evaluation must reach; ``None`` means no minimum on that figure."""

    min_pass_percentage: float | None = None
    min_mean_score: float | None = None
    min_win_rate: float | None = None

    @classmethod
    def coerce(cls, raw: dict[str, Any]) -> tuple[Gate, list[Problem]]:
        """Build a gate from rendered operator arguments (numbers, or strings from templates)."""
        problems: list[Problem] = []
        values: dict[str, float | None] = {}
        for name in _FIGURE:
            value = raw.get(name)
            if value is None or value == "":
                values[name] = None
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                problems.append((name, f"must be a number (got {value!r})"))
                continue
            if isinstance(value, bool) or not math.isfinite(number):
                problems.append((name, f"must be a finite number (got {value!r})"))
                continue
            values[name] = number
        gate = cls(**{k: v for k, v in values.items() if k in _FIGURE})
        if gate.min_pass_percentage is not None and not 0 <= gate.min_pass_percentage <= 100:
            problems.append(("min_pass_percentage", "must be a percentage between 0 and 100"))
        if gate.min_win_rate is not None and not 0 <= gate.min_win_rate <= 1:
            problems.append(
                ("min_win_rate", "must be a fraction between 0 and 1 (A wins / (A wins + B wins))")
            )
        return gate, problems

    def problems_for(self, evaluation_type: str | None) -> list[Problem]:
        """Minimums that cannot apply to ``evaluation_type`` (a compare has no pass percentage ...)."""
        return [
            (name, f"applies to {' and '.join(kinds)} evaluations, not {evaluation_type}")
            for name, kinds in _APPLIES.items()
            if getattr(self, name) is not None
            and evaluation_type in ("classify", "score", "compare")
            and evaluation_type not in kinds
        ]

    @property
    def empty(self) -> bool:
        """Whether no minimum is set (the evaluation is recorded, never refused)."""
        return all(getattr(self, name) is None for name in _FIGURE)

    def decide(self, result: EvaluationResult) -> Verdict:
        """Compare the figures with the minimums; a missing figure fails (nothing proves the model is good)."""
        checked = []
        for name, figure in _FIGURE.items():
            threshold = getattr(self, name)
            if threshold is None:
                continue
            value = result.get(figure)
            number = float(value) if isinstance(value, (int, float)) else None
            if number is None or number < threshold:
                shown = "none" if number is None else f"{number:.4g}"
                return Verdict(
                    False,
                    f"Evaluation {result['evaluation_id']}: {figure} = {shown} is below the gate {name} = "
                    f"{threshold:g}{_context(result)}",
                    figure,
                    number,
                    threshold,
                )
            checked.append(f"{figure} = {number:.4g} >= {threshold:g}")
        detail = "; ".join(checked) if checked else "no gate set"
        return Verdict(
            True, f"Evaluation {result['evaluation_id']} passed the gate: {detail}{_context(result)}"
        )


def _context(result: EvaluationResult) -> str:
    """Ties and failures, reported beside the figure they do not count in."""
    parts = []
    if result.get("type") == "compare":
        parts.append(f"A wins {result['a_wins']}, B wins {result['b_wins']}, ties {result['ties']}")
    for key in ("generation_fail_count", "judge_fail_count"):
        if result.get(key):
            parts.append(f"{key} {result[key]:g}")
    return f" ({'; '.join(parts)})" if parts else ""
