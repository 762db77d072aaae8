"""
Pydantic models of the provider: the validated job and evaluation configs, the API's responses, and statuses.

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
from airflow_provider_together.models.evaluation import (
    ClassifyResults,
    CompareResults,
    EvaluationJob,
    EvaluationResult,
    ScoreResults,
)
from airflow_provider_together.models.evaluation_config import (
    EvaluationConfig,
    EvaluationModelConfig,
    JudgeConfig,
)
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
from airflow_provider_together.models.status import (
    EvaluationStatus,
    FileProcessingStatus,
    JobStatus,
    Outcome,
    classify,
)

__all__ = [
    "Checkpoint",
    "ClassifyResults",
    "CompareResults",
    "CosineScheduler",
    "CosineSchedulerArgs",
    "DPOMethod",
    "EarlyStoppingConfig",
    "EvaluationConfig",
    "EvaluationJob",
    "EvaluationModelConfig",
    "EvaluationResult",
    "EvaluationStatus",
    "FileObject",
    "FileProcessingStatus",
    "FineTuneConfig",
    "FineTuneEvent",
    "FineTuneJob",
    "FineTuneProgress",
    "FullLimits",
    "FullTraining",
    "JobStatus",
    "JudgeConfig",
    "LinearScheduler",
    "LinearSchedulerArgs",
    "LoRALimits",
    "LoRATraining",
    "ModelLimits",
    "MultimodalParams",
    "Outcome",
    "PriceEstimate",
    "SFTMethod",
    "ScoreResults",
    "ValidationReport",
    "WandbConfig",
    "classify",
]
