"""
The loss curve as a self-contained SVG string: drawn on the server, so the tab needs no script and no CDN.

Pure functions of the points, no I/O: the training loss as a line, the evaluation loss as a line with dots,
labelled axes with a few round ticks.
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Point", "loss_curve_svg", "nice_ticks"]

Point = tuple[float, float]

_W, _H = 720, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 40
_TRAIN, _EVAL = "#1f6feb", "#d9480f"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Return about ``count`` round tick values covering ``[lo, hi]`` (1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks: list[float] = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _finite(points: Sequence[Point]) -> list[Point]:
    return sorted((x, y) for x, y in points if math.isfinite(x) and math.isfinite(y))


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"


def loss_curve_svg(train: Sequence[Point], evaluation: Sequence[Point] = ()) -> str:
    """
    Draw training and evaluation loss against the step.

    :param train: ``(step, loss)`` points of the training loss.
    :param evaluation: ``(step, loss)`` points of the evaluation loss (may be empty).
    :return: an ``<svg>`` element, or a short ``<p>`` when there is nothing to draw yet.
    """
    train, evaluation = _finite(train), _finite(evaluation)
    every = train + evaluation
    if not every:
        return '<p class="empty" id="no-curve">No loss reported yet.</p>'
    xs, ys = [p[0] for p in every], [p[1] for p in every]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    pad = (y_hi - y_lo) * 0.05 or abs(y_hi) * 0.05 or 1.0
    y_lo, y_hi = y_lo - pad, y_hi + pad
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def sx(x: float) -> float:
        return _LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w

    def sy(y: float) -> float:
        return _TOP + (y_hi - y) / (y_hi - y_lo) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="loss-curve" viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" role="img" aria-label="loss curve" font-family="sans-serif" font-size="11">',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#ccc"/>',
    ]
    for tick in nice_ticks(y_lo, y_hi):
        y = sy(tick)
        parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
    for tick in nice_ticks(x_lo, x_hi):
        x = sx(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP + plot_h}" y2="{_TOP + plot_h + 4}" stroke="#888"/>'
        )
        parts.append(f'<text x="{x:.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle">{_label(tick)}</text>')
    parts.append(f'<text x="{_LEFT + plot_w / 2:.0f}" y="{_H - 6}" text-anchor="middle">step</text>')
    parts.append(f'<text x="12" y="{_TOP + plot_h / 2:.0f}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {_TOP + plot_h / 2:.0f})">loss</text>')  # fmt: skip
    for name, points, color in (("train-loss", train, _TRAIN), ("eval-loss", evaluation, _EVAL)):
        if not points:
            continue
        xy = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(
            f'<polyline class="{name}" fill="none" stroke="{color}" stroke-width="2" points="{xy}"/>'
        )
        if name == "eval-loss":
            parts.extend(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>' for x, y in points
            )
    legend = [("training loss", _TRAIN, bool(train)), ("evaluation loss", _EVAL, bool(evaluation))]
    x = _LEFT + plot_w - 130
    for row, (text, color) in enumerate((text, color) for text, color, shown in legend if shown):
        y = _TOP + 14 + row * 16
        parts.append(
            f'<line x1="{x}" x2="{x + 18}" y1="{y - 4}" y2="{y - 4}" stroke="{color}" stroke-width="2"/>'
        )
        parts.append(f'<text x="{x + 24}" y="{y}">{escape(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)
