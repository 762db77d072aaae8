"""
The emulated LLM judge: per-row verdicts computed from the request and the input file, and the figures counted
from them.

No model runs. Every model (or column of pre-generated answers) has a *quality* q (0.5 unless the admin API set
another); its answer on a row is "good" when a SHA-256 draw over (judge, model, row) is below q. Classify gives
good answers a pass label, score draws a score above ``pass_threshold`` for good answers and below it otherwise,
compare lets a good answer beat a bad one (two good or two bad: a tie). Nothing depends on the evaluation id or
the time, so the same request on the same file always gives the same figures.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from typing import Any

__all__ = ["hash01", "summarise", "verdicts"]

Quality = Callable[[str], float]


def hash01(*parts: Any) -> float:
    """A deterministic draw in [0, 1) from JSON-able parts."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _good(parameters: dict[str, Any], part: Any, index: int, row: dict[str, Any], quality: Quality) -> bool:
    name = part if isinstance(part, str) else str(part.get("model"))
    answer = row.get(part) if isinstance(part, str) else part.get("input_template")
    return hash01(parameters["judge"].get("model"), name, answer, index, row) < quality(name)


def verdicts(
    kind: str, p: dict[str, Any], rows: list[dict[str, Any]], quality: Quality
) -> list[dict[str, Any]]:
    """One result-file row per input row: the row's fields plus the judge's verdict."""
    found: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if kind == "compare":
            a = _good(p, p["model_a"], i, row, quality) if p.get("model_a") is not None else False
            b = _good(p, p["model_b"], i, row, quality) if p.get("model_b") is not None else False
            found.append({**row, "winner": "A" if a and not b else "B" if b and not a else "Tie"})
            continue
        part = p.get("model_to_evaluate") or "(judge only)"
        good = _good(p, part, i, row, quality)
        draw = hash01("verdict", p["judge"].get("model"), part, i, row)
        if kind == "classify":
            passing = [str(x) for x in p["labels"] if x in p["pass_labels"]] or [str(p["pass_labels"][0])]
            failing = [str(x) for x in p["labels"] if x not in p["pass_labels"]] or passing
            pool = passing if good else failing
            found.append({**row, "label": pool[int(draw * len(pool))], "pass": good})
        else:
            low, high, threshold = float(p["min_score"]), float(p["max_score"]), float(p["pass_threshold"])
            score = threshold + draw * (high - threshold) if good else low + draw * (threshold - low)
            found.append({**row, "score": round(score, 3), "pass": score >= threshold})
    return found


def summarise(kind: str, p: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``results`` object of the type, counted from the verdicts (as v3 SDK 3.1.1 reads it)."""
    base = {"generation_fail_count": 0, "judge_fail_count": 0}
    n = max(1, len(rows))
    if kind == "compare":
        counts = {w: sum(1 for v in rows if v["winner"] == w) for w in ("A", "B", "Tie")}
        return {"A_wins": counts["A"], "B_wins": counts["B"], "Ties": counts["Tie"], **base}
    passed = sum(1 for v in rows if v["pass"])
    if kind == "classify":
        labels: dict[str, int] = {str(label): 0 for label in p["labels"]}
        for v in rows:
            labels[v["label"]] = labels.get(v["label"], 0) + 1
        # A JSON *string*, as the spec and the v3 SDK type it.
        return {
            "label_counts": json.dumps(labels),
            "pass_percentage": 100.0 * passed / n,
            "invalid_label_count": 0,
            **base,
        }
    scores = [float(v["score"]) for v in rows]
    mean = sum(scores) / n
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / n)
    aggregated = {
        "mean_score": round(mean, 4),
        "std_score": round(std, 4),
        "pass_percentage": 100.0 * passed / n,
    }
    return {"aggregated_scores": aggregated, "invalid_score_count": 0, "failed_samples": 0, **base}
