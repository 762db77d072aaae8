"""
Everything ``TogetherFineTuneOperator.execute`` does before it waits: check, upload, price-check, submit once.

Cheapest first. What costs nothing is checked before what costs time or money, and every problem found
before the upload arrives in one :class:`~airflow_provider_together.exceptions.TogetherConfigError`:

a. the operator's own arguments and the rendered config (static rules, no I/O); a local training file is
   checked and hashed in one streaming read even when the config is already known to be wrong, so that a
   user fixes both in one round;
b. the model's limits (for ``from_checkpoint``, the parent job's model), the W&B / Hugging Face
   connections, and the training data's kind against ``training_method`` and the model: read-only calls
   and local facts;
c. only then are local files uploaded (once per checksum) and validated by Together;
d. a job that a previous try already submitted with the same config is looked up and, if running or
   completed, reused (reattaching costs nothing, so it comes before the price check); a job an earlier try
   was deferred on when a user cleared or marked the task is cancelled and replaced instead;
e. only for a new submission, the price is estimated and checked against ``max_price_usd`` (fail closed);
f. the job is submitted exactly once and its id recorded at once.

An answer a retry cannot change (400/402/404/409/422, and 401/403 with a hint about the connection) fails
the task at once (``AirflowFailException``); 408/429/5xx and transport errors stay retryable.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_together.exceptions import (
    TogetherAuthError,
    TogetherBadRequestError,
    TogetherConfigError,
    TogetherFileRejectedError,
    TogetherNotFoundError,
)
from airflow_provider_together.links import PRICE_ESTIMATE_XCOM_KEY

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_together._fine_tune.inputs import FileInput, FileResolver
    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.models import FineTuneConfig, FineTuneJob, ModelLimits
    from airflow_provider_together.operators import TogetherFineTuneOperator

__all__ = ["build_config", "coerce_arguments", "coerce_numbers", "final_api_errors", "prepare_and_submit"]

log = logging.getLogger(__name__)

Problem = tuple[str, str]
FILE_FIELDS = ("training_file", "validation_file")


#: A numeric argument: (name, may be unset, must be > 0 rather than >= 0).
NumberSpec = tuple[str, bool, bool]
FINE_TUNE_NUMBERS: tuple[NumberSpec, ...] = (
    ("max_price_usd", True, False),
    ("poll_interval", False, True),
    ("timeout", True, True),
)


def coerce_numbers(op: Any, specs: tuple[NumberSpec, ...]) -> list[Problem]:
    """
    Turn rendered numeric arguments into numbers on the operator; return what is wrong with them.

    They are template fields, so after rendering they may be strings (``"{{ var.value.cap }}"``); a
    ``timedelta`` counts in seconds. Shared by the fine-tune and the evaluation operators.
    """
    problems: list[Problem] = []
    for name, allow_none, positive in specs:
        raw = getattr(op, name)
        if raw is None or (allow_none and raw == ""):
            if not allow_none:
                problems.append((name, "is required"))
            setattr(op, name, None)
            continue
        seconds = getattr(raw, "total_seconds", None)
        try:
            value = float(seconds() if callable(seconds) else raw)
        except (TypeError, ValueError):
            problems.append((name, f"must be a number (got {raw!r})"))
            continue
        if isinstance(raw, bool) or not math.isfinite(value) or value < 0 or (positive and value == 0):
            problems.append((name, f"must be a finite number {'>' if positive else '>='} 0 (got {raw!r})"))
            continue
        setattr(op, name, value)
    return problems


def coerce_arguments(op: TogetherFineTuneOperator) -> list[Problem]:
    """:func:`coerce_numbers` for the fine-tune operator's ``max_price_usd``, ``poll_interval``, ``timeout``."""
    return coerce_numbers(op, FINE_TUNE_NUMBERS)


def build_config(op: TogetherFineTuneOperator) -> FineTuneConfig:
    """
    Merge ``config=`` with the flat keywords (flat wins) and validate statically, without any I/O.

    :raises TogetherConfigError: the config is invalid (every problem listed, each naming its field).
    """
    from airflow_provider_together._fine_tune.secrets import reject_inline_secrets
    from airflow_provider_together.models import FineTuneConfig

    flat = op.flat_options()
    base = op.config
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


