"""
Everything ``TogetherEvaluationOperator.execute`` does before it waits, cheapest first.

a. the operator's arguments, the config and the gate (static rules), and a local input file: checked for
   purpose ``eval`` and its columns against the templates, in one round, before any HTTP call;
b. an input given as a Together file id: its content is read back (one download) for the same column check;
   the external API tokens come from ``external_api_conn_id``;
c. the local file is uploaded (``purpose="eval"``, once per checksum) and validated by Together;
d. an evaluation an earlier try of this task instance submitted with the same request is reused (Airflow
   3.3's task state store); otherwise the evaluation is submitted once. A create that may or may not have
   reached Together is looked up in the evaluation list instead of being resent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_together._evaluation.columns import read_columns
from airflow_provider_together._evaluation.gate import Gate
from airflow_provider_together.exceptions import (
    TogetherAmbiguousSubmitError,
    TogetherConfigError,
    TogetherNotFoundError,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_together._evaluation.operator import TogetherEvaluationOperator
    from airflow_provider_together._fine_tune.inputs import FileInput, FileResolver
    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.models import EvaluationConfig, EvaluationJob

__all__ = ["coerce_wait_arguments", "prepare_and_submit"]

log = logging.getLogger(__name__)
Problem = tuple[str, str]
_PARTS = ("judge", "model_to_evaluate", "model_a", "model_b")


def coerce_wait_arguments(op: TogetherEvaluationOperator) -> list[Problem]:
    """Turn the rendered ``poll_interval`` / ``timeout`` into numbers on the operator; return what is wrong."""
    from airflow_provider_together._fine_tune.prepare import coerce_numbers

    return coerce_numbers(op, (("poll_interval", False, True), ("timeout", True, True)))


def _inline_secrets(parameters: dict[str, Any]) -> list[Problem]:
    return [
        (f"parameters.{name}.external_api_token", "secrets are not accepted here; pass external_api_conn_id")
        for name in _PARTS
        if isinstance(parameters.get(name), dict)
        and parameters[name].get("external_api_token") not in (None, "")
    ]


def build_config(op: TogetherEvaluationOperator) -> tuple[EvaluationConfig | None, Any, list[Problem]]:
    """
    Validate ``evaluation_type`` + ``parameters`` statically; return the config, the input value and problems.

    The input is ``input_file``, else ``parameters["input_data_file_path"]`` (a file id).
    """
    from airflow_provider_together.models import EvaluationConfig

    problems: list[Problem] = []
    raw = op.parameters
    if isinstance(raw, EvaluationConfig):
        raw = raw.model_dump(exclude_none=True)
    if not isinstance(raw, dict):
        return (
            None,
            op.input_file,
            [("parameters", f"expected a dict or EvaluationConfig, got {type(raw).__name__}")],
        )
    data = dict(raw)
    problems += _inline_secrets(data)
    if op.evaluation_type:
        data["type"] = op.evaluation_type
    given_id = data.pop("input_data_file_path", None)
    value = op.input_file
    if value is not None and value != "" and given_id:
        problems.append(
            ("input_file", "give the input either as input_file or as parameters.input_data_file_path")
        )
    if value is None or value == "":
        value = given_id
    if value is None or value == "":
        problems.append(("input_file", "is required (a file id, a local path or an ObjectStoragePath)"))
    config: EvaluationConfig | None = None
    try:
        config = EvaluationConfig.parse(data)
    except TogetherConfigError as exc:
        problems += exc.problems
    return config, value, problems


def _check_before_upload(
    op: TogetherEvaluationOperator, resolver: FileResolver
) -> tuple[EvaluationConfig, Gate, FileInput]:
    """Step a: every check needing no HTTP call, all problems raised together."""
    problems = coerce_wait_arguments(op)
    gate, gate_problems = Gate.coerce(
        {
            "min_pass_percentage": op.min_pass_percentage,
            "min_mean_score": op.min_mean_score,
            "min_win_rate": op.min_win_rate,
        }
    )
    problems += gate_problems
    config, value, config_problems = build_config(op)
    problems += config_problems
    problems += gate.problems_for(config.type if config else op.evaluation_type)
    item = None
    if value is not None and value != "":
        # A local file is checked here; a file-... id is read back after these checks (step b).
        item = resolver.inspect(value, field="input_file", purpose="eval", lookup=False)
        problems += item.problems
        if config is not None and item.path is not None and not item.problems:
            columns, row_problems = read_columns(item.path)
            problems += row_problems + _column_problems(config, columns)
    if problems or config is None or item is None:
        raise TogetherConfigError(problems, heading="Invalid evaluation")
    return config, gate, item


def _column_problems(config: EvaluationConfig, columns: list[str]) -> list[Problem]:
    from airflow_provider_together.models.evaluation_config import column_problems

    return column_problems(config, columns)


def _remote_columns(hook: TogetherHook, file_id: str, config: EvaluationConfig) -> list[Problem]:
    """Step b: read an already uploaded input file back, to check its columns too."""
    with tempfile.TemporaryDirectory(prefix="together-eval-") as tmp:
        try:
            meta = hook.get_file(file_id)
        except TogetherNotFoundError:
            return [("input_file", f"Together has no file {file_id}")]
        suffix = (
            ".csv"
            if (meta.file_type or "").lower() == "csv" or (meta.filename or "").endswith(".csv")
            else ".jsonl"
        )
        path = hook.download_file_content(file_id, Path(tmp) / f"input{suffix}")
        try:
            columns, problems = read_columns(path)
        except (ValueError, UnicodeDecodeError) as exc:
            return [("input_file", f"file {file_id} is not readable JSONL or CSV: {exc}")]
        return problems + _column_problems(config, columns)


def _with_tokens(op: TogetherEvaluationOperator, config: EvaluationConfig) -> EvaluationConfig:
    """Fill external API tokens in from ``external_api_conn_id`` (never from arguments)."""
    from airflow_provider_together._fine_tune.secrets import _password
    from airflow_provider_together.models import EvaluationConfig

    externals = [
        name for name in _PARTS if getattr(getattr(config, name), "model_source", None) == "external"
    ]
    if not externals:
        return config
    if not op.external_api_conn_id:
        raise TogetherConfigError(
            [
                (f"{name}.external_api_token", "model_source 'external' needs external_api_conn_id")
                for name in externals
            ],
            heading="Invalid evaluation",
        )
    token = _password(op.external_api_conn_id, "external_api")
    data = config.model_dump(exclude_none=True)
    for name in externals:
        data[name]["external_api_token"] = token
    return EvaluationConfig.parse(data)


def _fingerprint(request: dict[str, Any]) -> str:
    """What identifies a submission across tries: the request without secrets."""
    return hashlib.sha256(json.dumps(_redacted(request), sort_keys=True).encode()).hexdigest()[:32]


def _redacted(request: dict[str, Any]) -> dict[str, Any]:
    parameters = {
        key: (
            {k: v for k, v in value.items() if k != "external_api_token"}
            if isinstance(value, dict)
            else value
        )
        for key, value in (request.get("parameters") or {}).items()
    }
    return {"type": request.get("type"), "parameters": parameters}


def _reconcile(hook: TogetherHook, request: dict[str, Any], not_before: float) -> EvaluationJob | None:
    """
    After an ambiguous create: the newest listed evaluation with exactly our request, if any.

    Only one created since the create call started (less the clock skew the fine-tune search allows): an
    identical request evaluated last week is another task's verdict, not this one's.
    """
    from airflow_provider_together._fine_tune.reattach import created_since

    wanted = _redacted(request)
    for job in hook.list_evaluations(limit=50):
        if not created_since(job.created_at, not_before):
            continue
        if _redacted({"type": job.type, "parameters": job.parameters or {}}) == wanted:
            return job
    return None


def _submit_once(
    op: TogetherEvaluationOperator, context: Context, hook: TogetherHook, request: dict[str, Any]
) -> EvaluationJob:
    """Step d."""
    from airflow_provider_together.models import Outcome, classify

    store = context.get("task_state_store")
    key = f"together_evaluation_{_fingerprint(request)}"
    previous = store.get(key) if store is not None else None
    if isinstance(previous, str) and previous:
        try:
            job = hook.get_evaluation(previous)
        except TogetherNotFoundError:
            job = None
        if job is not None and classify(job) is not Outcome.FAILED:
            log.info(
                "Reusing evaluation %s (%s) submitted by a previous try", job.workflow_id, job.status_raw
            )
            return job
    started = time.time()
    try:
        job = hook.create_evaluation(request)
    except TogetherAmbiguousSubmitError:
        found = _reconcile(hook, request, started)
        if found is None:
            raise
        log.warning("The create answer was lost; found evaluation %s with this request", found.workflow_id)
        job = found
    if store is not None:
        store.set(key, job.workflow_id)
    return job


def prepare_and_submit(op: TogetherEvaluationOperator, context: Context) -> EvaluationJob:
    """
    Run steps a-d and return the evaluation to wait for.

    :raises AirflowFailException: invalid arguments, config, gate or input file, a rejected file, or an API
        answer a retry cannot change.
    """
    from airflow_provider_together._fine_tune.inputs import FileResolver
    from airflow_provider_together._fine_tune.prepare import final_api_errors
    from airflow_provider_together.models import EvaluationConfig

    hook = op.hook
    resolver = FileResolver(
        hook, context.get("task_state_store"), wait_timeout=float(op.file_wait_timeout), poll_interval=1.0
    )
    with resolver, final_api_errors():
        config, _gate, item = _check_before_upload(op, resolver)
        if item.path is None:
            # Not local: a file-... id (anything else was reported above).
            assert item.file_id is not None
            problems = _remote_columns(hook, item.file_id, config)
            if problems:
                raise TogetherConfigError(problems, heading="Invalid evaluation")
        config = _with_tokens(op, config)
        file_id = resolver.upload(item, purpose="eval")
        request = EvaluationConfig.parse(config, input_data_file_path=file_id).to_request()
        return _submit_once(op, context, hook, request)
