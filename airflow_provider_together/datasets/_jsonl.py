"""Check a JSONL file: stream its lines, try the fast path per block, explain failures precisely."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from airflow_provider_together.datasets import _fast, _rules, _sample
from airflow_provider_together.datasets._lines import BLOCK_SIZE, iter_line_blocks, open_binary
from airflow_provider_together.datasets._report import CheckError

if TYPE_CHECKING:
    from airflow_provider_together.datasets._report import CheckReport, DatasetFormat

_BYTES_PER_TOKEN = 4


class _StopCheck(Exception):
    """Raised internally once ``max_errors`` errors have been collected."""


class JsonlChecker:
    """Accumulate the report of one JSONL file, block by block.

    :param report: the report to fill in (its path, purpose and size are already set).
    :param max_errors: stop once this many errors are recorded.
    :param fast: use the typed fast path; tests turn it off to compare both paths.
    """

    def __init__(self, report: CheckReport, max_errors: int, *, fast: bool = True) -> None:
        self.report = report
        self.max_errors = max_errors
        self.eval_purpose = report.purpose != "fine-tune"
        self.fast = fast and not self.eval_purpose
        self.format_line = 0
        self.flags = 0
        self.text_bytes = 0
        self.line_no = 0

    def run(self, path: str, block_size: int = BLOCK_SIZE, digest: Any = None) -> None:
        """Check the file at ``path``, filling in the report; ``digest`` (hashlib) sees every byte read."""
        try:
            with open_binary(path, digest) as stream:
                for lines in iter_line_blocks(stream, block_size):
                    self._block(lines)
        except _StopCheck:
            self.report.truncated = True
        report = self.report
        report.has_message_weights = bool(self.flags & _sample.MESSAGE_WEIGHTS)
        report.has_sample_weights = bool(self.flags & _sample.SAMPLE_WEIGHTS)
        report.has_tools = bool(self.flags & _sample.TOOLS)
        report.has_reasoning = bool(self.flags & _sample.REASONING)
        report.is_multimodal = bool(self.flags & _sample.MULTIMODAL)
        report.estimated_tokens = max(0, self.text_bytes) // _BYTES_PER_TOKEN

    def _block(self, lines: list[bytes]) -> None:
        first = self.line_no + 1
        self.line_no += len(lines)
        start = 0
        if self.fast:
            # The fast path checks lines against the file's format, so settle it precisely first.
            while self.report.format is None and start < len(lines):
                self._line(lines[start], first + start)
                start += 1
        outcome = None
        if self.fast and self.report.format is not None and start < len(lines):
            outcome = _fast.check_block(lines[start:] if start else lines, self.report.format)
        if outcome is None:
            for index in range(start, len(lines)):
                self._line(lines[index], first + index)
            return
        self.report.num_samples += outcome.samples
        self.flags |= outcome.flags
        self.text_bytes += outcome.text_bytes
        # Lines the fast path could not vouch for get the precise treatment, in file order.
        for index in outcome.rejected:
            self._line(lines[start + index], first + start + index)

    def _line(self, line: bytes, line_no: int) -> None:
        if not line.strip():
            return  # blank lines are skipped, as by the server and both SDKs
        self.report.num_samples += 1
        try:
            obj = msgspec.json.decode(line)
        except UnicodeDecodeError as exc:
            self._error(
                line_no, "line", f"not valid UTF-8 ({exc.reason} at byte {exc.start}); save the file as UTF-8"
            )
            return
        except msgspec.DecodeError as exc:
            self._error(line_no, "line", _json_problem(line, line_no, exc))
            return
        result = _rules.check_sample(obj, eval_purpose=self.eval_purpose)
        self.flags |= result.flags
        self.text_bytes += (
            len(line) - _fast.SAMPLE_OVERHEAD - _fast.MESSAGE_OVERHEAD * result.messages - result.image_chars
        )
        for field, message in result.problems:
            self._error(line_no, field, message)
        if result.format is not None:
            self._format_seen(result.format, line_no)

    def _format_seen(self, fmt: DatasetFormat, line_no: int) -> None:
        report = self.report
        if report.format is None:
            report.format = fmt
            self.format_line = line_no
        elif fmt is not report.format:
            self._error(
                line_no,
                "line",
                f"this sample is in the {fmt.value} format but the file is {report.format.value} "
                f"(from line {self.format_line}); every sample of a file must use the same format",
            )

    def _error(self, line_no: int | None, field: str, message: str) -> None:
        self.report.errors.append(CheckError(line_no, field, message))
        if len(self.report.errors) >= self.max_errors:
            raise _StopCheck


def _json_problem(line: bytes, line_no: int, exc: msgspec.DecodeError) -> str:
    """Explain why ``line`` is not JSON, naming the usual culprits (encoding, byte-order mark)."""
    if line_no == 1 and line.startswith(b"\xef\xbb\xbf"):
        return "the file starts with a UTF-8 byte-order mark (BOM): save it as UTF-8 without BOM"
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"not valid UTF-8 ({bad.reason} at byte {bad.start}); save the file as UTF-8"
    return f"not valid JSON ({exc}); each line must hold one complete JSON object"
