"""
Operators for Together AI: the fine-tune itself, upload, cancel, checkpoint download, and the evaluation gate.

Importing this module is cheap on purpose (a DAG file imports it on every parse): the hook, the pydantic
models, httpx and the trigger are imported inside ``execute`` or the ``hook`` property, never at the top.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_together._evaluation.operator import TogetherEvaluationOperator
from airflow_provider_together._fine_tune.config import default_deferrable
from airflow_provider_together._fine_tune.job_operators import (
    TogetherCancelFineTuneOperator,
    TogetherDownloadCheckpointOperator,
    TogetherUploadFileOperator,
)
from airflow_provider_together._fine_tune.payload import FineTuneResult
from airflow_provider_together.links import (
    JOB_ID_XCOM_KEY,
    JOB_URL_XCOM_KEY,
    TogetherFineTuneJobLink,
    job_url,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.models import FineTuneConfig

__all__ = [
    "CONFIG_FIELDS",
    "FineTuneResult",
    "TogetherCancelFineTuneOperator",
    "TogetherDownloadCheckpointOperator",
    "TogetherEvaluationOperator",
    "TogetherFineTuneOperator",
    "TogetherUploadFileOperator",
]

#: Every ``FineTuneConfig`` option the operator accepts as a flat keyword (the SDK's ``create()`` names).
#: Secrets (``wandb_api_key``, ``hf_api_token``) are deliberately absent: they come from connections.
CONFIG_FIELDS: tuple[str, ...] = (
    "training_file",
    "validation_file",
    "model",
    "from_checkpoint",
    "from_hf_model",
    "hf_model_revision",
    "hf_output_repo_name",
    "suffix",
    "training_method",
    "train_on_inputs",
    "dpo_beta",
    "dpo_normalize_logratios_by_length",
    "dpo_reference_free",
    "rpo_alpha",
    "simpo_gamma",
    "n_epochs",
    "batch_size",
    "learning_rate",
    "warmup_ratio",
    "lr_scheduler_type",
    "min_lr_ratio",
    "scheduler_num_cycles",
    "max_grad_norm",
    "weight_decay",
    "n_checkpoints",
    "n_evals",
    "max_seq_length",
    "packing",
    "random_seed",
    "gradient_accumulation_steps",
    "early_stopping_enabled",
    "early_stopping_patience",
    "early_stopping_min_delta",
    "early_stopping_warmup_evals",
    "lora",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_trainable_modules",
    "train_vision",
    "wandb_project_name",
    "wandb_name",
    "wandb_entity",
    "wandb_base_url",
)

# Airflow's own markers for "the trigger timed out before firing" (airflow.sdk.bases.operator, internal).
_TRIGGER_FAIL_METHOD = "__fail__"
_TRIGGER_TIMEOUT_REASON = "Trigger timeout"
#: Extra time Airflow's deferral timeout gives the trigger, so the trigger's own clean ``timeout`` event
#: (which leads to a cancel) wins over Airflow's blunt one.
_DEFER_TIMEOUT_MARGIN_S = 120.0


class TogetherFineTuneOperator(BaseOperator):
    """
    Run a Together AI fine-tuning job as one task: validate, upload, price-check, submit once, wait.

    Every ``FineTuneConfig`` option can be given as a flat keyword (``model=``, ``n_epochs=``, ``lora_r=``...,
    the SDK's names) or inside ``config=`` (a dict in flat or nested form, or a ``FineTuneConfig``); flat
    keywords win. All of them are templated and validated *after* rendering, in ``execute()``.

    .. seealso:: https://docs.together.ai/reference/post-fine-tunes and docs/operators.md

    :param config: the job config as a dict or ``FineTuneConfig`` (templated, rendered as JSON).
    :param together_conn_id: the Together connection (password = API key).
    :param wandb_conn_id: connection whose password is the Weights & Biases API key (never an argument).
    :param hf_conn_id: connection whose password is the Hugging Face token (never an argument).
    :param deferrable: wait in the triggerer instead of holding a worker slot for hours; defaults to
        ``[operators] default_deferrable``, and to True when that is unset.
    :param wait_for_completion: wait for the job to end; False returns right after submitting.
    :param poll_interval: seconds between status polls.
    :param timeout: seconds to wait for the job; then it is cancelled (``cancel_on_timeout``) and the task
        fails. ``None`` uses ``execution_timeout`` when deferred (Airflow does not bound a deferral by
        itself), else waits as long as Airflow lets it.
    :param max_price_usd: fail before submitting when Together's estimate exceeds this many dollars.
    :param cancel_on_kill: cancel the job when the task is killed (worker kill, or a user acting on the
        deferred task on Airflow 3.3+); after a clear of a deferred task, the new try also cancels the old
        job and trains a fresh one instead of reattaching to it.
    :param cancel_on_timeout: cancel the job when ``timeout`` expires.
    :param reuse_existing_job: reattach to the job a previous try of this task instance submitted with the
        same config (running or completed) instead of paying for a new one. See docs/operators.md.
    :param file_wait_timeout: seconds to wait for Together to validate an uploaded file.
    """

    template_fields: Sequence[str] = (
        *CONFIG_FIELDS,
        "config",
        "together_conn_id",
        "wandb_conn_id",
        "hf_conn_id",
        "max_price_usd",
        "poll_interval",
        "timeout",
    )
    template_fields_renderers = {"config": "json"}
    operator_extra_links = (TogetherFineTuneJobLink(),)
    ui_color = "#dce7ff"

    def __init__(
        self,
        *,
        config: Mapping[str, Any] | FineTuneConfig | None = None,
        training_file: Any = None,
        validation_file: Any = None,
        model: str | None = None,
        from_checkpoint: str | None = None,
        from_hf_model: str | None = None,
        hf_model_revision: str | None = None,
        hf_output_repo_name: str | None = None,
        suffix: str | None = None,
        training_method: str | None = None,
        train_on_inputs: bool | str | None = None,
        dpo_beta: float | None = None,
        dpo_normalize_logratios_by_length: bool | None = None,
        dpo_reference_free: bool | None = None,
        rpo_alpha: float | None = None,
        simpo_gamma: float | None = None,
        n_epochs: int | None = None,
        batch_size: int | str | None = None,
        learning_rate: float | None = None,
        warmup_ratio: float | None = None,
        lr_scheduler_type: str | None = None,
        min_lr_ratio: float | None = None,
        scheduler_num_cycles: float | None = None,
        max_grad_norm: float | None = None,
        weight_decay: float | None = None,
        n_checkpoints: int | None = None,
        n_evals: int | None = None,
        max_seq_length: int | None = None,
        packing: bool | None = None,
        random_seed: int | None = None,
        gradient_accumulation_steps: int | None = None,
        early_stopping_enabled: bool | None = None,
        early_stopping_patience: int | None = None,
        early_stopping_min_delta: float | None = None,
        early_stopping_warmup_evals: int | None = None,
        lora: bool | None = None,
        lora_r: int | None = None,
        lora_alpha: float | None = None,
        lora_dropout: float | None = None,
        lora_trainable_modules: str | None = None,
        train_vision: bool | None = None,
        wandb_project_name: str | None = None,
        wandb_name: str | None = None,
        wandb_entity: str | None = None,
        wandb_base_url: str | None = None,
        together_conn_id: str = "together_default",
        wandb_conn_id: str | None = None,
        hf_conn_id: str | None = None,
        deferrable: bool = default_deferrable(),
        wait_for_completion: bool = True,
        poll_interval: float = 60.0,
        timeout: float | timedelta | None = None,
        max_price_usd: float | None = None,
        cancel_on_kill: bool = True,
        cancel_on_timeout: bool = True,
        reuse_existing_job: bool = True,
        file_wait_timeout: float = 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.training_file = training_file
        self.validation_file = validation_file
        self.model = model
        self.from_checkpoint = from_checkpoint
        self.from_hf_model = from_hf_model
        self.hf_model_revision = hf_model_revision
        self.hf_output_repo_name = hf_output_repo_name
        self.suffix = suffix
        self.training_method = training_method
        self.train_on_inputs = train_on_inputs
        self.dpo_beta = dpo_beta
        self.dpo_normalize_logratios_by_length = dpo_normalize_logratios_by_length
        self.dpo_reference_free = dpo_reference_free
        self.rpo_alpha = rpo_alpha
        self.simpo_gamma = simpo_gamma
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.warmup_ratio = warmup_ratio
        self.lr_scheduler_type = lr_scheduler_type
        self.min_lr_ratio = min_lr_ratio
        self.scheduler_num_cycles = scheduler_num_cycles
        self.max_grad_norm = max_grad_norm
        self.weight_decay = weight_decay
        self.n_checkpoints = n_checkpoints
        self.n_evals = n_evals
        self.max_seq_length = max_seq_length
        self.packing = packing
        self.random_seed = random_seed
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.early_stopping_enabled = early_stopping_enabled
        self.early_stopping_patience = early_stopping_patience
        self.early_stopping_min_delta = early_stopping_min_delta
        self.early_stopping_warmup_evals = early_stopping_warmup_evals
        self.lora = lora
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.lora_trainable_modules = lora_trainable_modules
        self.train_vision = train_vision
        self.wandb_project_name = wandb_project_name
        self.wandb_name = wandb_name
        self.wandb_entity = wandb_entity
        self.wandb_base_url = wandb_base_url
        self.together_conn_id = together_conn_id
        self.wandb_conn_id = wandb_conn_id
        self.hf_conn_id = hf_conn_id
        self.deferrable = deferrable
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        self.max_price_usd = max_price_usd
        self.cancel_on_kill = cancel_on_kill
        self.cancel_on_timeout = cancel_on_timeout
        self.reuse_existing_job = reuse_existing_job
        self.file_wait_timeout = file_wait_timeout
        self._job_id: str | None = None

    @cached_property
    def hook(self) -> TogetherHook:
        """The Together hook; built on first use, never in the constructor (no I/O at parse time)."""
        from airflow_provider_together.hooks import TogetherHook

        return TogetherHook(together_conn_id=self.together_conn_id)

    def flat_options(self) -> dict[str, Any]:
        """Return the flat config keywords that were set (after rendering, when called from execute)."""
        return {name: getattr(self, name) for name in CONFIG_FIELDS if getattr(self, name) is not None}

    def execute(self, context: Context) -> FineTuneResult:
        """Validate, prepare inputs, reattach or submit, then wait according to the operator's mode."""
        from airflow_provider_together._fine_tune.payload import result_from_job
        from airflow_provider_together._fine_tune.prepare import prepare_and_submit
        from airflow_provider_together._fine_tune.progress import terminal_payload
        from airflow_provider_together._fine_tune.sync_wait import job_result, wait_in_worker
        from airflow_provider_together.models import Outcome, classify

        job = prepare_and_submit(self, context)
        self._job_id = job.id
        url = job_url(job.id)
        context["ti"].xcom_push(key=JOB_ID_XCOM_KEY, value=job.id)
        context["ti"].xcom_push(key=JOB_URL_XCOM_KEY, value=url)
        self.log.info("Together fine-tuning job %s: %s", job.id, url)

        outcome = classify(job)
        if outcome is not Outcome.RUNNING:
            # A reattached job that already ended: nothing to wait for.
            payload = terminal_payload(job, outcome, job.events, job_result(self.hook, job))
            return self.execute_complete(context, dict(payload))
        if not self.wait_for_completion:
            self.log.info("wait_for_completion=False: returning while job %s is %s", job.id, job.status_raw)
            return result_from_job(job, None)
        if self.deferrable:
            self.defer_on(context, job.id, first=True)
        payload = wait_in_worker(
            self.hook, job, poll_interval=float(self.poll_interval), timeout=self.timeout, log=self.log
        )
        return self.execute_complete(context, dict(payload))

    def defer_on(self, context: Context, job_id: str, *, first: bool = False) -> NoReturn:
        """
        Hand the wait for ``job_id`` to the triggerer (also used to re-defer after a stray event).

        :param first: this try's first deferral: the trigger's event cursor starts empty in XCom.
        """
        import time

        from airflow_provider_together._fine_tune.reattach import JobStateStore
        from airflow_provider_together.triggers import TogetherFineTuneTrigger, seed_cursor_xcom

        if first:
            seed_cursor_xcom(context)

        # Airflow's execution_timeout does not bound a deferred task, so it becomes the trigger's deadline
        # when no explicit timeout was given: the job is cancelled instead of outliving the task.
        limit = self.timeout
        if limit is None and self.execution_timeout is not None:
            limit = self.execution_timeout.total_seconds()
        end_time = time.time() + limit if limit else None
        defer_timeout = (
            timedelta(seconds=limit + float(self.poll_interval) + _DEFER_TIMEOUT_MARGIN_S) if limit else None
        )
        # Written before deferring, so it exists before any user can clear the deferred task: a later try
        # that still finds it knows this deferral never resumed and must not reattach (see _reattach).
        JobStateStore(context).mark_deferred(job_id, context["ti"].try_number)
        self.defer(
            trigger=TogetherFineTuneTrigger(
                job_id=job_id,
                together_conn_id=self.together_conn_id,
                poll_interval=self.poll_interval,
                end_time=end_time,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
            timeout=defer_timeout,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> FineTuneResult:
        """
        Finish from the trigger's (or the sync loop's) single event: return the summary or raise.

        :raises TogetherJobFailedError: the job ended in ``error`` (retryable) or ``user_error``
            (``TogetherJobUserError``, not retried), with Together's own messages.
        :raises TogetherJobCancelledError: the job was cancelled.
        :raises TogetherJobTimeoutError: the wait timed out; the job was cancelled when ``cancel_on_timeout``.
        """
        from airflow_provider_together._fine_tune.completion import complete

        return complete(self, context, event)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """
        Resume after the deferral: clear the deferral mark, then finish from the event as usual.

        Clearing the mark tells a later try (a retry after this resumed try fails) that the job was not
        abandoned by a user action, so it reattaches. When Airflow's own deferral timeout fired before the
        trigger's, the job is cancelled before failing.
        """
        from airflow_provider_together._fine_tune.prepare import coerce_arguments

        # A new process renders the templates again: numbers given as templates are strings until coerced
        # (they were checked when the task started).
        coerce_arguments(self)
        self._mark_resumed(context)
        if (
            next_method == _TRIGGER_FAIL_METHOD
            and (next_kwargs or {}).get("error") == _TRIGGER_TIMEOUT_REASON
            and self.cancel_on_timeout
        ):
            job_id = context["ti"].xcom_pull(task_ids=self.task_id, key=JOB_ID_XCOM_KEY)
            if isinstance(job_id, str):
                self.cancel_job(job_id, reason="Airflow's deferral timeout expired")
        return super().resume_execution(next_method, next_kwargs, context)

    def _mark_resumed(self, context: Context) -> None:
        from airflow_provider_together._fine_tune.reattach import JobStateStore, comms_errors

        try:
            JobStateStore(context).mark_resumed()
        except comms_errors() as exc:  # the store is unreachable: finishing the task matters more
            # A stale mark only costs a retry of this task instance a fresh job instead of a reattach.
            self.log.warning("Could not clear the deferral mark in the task state store: %s", exc)

    def cancel_job(self, job_id: str, *, reason: str) -> None:
        """Request cancellation, best effort: a failure to cancel is logged, never hides the original error."""
        from airflow_provider_together.exceptions import TogetherError

        try:
            job = self.hook.cancel_fine_tune(job_id)
        except TogetherError as exc:
            self.log.warning("Could not cancel fine-tuning job %s (%s): %s", job_id, reason, exc)
            return
        self.log.info(
            "Cancel requested for fine-tuning job %s (%s); status %s", job_id, reason, job.status_raw
        )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        Report lineage to ``apache-airflow-providers-openlineage``: the training and validation files in, the model out.

        Inputs are named by their local path or object-storage URI, with the Together file id as a symlink
        (a file given as an id is the ``together`` dataset ``files/<id>``); the output is the fine-tuned model
        in the namespace ``together``; a run facet carries the job id, base model and config fingerprint.
        """
        from airflow_provider_together._fine_tune.completion import lineage_facts
        from airflow_provider_together._openlineage import fine_tune_lineage

        return fine_tune_lineage(lineage_facts(self))

    def on_kill(self) -> None:
        """Cancel the job when the worker kills this task (sync wait, or execution_timeout)."""
        if self._job_id and self.cancel_on_kill:
            self.cancel_job(self._job_id, reason="task killed")
