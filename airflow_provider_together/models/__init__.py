"""
Pydantic models of the provider: the validated job config, the API's responses, and job statuses.

Importing this package is cheap (pydantic only): no Airflow, httpx or ``together`` import, no network and
no file access, because every DAG parse and every task run imports it. Airflow's exception module is
imported only when a config turns out to be invalid.
"""

from __future__ import annotations

from airflow_provider_together.models._parts import (
    CosineScheduler,
    CosineSchedulerArgs,
    DPOMethod,
    EarlyStoppingConfig,
    FullTraining,
    LinearScheduler,
    LinearSchedulerArgs,
    LoRATraining,
    MultimodalParams,
    SFTMethod,
    WandbConfig,
)
from airflow_provider_together.models.config import FineTuneConfig
from airflow_provider_together.models.responses import (
    Checkpoint,
    FileObject,
    FineTuneEvent,
    FineTuneJob,
    FineTuneProgress,
    FullLimits,
    LoRALimits,
    ModelLimits,
    PriceEstimate,
    ValidationReport,
)
from airflow_provider_together.models.status import FileProcessingStatus, JobStatus, Outcome, classify

__all__ = [
    "Checkpoint",
    "CosineScheduler",
    "CosineSchedulerArgs",
    "DPOMethod",
    "EarlyStoppingConfig",
    "FileObject",
    "FileProcessingStatus",
    "FineTuneConfig",
    "FineTuneEvent",
    "FineTuneJob",
    "FineTuneProgress",
    "FullLimits",
    "FullTraining",
    "JobStatus",
    "LinearScheduler",
    "LinearSchedulerArgs",
    "LoRALimits",
    "LoRATraining",
    "ModelLimits",
    "MultimodalParams",
    "Outcome",
    "PriceEstimate",
    "SFTMethod",
    "ValidationReport",
    "WandbConfig",
    "classify",
]
