"""
``TogetherEvaluationOperator``: run a Together evaluation as the gate of a pipeline.

Re-exported by :mod:`airflow_provider_together.operators` and imported at every DAG parse, so this module
imports only Airflow's ``BaseOperator`` and the provider's cheap modules at the top.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_together._fine_tune.config import default_deferrable
from airflow_provider_together.links import (
    EVALUATION_ID_XCOM_KEY,
    EVALUATION_URL_XCOM_KEY,
    TogetherEvaluationLink,
    evaluation_url,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.models import EvaluationConfig, EvaluationResult

__all__ = ["RESULT_XCOM_KEY", "TogetherEvaluationOperator"]

#: XCom key of the figures, pushed whatever the gate decides (the return value exists only when it passed).
RESULT_XCOM_KEY = "evaluation_result"
#: Extra time Airflow's deferral timeout gives the trigger, so the trigger's clean ``timeout`` event wins.
_DEFER_TIMEOUT_MARGIN_S = 120.0
#: Together's own Jinja2 templates over the dataset's columns: Airflow must pass them through unrendered.
TOGETHER_TEMPLATE_KEYS = frozenset({"system_template", "input_template"})


class TogetherEvaluationOperator(BaseOperator):
    """
    Evaluate with Together's LLM judge (classify, score or compare) and gate the pipeline on the figures.

    Validates everything it can before any HTTP call (the config, the gate, and the input file's columns
    against the templates), uploads the input file (``purpose="eval"``), submits once, waits (deferred by
    default), then applies the gate. Below the gate the task fails with ``AirflowFailException`` naming the
    figure and the threshold, or is skipped with ``soft_fail=True``, so that a promotion downstream does not
    run. The figures are returned (XCom), pushed as ``evaluation_result`` in every case, and attached to the
    task's outlet asset events.

    ``parameters`` is templated like any field (``"model": "{{ ti.xcom_pull(...) }}"``), except the values of
    ``system_template`` and ``input_template``: those are Together's own Jinja2 templates over the dataset's
    columns (``{{ prompt }}``) and reach Together untouched.

    .. seealso:: https://docs.together.ai/docs/ai-evaluations and docs/evaluation.md

    :param evaluation_type: ``classify``, ``score`` or ``compare`` (the SDK's ``type``); may instead be
        ``parameters["type"]``.
    :param parameters: the SDK's ``parameters`` dict (or an ``EvaluationConfig``): ``judge``, the models
        (a column name or a model config), ``labels`` / ``pass_labels``, ``min_score`` / ``max_score`` /
        ``pass_threshold``. Templated, validated after rendering.
    :param input_file: a Together file id, a local path or an ``ObjectStoragePath`` (JSONL or CSV); checked
        locally and uploaded like training files; fills ``input_data_file_path``.
    :param together_conn_id: the Together connection.
    :param external_api_conn_id: connection whose password is the token of an ``external`` judge or model
        (never an argument).
    :param min_pass_percentage: classify / score: the lowest acceptable pass percentage (0-100).
    :param min_mean_score: score: the lowest acceptable mean score.
    :param min_win_rate: compare: the lowest acceptable A wins / (A wins + B wins) (0-1).
    :param soft_fail: skip the task instead of failing it when the gate refuses.
    :param deferrable: wait in the triggerer (default, ``[operators] default_deferrable`` when set).
    :param poll_interval: seconds between status polls.
    :param timeout: seconds to wait; then the task fails (the API cannot cancel an evaluation).
    :param file_wait_timeout: seconds to wait for Together to validate the uploaded input file.
    """

    template_fields: Sequence[str] = (
        "evaluation_type",
        "parameters",
        "input_file",
        "together_conn_id",
        "external_api_conn_id",
        "min_pass_percentage",
        "min_mean_score",
        "min_win_rate",
        "poll_interval",
        "timeout",
    )
    template_fields_renderers = {"parameters": "json"}
    operator_extra_links = (TogetherEvaluationLink(),)
    ui_color = "#e6dcff"

    def __init__(
        self,
        *,
        evaluation_type: str | None = None,
        parameters: Mapping[str, Any] | EvaluationConfig | None = None,
        input_file: Any = None,
        together_conn_id: str = "together_default",
        external_api_conn_id: str | None = None,
        min_pass_percentage: float | str | None = None,
        min_mean_score: float | str | None = None,
        min_win_rate: float | str | None = None,
        soft_fail: bool = False,
        deferrable: bool = default_deferrable(),
        poll_interval: float = 30.0,
        timeout: float | timedelta | None = None,
        file_wait_timeout: float = 600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.evaluation_type = evaluation_type
        self.parameters = dict(parameters) if isinstance(parameters, dict) else parameters
        self.input_file = input_file
        self.together_conn_id = together_conn_id
        self.external_api_conn_id = external_api_conn_id
        self.min_pass_percentage = min_pass_percentage
        self.min_mean_score = min_mean_score
        self.min_win_rate = min_win_rate
        self.soft_fail = soft_fail
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        self.file_wait_timeout = file_wait_timeout

    def render_template(
        self, content: Any, context: Context, jinja_env: Any = None, seen_oids: set[int] | None = None
    ) -> Any:
        """Render like Airflow does, leaving Together's own templates (``system_template`` ...) untouched."""
        if isinstance(content, dict):
            return {
                key: value
                if key in TOGETHER_TEMPLATE_KEYS and isinstance(value, str)
                else self.render_template(value, context, jinja_env, seen_oids)
                for key, value in content.items()
            }
        return super().render_template(content, context, jinja_env, seen_oids)

    @cached_property
    def hook(self) -> TogetherHook:
        """The Together hook; built on first use, never in the constructor."""
        from airflow_provider_together.hooks import TogetherHook

        return TogetherHook(together_conn_id=self.together_conn_id)

    def execute(self, context: Context) -> EvaluationResult:
        """Check, upload, submit once, then wait according to ``deferrable`` and apply the gate."""
        from airflow_provider_together._evaluation.payload import terminal_payload, wait_in_worker
        from airflow_provider_together._evaluation.prepare import prepare_and_submit
        from airflow_provider_together.models import Outcome, classify

        job = prepare_and_submit(self, context)
        url = evaluation_url(job.workflow_id)
        context["ti"].xcom_push(key=EVALUATION_ID_XCOM_KEY, value=job.workflow_id)
        context["ti"].xcom_push(key=EVALUATION_URL_XCOM_KEY, value=url)
        self.log.info("Together evaluation %s: %s", job.workflow_id, url)
        if job.type is not None:
            outcome = classify(job)
            if outcome is not Outcome.RUNNING:
                # Reused from an earlier try, already finished.
                return self.execute_complete(context, dict(terminal_payload(job, outcome)))
        if self.deferrable:
            self.defer_on(job.workflow_id)
        payload = wait_in_worker(
            self.hook, job, poll_interval=float(self.poll_interval), timeout=self.timeout, log=self.log
        )
        return self.execute_complete(context, dict(payload))

    def defer_on(self, evaluation_id: str) -> NoReturn:
        """Hand the wait to the triggerer: the same trigger as fine-tunes, for a job of kind ``evaluation``."""
        import time

        from airflow_provider_together.triggers import TogetherJobTrigger

        limit = self.timeout
        if limit is None and self.execution_timeout is not None:
            limit = self.execution_timeout.total_seconds()
        end_time = time.time() + limit if limit else None
        defer_timeout = (
            timedelta(seconds=limit + float(self.poll_interval) + _DEFER_TIMEOUT_MARGIN_S) if limit else None
        )
        self.defer(
            trigger=TogetherJobTrigger(
                job_id=evaluation_id,
                kind="evaluation",
                together_conn_id=self.together_conn_id,
                poll_interval=self.poll_interval,
                end_time=end_time,
                cancel_on_kill=False,
            ),
            method_name="execute_complete",
            timeout=defer_timeout,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> EvaluationResult:
        """
        Finish from the single event: Together's error, or the figures through the gate.

        :raises TogetherJobUserError: the evaluation ended in ``user_error`` (not retried).
        :raises TogetherJobFailedError: it ended in ``error``.
        :raises TogetherJobTimeoutError: the wait timed out.
        :raises TogetherEvaluationGateError: a figure is below the gate (``AirflowSkipException`` with soft_fail).
        """
        from airflow_provider_together._evaluation.complete import complete

        return complete(self, context, event)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        Report lineage to ``apache-airflow-providers-openlineage``: the evaluated file in, the figures as a run facet.

        The file is named by its local path or object-storage URI, with its Together file id as a symlink;
        the ``togetherEvaluation`` run facet holds the figures beside the gate's thresholds.
        """
        from airflow_provider_together._evaluation.lineage import evaluation_facets

        return evaluation_facets(self)
