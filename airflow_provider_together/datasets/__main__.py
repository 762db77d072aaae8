"""``python -m airflow_provider_together.datasets FILE [--purpose P] [--json] [--max-errors N]``.

Exit status: 0 the file passed, 1 it failed a check, 2 bad usage (unknown option or purpose, or a FILE
that does not exist or is not a regular file: there is nothing to check, which is a mistake in the command
rather than a verdict on data).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from airflow_provider_together.datasets import _limits
from airflow_provider_together.datasets._check import check_file

if TYPE_CHECKING:
    from collections.abc import Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_together.datasets",
        description="Check a Together AI training or evaluation file (JSONL, Parquet or CSV) before uploading it.",
        epilog="Exit status: 0 passed, 1 failed, 2 bad usage or no such file.",
    )
    parser.add_argument("file", help="the .jsonl, .parquet or .csv file to check")
    parser.add_argument("--purpose", default="fine-tune", choices=_limits.PURPOSES, help="upload purpose")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument(
        "--max-errors", type=int, default=100, help="stop after this many errors (default 100)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.max_errors < 1:
        parser.error("--max-errors must be at least 1")
    if not os.path.isfile(args.file):
        print(f"{parser.prog}: error: {args.file}: no such file (or not a regular file)", file=sys.stderr)
        return EXIT_USAGE
    report = check_file(args.file, args.purpose, max_errors=args.max_errors)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
    return EXIT_OK if report.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
