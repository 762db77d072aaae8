"""
Does the training data fit the job? The kind of data against ``training_method`` and the model, from the
local checker's report, before a byte is uploaded.

Together finds these mismatches only after the upload, the file validation and a queue slot: a DPO job
on conversational data, SFT on preference pairs, images for a text-only model. The checker already knows
the file's format and whether it holds images, so the verdict costs nothing.

.. seealso:: https://docs.together.ai/docs/fine-tuning-data-preparation
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_together.datasets import DatasetFormat
from airflow_provider_together.models import DPOMethod

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_together.datasets import CheckReport
    from airflow_provider_together.models import FineTuneConfig, ModelLimits

__all__ = ["data_problems"]

Problem = tuple[str, str]
#: What supervised fine-tuning accepts in a JSONL file.
SFT_FORMATS = frozenset({DatasetFormat.CONVERSATION, DatasetFormat.INSTRUCTION, DatasetFormat.GENERAL})


def data_problems(
    field: str, path: Path, report: CheckReport, config: FineTuneConfig, limits: ModelLimits | None
) -> list[Problem]:
    """
    Every way the checked file ``path`` does not fit ``config`` (and the model's ``limits``, when known).

    :param field: the operator argument the file was given as, named in each problem.
    """
    problems: list[Problem] = []
    dpo = isinstance(config.training_method, DPOMethod)
    fmt = report.format
    if report.file_type == "parquet" and dpo:
        problems.append(
            (
                field,
                f"training_method is dpo, which needs preference data (JSONL with input, preferred_output and "
                f"non_preferred_output); {path} is pre-tokenised Parquet, which only SFT can use",
            )
        )
    elif fmt is not None and dpo and fmt is not DatasetFormat.PREFERENCE:
        problems.append(
            (
                field,
                f"training_method is dpo, which needs preference data (input, preferred_output, "
                f"non_preferred_output); {path} is in the {fmt.value} format: use training_method='sft' "
                "or a preference file",
            )
        )
    elif fmt is DatasetFormat.PREFERENCE and not dpo:
        problems.append(
            (
                field,
                f"{path} holds preference data, which only training_method='dpo' can use; SFT takes "
                "conversational, instruction or general text",
            )
        )
    if report.is_multimodal and limits is not None and not limits.supports_vision:
        model = config.model or config.from_checkpoint or "the base model"
        problems.append(
            (
                field,
                f"{path} holds images, but {model} does not support vision: use a vision model or "
                "text-only data",
            )
        )
    return problems
