"""The checker's result types: what a caller (operator, CLI, emulator) reads back from ``check_file``."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any


class DatasetFormat(str, Enum):
    """The training-data formats Together accepts in a JSONL file (API reference section 4.1).

    Parquet (pre-tokenised) and CSV files have no format in this sense; their report's ``format`` is ``None``.
    """

    GENERAL = "general"
    CONVERSATION = "conversation"
    INSTRUCTION = "instruction"
    PREFERENCE = "preference"


@dataclasses.dataclass(frozen=True)
class CheckError:
    """One problem found in a file.

    :param line: 1-based line number (JSONL and CSV), or ``None`` for a problem with the whole file.
    :param field: where in the line the problem is, as a path such as ``messages[1].role``; ``file`` for a
        whole-file problem, ``line`` when the line itself (not one field) is wrong.
    :param message: what is wrong and what would fix it, written for the person who owns the data.
    """

    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "file"
        return f"{where}: {self.field}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"line": self.line, "field": self.field, "message": self.message}


@dataclasses.dataclass
class CheckReport:
    """The outcome of ``check_file``.

    :param path: the file that was checked.
    :param purpose: the upload purpose it was checked for (``fine-tune``, ``eval``, ...).
    :param file_type: ``jsonl``, ``parquet`` or ``csv`` (``None`` when the extension is not supported).
    :param format: the JSONL dataset format shared by every line, when one was found.
    :param num_samples: non-blank lines (JSONL), data rows (CSV) or rows (Parquet) seen.
    :param file_size: size in bytes (``None`` when the file was not found).
    :param estimated_tokens: a rough text-token count (about 4 bytes of text per token, images and JSON
        syntax excluded), good enough for a price estimate and nothing finer.
    :param errors: the problems found, in file order, at most ``max_errors`` of them.
    :param truncated: ``True`` when the check stopped early because ``max_errors`` was reached; counts and
        flags then cover only the part of the file that was read.
    :param sha256: the file's SHA-256 hex digest, when ``check_file(..., checksum=True)`` and it passed.
    """

    path: str
    purpose: str
    file_type: str | None = None
    format: DatasetFormat | None = None
    num_samples: int = 0
    has_message_weights: bool = False
    has_sample_weights: bool = False
    has_tools: bool = False
    has_reasoning: bool = False
    is_multimodal: bool = False
    file_size: int | None = None
    estimated_tokens: int = 0
    errors: list[CheckError] = dataclasses.field(default_factory=list)
    truncated: bool = False
    sha256: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the file passed every check."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-ready dict (what ``--json`` prints)."""
        return {
            "ok": self.ok,
            "path": self.path,
            "purpose": self.purpose,
            "file_type": self.file_type,
            "format": self.format.value if self.format is not None else None,
            "num_samples": self.num_samples,
            "has_message_weights": self.has_message_weights,
            "has_sample_weights": self.has_sample_weights,
            "has_tools": self.has_tools,
            "has_reasoning": self.has_reasoning,
            "is_multimodal": self.is_multimodal,
            "file_size": self.file_size,
            "estimated_tokens": self.estimated_tokens,
            "errors": [error.to_dict() for error in self.errors],
            "truncated": self.truncated,
        }

    def summary(self) -> str:
        """Return a short human summary: verdict, shape of the data, then one line per error."""
        verdict = (
            "PASSED"
            if self.ok
            else f"FAILED ({len(self.errors)} error{'s' if len(self.errors) != 1 else ''})"
        )
        what = self.format.value if self.format is not None else (self.file_type or "unknown type")
        features = [
            name
            for name, present in (
                ("message weights", self.has_message_weights),
                ("sample weights", self.has_sample_weights),
                ("tools", self.has_tools),
                ("reasoning", self.has_reasoning),
                ("images", self.is_multimodal),
            )
            if present
        ]
        lines = [
            f"{self.path}: {verdict}",
            f"  {what}, {self.num_samples} sample{'s' if self.num_samples != 1 else ''}, "
            f"{self.file_size if self.file_size is not None else '?'} bytes, ~{self.estimated_tokens} tokens"
            + (f"; with {', '.join(features)}" if features else ""),
        ]
        lines.extend(f"  {error}" for error in self.errors)
        if self.truncated:
            lines.append(f"  (stopped after {len(self.errors)} errors; the rest of the file was not checked)")
        return "\n".join(lines)
