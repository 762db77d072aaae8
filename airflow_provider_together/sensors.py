"""
TogetherFineTuneSensor: wait for a fine-tuning job submitted elsewhere (another DAG, a notebook, the CLI).

Three ways to wait, one status table (``classify``) and one trigger:

* ``mode="poke"`` / ``mode="reschedule"``: ``poke()`` asks for the job's status;
* ``deferrable=True``: the first poke happens on the worker (a finished job needs no triggerer round-trip),
  then the task defers to :class:`~airflow_provider_together.triggers.TogetherFineTuneTrigger`;
* ``start_from_trigger=True``: the scheduler hands the task straight to the triggerer; it never takes a
  worker slot until the job ends.

A failed or cancelled job raises instead of poking until the timeout; ``soft_fail`` turns that into a skip.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
)

from airflow_provider_together._fine_tune.config import default_deferrable
from airflow_provider_together.links import JOB_URL_XCOM_KEY, TogetherFineTuneJobLink, job_url

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_together._fine_tune.payload import FineTuneResult
    from airflow_provider_together.hooks import TogetherHook

__all__ = ["TogetherFineTuneSensor"]

_TRIGGER_CLASSPATH = "airflow_provider_together.triggers.TogetherFineTuneTrigger"


class TogetherFineTuneSensor(BaseSensorOperator):
    """
    Wait until a Together fine-tuning job completes; return its summary (model name, tokens, price).

    :param job_id: the Together job id (templated).
    :param together_conn_id: the Together connection.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable`` (True if unset).
    :param start_from_trigger: start directly in the triggerer, skipping the worker entirely (Airflow 3.3
        renders ``job_id`` in the triggerer). Needs ``deferrable``.
    :param poke_interval: seconds between polls, in every mode.
    :param cancel_on_kill: cancel the job when a user kills the deferred sensor (Airflow 3.3+). Off by
        default: the sensor did not start the job, so it does not own it.

    A transient poll failure (no answer, 5xx, 429, an unreadable answer) is logged and the job polled again
    at the next poke; five in a row (as in the trigger) fail the sensor.
    """

    template_fields: Sequence[str] = ("job_id", "together_conn_id")
    operator_extra_links = (TogetherFineTuneJobLink(),)
    ui_color = "#dce7ff"

    def __init__(
        self,
        *,
        job_id: str,
        together_conn_id: str = "together_default",
        deferrable: bool = default_deferrable(),
        start_from_trigger: bool = False,
        poke_interval: float = 60.0,
        cancel_on_kill: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.job_id = job_id
        self.together_conn_id = together_conn_id
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        self.start_from_trigger = start_from_trigger and deferrable
        if self.start_from_trigger:
            from airflow.triggers.base import StartTriggerArgs

            self.start_trigger_args = StartTriggerArgs(
                trigger_cls=_TRIGGER_CLASSPATH,
                trigger_kwargs={
                    "job_id": job_id,
                    "together_conn_id": together_conn_id,
                    "poll_interval": float(poke_interval),
                    "cancel_on_kill": cancel_on_kill,
                },
                next_method="execute_complete",
                next_kwargs=None,
                timeout=timedelta(seconds=float(self.timeout)),
            )

    @cached_property
    def hook(self) -> TogetherHook:
        """The Together hook, built on first use."""
        from airflow_provider_together.hooks import TogetherHook

        return TogetherHook(together_conn_id=self.together_conn_id)

    def execute(self, context: Context) -> Any:
        """Poke once; then wait in the mode chosen (defer, or the base sensor's poke/reschedule loop)."""
        if not self.deferrable:
            return super().execute(context)
        done = self.poke(context)
        if isinstance(done, PokeReturnValue) and done.is_done:
            return done.xcom_value
        from airflow_provider_together.triggers import TogetherFineTuneTrigger, seed_cursor_xcom

        seed_cursor_xcom(context)
        self.defer(
            trigger=TogetherFineTuneTrigger(
                job_id=self.job_id,
                together_conn_id=self.together_conn_id,
                poll_interval=float(self.poke_interval),
                end_time=time.time() + float(self.timeout),
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
            # The trigger's own deadline fires first and says which job timed out; this is the backstop.
            timeout=timedelta(seconds=float(self.timeout) + float(self.poke_interval) + 60),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        """Return done with the summary when the job completed; raise when it failed or was cancelled."""
        from airflow_provider_together._fine_tune.progress import format_progress, terminal_payload
        from airflow_provider_together._fine_tune.sync_wait import PollFailures, job_result
        from airflow_provider_together.exceptions import transient_errors
        from airflow_provider_together.models import Outcome, classify

        context["ti"].xcom_push(key=JOB_URL_XCOM_KEY, value=job_url(self.job_id))
        failures = self.__dict__.setdefault("_poll_failures", PollFailures(self.job_id, self.log))
        try:
            job = self.hook.get_fine_tune(self.job_id)
        except transient_errors() as exc:
            failures.failed(exc)
            return PokeReturnValue(is_done=False)
        failures.succeeded()
        outcome = classify(job)
        if outcome is Outcome.RUNNING:
            self.log.info("%s", format_progress(job))
            return PokeReturnValue(is_done=False)
        result = job_result(self.hook, job)
        events = job.events if "events" in job.model_fields_set else self.hook.list_fine_tune_events(job.id)
        return PokeReturnValue(
            is_done=True, xcom_value=self._finish(dict(terminal_payload(job, outcome, events, result)))
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> FineTuneResult:
        """Finish from the trigger's event (deferrable and start-from-trigger modes)."""
        context["ti"].xcom_push(key=JOB_URL_XCOM_KEY, value=job_url(self.job_id))
        return self._finish(event)

    def _finish(self, event: dict[str, Any] | None) -> FineTuneResult:
        from airflow_provider_together._fine_tune.payload import validate_event
        from airflow_provider_together.exceptions import (
            TogetherError,
            TogetherJobCancelledError,
            TogetherJobFailedError,
            TogetherJobTimeoutError,
            TogetherJobUserError,
        )
        from airflow_provider_together.models import JobStatus

        payload = validate_event(event)
        if payload["status"] == "success":
            self.log.info("%s", payload["message"])
            result = payload["result"]
            if result is None:
                raise TypeError("Success event without a result")
            return result
        status, message, job_id = payload["status"], payload["message"], payload["job_id"]
        if self.soft_fail and status != "timeout":
            raise AirflowSkipException(f"{message} (soft_fail)")
        error: TogetherError
        if status == "cancelled":
            error = TogetherJobCancelledError(message, job_id=job_id, status=payload["job_status"])
        elif status == "timeout":
            from airflow.providers.common.compat.sdk import AirflowSensorTimeout

            if self.soft_fail:
                raise AirflowSkipException(f"{message} (soft_fail)")
            raise AirflowSensorTimeout(message) from TogetherJobTimeoutError(message, job_id=job_id)
        elif JobStatus(payload["job_status"]) is JobStatus.USER_ERROR:
            error = TogetherJobUserError(message, job_id=job_id, status=payload["job_status"])
        elif JobStatus(payload["job_status"]) is JobStatus.ERROR:
            error = TogetherJobFailedError(message, job_id=job_id, status=payload["job_status"])
        else:
            error = TogetherError(message)
        raise error