def _paths_as_text(options: dict[str, Any]) -> dict[str, Any]:
    """A path or ObjectStoragePath is resolved to a file id later; the static check sees its text."""
    out = dict(options)
    for field in FILE_FIELDS:
        if out.get(field) is not None and not isinstance(out[field], str):
            out[field] = str(out[field])
    return out


def _raw_file(op: TogetherFineTuneOperator, field: str) -> Any:
    """The file argument as given (an ObjectStoragePath stays one), else the one inside ``config=``."""
    value = getattr(op, field)
    if value is not None:
        return value
    config = op.config
    return config.get(field) if isinstance(config, dict) else getattr(config, field, None)


@contextmanager
def final_api_errors() -> Iterator[None]:
    """
    Fail the task at once on an answer that a retry cannot change; let transient ones through to Airflow.

    400/402/404/409/422 carry Together's message; 401/403 also say where to look (the connection).
    """
    try:
        yield
    except TogetherAuthError as exc:
        raise AirflowFailException(
            f"{exc} -- Together refused the API key ({exc.status_code}): check the password (API key) and "
            "host of the Together connection"
        ) from exc
    except (TogetherBadRequestError, TogetherNotFoundError) as exc:
        raise AirflowFailException(str(exc)) from exc
    except (TogetherConfigError, TogetherFileRejectedError) as exc:
        raise AirflowFailException(str(exc)) from exc


def _limits(hook: TogetherHook, config: FineTuneConfig) -> tuple[ModelLimits | None, list[Problem]]:
    """Fetch the limits of the base model (for ``from_checkpoint`` the parent job's model)."""
    field, model = "model", config.model
    try:
        if not model and config.from_checkpoint:
            field = "from_checkpoint"
            parent = config.from_checkpoint.split(":", 1)[0]
            model = hook.get_fine_tune(parent).model if parent.startswith("ft-") else parent
        if not model:
            return None, [(field, "cannot tell which base model's limits apply")]
        return hook.get_model_limits(model), []
    except TogetherNotFoundError as exc:
        what = "job" if field == "from_checkpoint" else "model available for fine-tuning"
        return None, [(field, f"Together has no such {what} ({exc.message})")]


def _local_problems(
    resolver: FileResolver, op: TogetherFineTuneOperator, config: FineTuneConfig | None
) -> tuple[dict[str, FileInput], list[Problem]]:
    """Inspect each file argument; a local one is checked and hashed in a single read. Nothing is sent."""
    inputs: dict[str, FileInput] = {}
    problems: list[Problem] = []
    for field in FILE_FIELDS:
        value = _raw_file(op, field)
        if value is None or value == "":
            continue
        item = resolver.inspect(value, field=field, lookup=config is not None)
        inputs[field] = item
        problems += item.problems
    return inputs, problems


