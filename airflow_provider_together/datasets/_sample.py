"""What the precise checks of one sample share: its result, its running state, small helpers."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_together.datasets._report import DatasetFormat

# Flags a sample can raise; the reader ORs them over the file.
MESSAGE_WEIGHTS = 1
SAMPLE_WEIGHTS = 2
TOOLS = 4
REASONING = 8
MULTIMODAL = 16


def type_name(value: Any) -> str:
    """Name a JSON value's type the way a person editing JSON would."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


@dataclasses.dataclass
class SampleResult:
    """What the precise checker learned about one sample."""

    format: DatasetFormat | None = None
    problems: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    flags: int = 0
    messages: int = 0
    image_chars: int = 0


class Sample:
    """State shared by the checks of one sample: problems so far, flags, image counts, content kinds."""

    def __init__(self, result: SampleResult) -> None:
        self.result = result
        self.images = 0
        self.content_kinds: set[str] = set()
        self.first_kind_path = ""

    def problem(self, field: str, message: str) -> None:
        """Record that ``field`` (a path such as ``messages[2].weight``) breaks a rule, said by ``message``."""
        self.result.problems.append((field, message))


def unknown_keys(obj: dict[str, Any], allowed: tuple[str, ...], path: str, sample: Sample) -> None:
    """Report every key of ``obj`` (at ``path``) that is not in ``allowed``."""
    for key in obj:
        if key not in allowed:
            sample.problem(f"{path}.{key}", f"unknown key (allowed: {', '.join(allowed)})")
