"""
Everything ``TogetherFineTuneOperator.execute`` does before it waits: validate, upload, check, submit once.

Order matters and is deliberate:

a. the rendered config is validated statically; a bad config fails the task (no retry) before any HTTP;
b. files given as paths are checked locally, uploaded once, and validated by Together;
c. the model's limits are fetched and the config resolved against them;
e. a job that a previous try already submitted with the same config is looked up and, if it is running
   or completed, reused (this comes before the price check: reattaching costs nothing); a job an earlier
   try was deferred on when a user cleared or marked the task is cancelled and replaced instead;
d. only for a new submission, the price is estimated and checked against ``max_price_usd``;
f. the job is submitted exactly once and its id recorded at once.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_together.exceptions import TogetherConfigError, TogetherFileRejectedError

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.models import FineTuneConfig, FineTuneJob, ModelLimits
    from airflow_provider_together.operators import TogetherFineTuneOperator

__all__ = ["build_config", "prepare_and_submit"]

log = logging.getLogger(__name__)


def build_config(op: TogetherFineTuneOperator) -> FineTuneConfig:
    """
    Merge ``config=`` with the flat keywords (flat wins) and validate statically, without any I/O.

    :raises AirflowFailException: the config is invalid (every problem listed, each naming its field);
        retrying cannot fix a config, so Airflow must not retry.
    """
    from airflow_provider_together._fine_tune.secrets import reject_inline_secrets
    from airflow_provider_together.models import FineTuneConfig

    flat = op.flat_options()
    base = op.config
    try:
        if isinstance(base, FineTuneConfig) and not flat:
            return base
        data: FineTuneConfig | dict[str, Any] | None = None
        if isinstance(base, FineTuneConfig):
            data = base
        elif base is not None:
            if not isinstance(base, dict):
                raise TogetherConfigError(
                    [("config", f"expected a dict or FineTuneConfig, got {type(base).__name__}")]
                )
            reject_inline_secrets(base)
            data = _paths_as_text(base)
        # parse() lays the flat keywords over the base option by option, replacing a group whose variant
        # changes (``lora=False`` over a LoRA config), which a plain dict merge cannot do.
        return FineTuneConfig.parse(data, **_paths_as_text(flat))
    except TogetherConfigError as exc:
        raise AirflowFailException(str(exc)) from exc


def _paths_as_text(options: dict[str, Any]) -> dict[str, Any]:
    """A path or ObjectStoragePath is resolved to a file id later; the static check sees its text."""
    out = dict(options)
    for field in ("training_file", "validation_file"):
        if out.get(field) is not None and not isinstance(out[field], str):
            out[field] = str(out[field])
    return out


def _raw(op: TogetherFineTuneOperator, config: FineTuneConfig, field: str) -> Any:
    """The file argument as given (an ObjectStoragePath stays one), else the config's value."""
    value = getattr(op, field)
    return value if value is not None else getattr(config, field)


def _limits(hook: TogetherHook, config: FineTuneConfig) -> ModelLimits:
    """Fetch the limits of the base model; for ``from_checkpoint`` the parent job's model."""
    model = config.model
    if not model and config.from_checkpoint:
        parent = config.from_checkpoint.split(":", 1)[0]
        model = hook.get_fine_tune(parent).model if parent.startswith("ft-") else parent
    if not model:
        raise TogetherConfigError([("model", "cannot tell which base model's limits apply")])
    return hook.get_model_limits(model)


def _check_price(
    op: TogetherFineTuneOperator, hook: TogetherHook, config: FineTuneConfig, limits: ModelLimits
) -> None:
    if config.from_checkpoint or config.from_hf_model:
        # As the SDK does: Together cannot estimate a continued or imported model.
        if op.max_price_usd is not None:
            log.warning(
                "max_price_usd=%s cannot be enforced: no price estimate when resuming a model",
                op.max_price_usd,
            )
        return
    estimate = hook.estimate_fine_tune_price(config.to_price_request(limits))
    if not estimate.estimation_available:
        reason = estimate.unavailable_reason or "unknown reason"
        if (reason or "").endswith("_invalid"):
            raise TogetherFileRejectedError(
                f"Together will not train on this data ({reason}); not submitting"
            )
        if op.max_price_usd is not None:
            raise AirflowFailException(
                f"max_price_usd={op.max_price_usd} is set but Together gave no estimate ({reason}); not submitting"
            )
        log.warning("No price estimate available (%s)", reason)
        return
    price = estimate.estimated_total_price or 0.0
    log.info(
        "Estimated price: $%.2f (train tokens %s, eval tokens %s)",
        price,
        estimate.estimated_train_token_count,
        estimate.estimated_eval_token_count,
    )
    if estimate.allowed_to_proceed is False:
        log.warning(
            "Together says the account may not cover $%.2f (limit $%s): the job may be cancelled for "
            "insufficient funds. See https://api.together.ai/settings/profile",
            price,
            estimate.user_limit,
        )
    if op.max_price_usd is not None and price > float(op.max_price_usd):
        raise AirflowFailException(
            f"Estimated price ${price:.2f} exceeds max_price_usd=${float(op.max_price_usd):.2f}; not submitting"
        )