def _check_before_upload(
    op: TogetherFineTuneOperator, hook: TogetherHook, resolver: FileResolver
) -> tuple[FineTuneConfig, ModelLimits, dict[str, FileInput], dict[str, str]]:
    """
    Steps a and b: every check that needs no upload, all problems raised together.

    :return: the config (with file arguments as text), the model's limits, the inspected files and the
        secret request fields.
    :raises TogetherConfigError: listing every problem found, of every kind.
    """
    from airflow_provider_together._fine_tune.data_fit import data_problems
    from airflow_provider_together._fine_tune.secrets import secret_request_fields

    problems = coerce_arguments(op)
    config: FineTuneConfig | None = None
    try:
        config = build_config(op)
    except TogetherConfigError as exc:
        problems += exc.problems
    inputs, file_problems = _local_problems(resolver, op, config)
    problems += file_problems
    if config is None:
        raise TogetherConfigError(problems)
    secrets: dict[str, str] = {}
    try:
        secrets = secret_request_fields(wandb_conn_id=op.wandb_conn_id, hf_conn_id=op.hf_conn_id)
    except TogetherConfigError as exc:
        problems += exc.problems
    limits, limit_problems = _limits(hook, config)
    problems += limit_problems
    if limits is not None:
        try:
            config.validate_against(limits)
        except TogetherConfigError as exc:
            problems += exc.problems
    for field, item in inputs.items():
        if item.report is not None and item.report.ok and item.path is not None:
            problems += data_problems(field, item.path, item.report, config, limits)
    if problems or limits is None:
        raise TogetherConfigError(problems)
    return config, limits, inputs, secrets


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

    :raises AirflowFailException: invalid config or data, rejected file, over budget, or an API answer a
        retry cannot change.
    """
    from airflow_provider_together._fine_tune.inputs import FileResolver

    hook = op.hook
    resolver = FileResolver(hook, context.get("task_state_store"), wait_timeout=op.file_wait_timeout)
    with resolver, final_api_errors():
        config, limits, inputs, secrets = _check_before_upload(op, hook, resolver)
        # File validation usually takes seconds, not minutes: poll it faster than the job.
        resolver.poll_interval = min(2.0, float(op.poll_interval))
        # Step c: the first byte leaves the machine only now.
        config = config.model_copy(update={field: resolver.upload(item) for field, item in inputs.items()})
        return _submit(op, context, hook, config, limits, secrets)


def _submit(
    op: TogetherFineTuneOperator,
    context: Context,
    hook: TogetherHook,
    config: FineTuneConfig,
    limits: ModelLimits,
    secrets: dict[str, str],
) -> FineTuneJob:
    """Steps d-f: reattach, or price-check and submit exactly once."""
    from airflow_provider_together._fine_tune.abandoned import is_live, stop_abandoned_job
    from airflow_provider_together._fine_tune.price import check_price
    from airflow_provider_together._fine_tune.reattach import (
        JobSearch,
        JobStateStore,
        echoed_numbers,
        find_previous_job,
        marker_suffix,
        submit_once,
    )
    from airflow_provider_together.models import Outcome, classify

    # The fingerprint is taken before limits resolve defaults, so it depends on the user's config only.
    fingerprint = config.fingerprint()
    config = config.validate_against(limits)
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    suffix = config.suffix or marker_suffix(
        ti.dag_id, ti.run_id, ti.task_id, -1 if map_index is None else map_index, fingerprint
    )
    # The one create body, built once: the search compares what the job echoes against it. A job without a
    # user suffix gets the deterministic marker, so a retry on Airflow < 3.3 (or after an ambiguous create)
    # recognises it.
    request = config.model_copy(update={"suffix": suffix}).to_request(
        limits, wandb_key=secrets.get("wandb_key"), hf_api_token=secrets.get("hf_api_token")
    )
    # Only ids travel from here on: the search and the state store never see a path or a secret.
    search = JobSearch(
        training_file=config.training_file,
        model=config.model,
        suffix=suffix,
        not_before=_not_before(context),
        echoed=echoed_numbers(request),  # numbers only: never a key
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
                # A new try starts with no XCom: carry the estimate the submitting try recorded (3.3+).
                _push_estimate(ti, store.recorded_estimate(previous.id))
                return previous
            # Failed, cancelled, being cancelled (it can only end cancelled), or abandoned by a user action.
            log.info(
                "Previous job %s is %s and will not produce a model; submitting a replacement",
                previous.id,
                previous.status_raw,
            )

    estimated = check_price(hook, config, limits, op.max_price_usd)
    _push_estimate(ti, estimated)
    if not config.suffix:
        log.info("No suffix given: using %s so a retry can recognise this job", suffix)
    return submit_once(
        hook, request, store=store, fingerprint=fingerprint, search=search, estimated_usd=estimated
    )


def _push_estimate(ti: Any, estimated: float | None) -> None:
    """Push the estimate for the Together tab, which shows it rather than asking Together on every view."""
    if estimated is not None:
        ti.xcom_push(key=PRICE_ESTIMATE_XCOM_KEY, value=estimated)
