"""
The emulator's clock: virtual seconds that run ``speed`` times faster than the wall clock.

Job lifecycles are planned in virtual seconds, so ``--speed 100`` finishes a one-minute job in 0.6 s. The
clock is anchored on the *wall* clock (not a monotonic one) so that a restarted emulator with ``--state``
finds its jobs further along, exactly as a real job keeps training while a client is down. Changing the speed
adds an anchor instead of moving the origin, so timestamps already shown stay where they were.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

__all__ = ["Clock", "iso"]


@dataclass
class Clock:
    """
    Piecewise-linear map between wall time and virtual time.

    :param anchors: ``(wall, virtual, speed)`` triples, oldest first; the last one is in force.
    """

    anchors: list[tuple[float, float, float]] = field(default_factory=list)

    @classmethod
    def start(cls, speed: float) -> Clock:
        """Start a clock whose virtual time equals wall time now."""
        now = time.time()
        return cls([(now, now, speed)])

    @property
    def speed(self) -> float:
        """The current speed factor."""
        return self.anchors[-1][2]

    def now(self) -> float:
        """Return the current virtual time."""
        wall, virtual, speed = self.anchors[-1]
        return virtual + (time.time() - wall) * speed

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on (the past keeps its mapping)."""
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.anchors.append((time.time(), self.now(), speed))

    def wall_of(self, virtual: float) -> float:
        """Map a virtual instant to the wall-clock instant it happens (or happened) at."""
        chosen = self.anchors[0]
        for anchor in self.anchors:
            if anchor[1] <= virtual:
                chosen = anchor
        wall, origin, speed = chosen
        return wall + (virtual - origin) / speed


def iso(wall: float) -> str:
    """Format a wall-clock instant the way Together does (ISO 8601, UTC, ``Z``)."""
    stamp = datetime.fromtimestamp(wall, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