def _not_before(context: Context) -> float:
    """The earliest time a job of this task instance can have been created: the DAG run's start."""
    for obj in (context.get("dag_run"), context.get("ti")):
        start = getattr(obj, "start_date", None)
        if start is not None:
            return float(start.timestamp())
    return time.time()


def prepare_and_submit(op: TogetherFineTuneOperator, context: Context) -> FineTuneJob:
    """
    Run steps a-f and return the job to wait for (new, or reattached).

    :raises AirflowFailException: invalid config, rejected file, or over budget (no retry helps).
    """
    from airflow_provider_together._fine_tune.abandoned import is_live, stop_abandoned_job
    from airflow_provider_together._fine_tune.inputs import FileResolver
    from airflow_provider_together._fine_tune.reattach import (
        JobSearch,
        JobStateStore,
        find_previous_job,
        marker_suffix,
        submit_once,
    )
    from airflow_provider_together._fine_tune.secrets import secret_request_fields
    from airflow_provider_together.models import Outcome, classify

    config = build_config(op)
    hook = op.hook
    try:
        resolver = FileResolver(
            hook,
            context.get("task_state_store"),
            wait_timeout=op.file_wait_timeout,
            poll_interval=min(2.0, float(op.poll_interval)),
        )
        updates = {
            "training_file": resolver.resolve(_raw(op, config, "training_file"), field="training_file")
        }
        if config.validation_file:
            updates["validation_file"] = resolver.resolve(
                _raw(op, config, "validation_file"), field="validation_file"
            )
        config = config.model_copy(update=updates)
        limits = _limits(hook, config)
        # The fingerprint is taken before limits resolve defaults, so it depends on the user's config only.
        fingerprint = config.fingerprint()
        config = config.validate_against(limits)
    except (TogetherConfigError, TogetherFileRejectedError) as exc:
        raise AirflowFailException(str(exc)) from exc

    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    suffix = config.suffix or marker_suffix(
        ti.dag_id, ti.run_id, ti.task_id, -1 if map_index is None else map_index, fingerprint
    )
    # Only ids travel from here on: the search and the state store never see a path or a secret.
    search = JobSearch(
        training_file=config.training_file, model=config.model, suffix=suffix, not_before=_not_before(context)
    )
    store = JobStateStore(context)
    # Before anything else: a job an earlier try left deferred when a user cleared or marked the task is one
    # Airflow gave up on. It is stopped whatever the config or reuse settings are now (never two jobs).
    abandoned = stop_abandoned_job(
        hook,
        store,
        try_number=getattr(ti, "try_number", None),
        cancel_on_kill=op.cancel_on_kill,
        poll_interval=float(op.poll_interval),
    )
    if op.reuse_existing_job:
        previous = find_previous_job(hook, store, fingerprint, search)
        if previous is not None:
            outcome = classify(previous)
            if outcome is Outcome.SUCCEEDED or (is_live(previous) and previous.id != abandoned):
                log.info(
                    "Reattaching to job %s (%s) submitted by a previous try", previous.id, previous.status_raw
                )
                return previous
            # Failed, cancelled, being cancelled (it can only end cancelled), or abandoned by a user action.
            log.info(
                "Previous job %s is %s and will not produce a model; submitting a replacement",
                previous.id,
                previous.status_raw,
            )

    try:
        _check_price(op, hook, config, limits)
    except (TogetherConfigError, TogetherFileRejectedError) as exc:
        raise AirflowFailException(str(exc)) from exc
    try:
        secrets = secret_request_fields(wandb_conn_id=op.wandb_conn_id, hf_conn_id=op.hf_conn_id)
    except TogetherConfigError as exc:
        raise AirflowFailException(str(exc)) from exc
    if not config.suffix:
        # Deterministic, so a retry on Airflow < 3.3 (or after an ambiguous create) recognises the job.
        config = config.model_copy(update={"suffix": suffix})
        log.info("No suffix given: using %s so a retry can recognise this job", suffix)
    request = config.to_request(
        limits, wandb_key=secrets.get("wandb_key"), hf_api_token=secrets.get("hf_api_token")
    )
    return submit_once(hook, request, store=store, fingerprint=fingerprint, search=search)
