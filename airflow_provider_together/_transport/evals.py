"""
The Evaluations API calls as flows: create, retrieve, status, list, and the result file download.

Same rules as :mod:`._transport.ops`: one definition per endpoint, driven sync or async by the hook. The paths
are the v3 SDK's (``/evaluation``, singular; the v1 SDK's ``/evaluations`` list is another service).

.. seealso:: https://docs.together.ai/reference/create-evaluation-job
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_provider_together._transport.flow import call
from airflow_provider_together._transport.http import Retry, Spec
from airflow_provider_together._transport.ops import download_file_content, many, one, segment
from airflow_provider_together.exceptions import TogetherConfigError
from airflow_provider_together.models import EvaluationJob

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping
    from pathlib import Path

    import httpx

    from airflow_provider_together._transport.flow import Context, Flow

__all__ = [
    "create_evaluation",
    "download_evaluation_results",
    "get_evaluation",
    "get_evaluation_status",
    "list_evaluations",
]


def create_evaluation(ctx: Context, body: Mapping[str, Any]) -> Flow[EvaluationJob]:
    """
    ``POST /evaluation`` with ``{"type", "parameters"}``: answers ``{"workflow_id", "status": "pending"}``.

    Billable (generations and judge calls), so never resent once the server may have it (``Retry.SUBMIT``).
    """
    if not isinstance(body, dict) or not body.get("type") or not isinstance(body.get("parameters"), dict):
        raise TogetherConfigError(
            [("body", "must be {'type': ..., 'parameters': {...}} (EvaluationConfig.to_request())")],
            heading="Invalid argument",
        )
    return call(ctx, Spec("POST", "/evaluation", json=dict(body), retry=Retry.SUBMIT), one(EvaluationJob))


def get_evaluation(ctx: Context, evaluation_id: str) -> Flow[EvaluationJob]:
    """``GET /evaluation/{id}``: the whole job, with ``type`` (so its results can be read) and ``parameters``."""
    return call(
        ctx, Spec("GET", f"/evaluation/{segment('evaluation_id', evaluation_id)}"), one(EvaluationJob)
    )


def get_evaluation_status(ctx: Context, evaluation_id: str) -> Flow[EvaluationJob]:
    """
    ``GET /evaluation/{id}/status``: ``{status, results}`` only.

    The answer has no ``type``, so the returned job's :meth:`~EvaluationJob.summary` cannot read results;
    use :func:`get_evaluation` for the figures.
    """
    segment_id = segment("evaluation_id", evaluation_id)

    def parse(response: httpx.Response) -> EvaluationJob:
        body = json.loads(response.content)
        data = body if isinstance(body, dict) else {}
        return EvaluationJob.model_validate({**data, "workflow_id": evaluation_id.strip()})

    return call(ctx, Spec("GET", f"/evaluation/{segment_id}/status"), parse)


def list_evaluations(
    ctx: Context, status: str | None = None, limit: int | None = None
) -> Flow[list[EvaluationJob]]:
    """``GET /evaluation?status=&limit=``: a bare JSON list (the server's default limit is 10)."""
    params: dict[str, str | int] = {}
    if status:
        params["status"] = status
    if limit is not None:
        params["limit"] = int(limit)
    return call(ctx, Spec("GET", "/evaluation", params=params or None), many(EvaluationJob))


def download_evaluation_results(ctx: Context, evaluation_id: str, dest: str | os.PathLike[str]) -> Flow[Path]:
    """
    Stream an evaluation's per-row result file (``results.result_file_id``) to ``dest``.

    :raises TogetherConfigError: the evaluation has no result file (not completed, or it failed).
    """
    job = yield from get_evaluation(ctx, evaluation_id)
    results = job.typed_results()
    file_id = results.result_file_id if results is not None else None
    if not file_id:
        raise TogetherConfigError(
            [("evaluation_id", f"evaluation {job.workflow_id} has no result file (status {job.status_raw})")],
            heading="Invalid argument",
        )
    return (yield from download_file_content(ctx, file_id, dest))
