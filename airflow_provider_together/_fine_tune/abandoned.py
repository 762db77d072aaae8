"""
Stopping the job of a deferral that a user cut short (clear / mark of a deferred task), before replacing it.

See the module docstring of :mod:`airflow_provider_together._fine_tune.reattach` for the deferral mark this relies on.
Kept apart from the reattach search because it is a different decision: not "which job did we pay for" but
"make sure the job Airflow gave up on stops before a new one starts".
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from airflow_provider_together.exceptions import TogetherError, TogetherNotFoundError

if TYPE_CHECKING:
    from airflow_provider_together._fine_tune.reattach import JobStateStore
    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.models import FineTuneJob

__all__ = ["ensure_stopped", "is_live", "stop_abandoned_job", "wait_until_ended"]

log = logging.getLogger(__name__)

#: How long a new try waits for a job it cancelled (abandoned by a user action) to end before submitting.
CANCEL_WAIT_S = 300.0
#: Cap on the extra wait for the old trigger to see that job end (it polls every ``poll_interval``).
STRAY_TRIGGER_GRACE_S = 30.0


def is_live(job: FineTuneJob) -> bool:
    """
    Whether the job may still train (and bill): running, and nobody asked Together to stop it.

    ``classify`` counts ``cancel_requested`` as running because the job has not ended yet; for reuse it is
    as good as cancelled: it can only end ``cancelled`` and never yields a model.
    """
    from airflow_provider_together.models import JobStatus, Outcome, classify

    return classify(job) is Outcome.RUNNING and job.status is not JobStatus.CANCEL_REQUESTED


def ensure_stopped(hook: TogetherHook, job_id: str) -> bool:
    """
    Make sure Together is stopping ``job_id`` (idempotent: racing the trigger's own ``on_kill`` is fine).

    :return: whether this call sent the cancel (the job was still live, so no ``on_kill`` had stopped it).
    :raises TogetherError: the job still runs and the cancel failed; the caller must not submit a second
        job while this one may keep training.
    """
    try:
        job = hook.get_fine_tune(job_id)
    except TogetherNotFoundError:
        return False
    if not is_live(job):
        return False
    try:
        hook.cancel_fine_tune(job_id)
    except TogetherError as exc:
        # The old trigger's on_kill may have won the race and the job is already cancelled: look again.
        if is_live(hook.get_fine_tune(job_id)):
            raise TogetherError(
                f"Could not cancel fine-tuning job {job_id}, which Airflow gave up on ({exc}); not submitting "
                "a second job while it may still train. A retry of this task tries again."
            ) from exc
        return False
    return True


def wait_until_ended(hook: TogetherHook, job_id: str, *, poll_interval: float, timeout: float) -> None:
    """
    Wait (bounded) until a job we cancelled has ended, then one more poll interval of the old trigger.

    Two reasons. Money: ``cancel_requested`` still runs on Together's side, and a second job must not start
    before the first one stopped. Airflow: the old try's trigger may still be alive (its ``on_kill`` had not
    run when this try cancelled the job) and fires once it sees the job end; on SQLite the new deferral can
    reuse that trigger's freed id, and an event landing within a second of a deferral makes Airflow fail the
    try as "changed externally". Letting the old trigger see the end first keeps its event away from us.
    """
    from airflow_provider_together.models import Outcome, classify

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ended = classify(hook.get_fine_tune(job_id)) is not Outcome.RUNNING
        except TogetherNotFoundError:
            ended = True
        if ended:
            time.sleep(min(poll_interval, STRAY_TRIGGER_GRACE_S) + 1.0)
            return
        time.sleep(min(poll_interval, 5.0))
    log.warning(
        "Job %s has not finished cancelling after %.0f s; submitting the replacement anyway", job_id, timeout
    )


def stop_abandoned_job(
    hook: TogetherHook,
    store: JobStateStore,
    *,
    try_number: int | None,
    cancel_on_kill: bool,
    poll_interval: float,
) -> str | None:
    """
    Stop the job of an earlier try that was deferred when a user cleared or marked the task.

    Airflow 3.3 cancels that job from the old trigger's ``on_kill``, but asynchronously: the new try can
    start before, during or after it. Deciding from the deferral mark written by the old try itself (it
    exists before any user can act on the deferred task) makes the outcome independent of that ordering,
    and cancelling here too covers an ``on_kill`` that failed or timed out.

    :return: the id of the abandoned job that is now stopping (never to be reattached), or ``None``.
    """
    abandoned = store.abandoned_deferral(try_number)
    if abandoned is None:
        return None
    deferred_try, job_id = abandoned
    if not cancel_on_kill:
        log.info(
            "Try %d was waiting for job %s when the task was cleared or marked; cancel_on_kill=False leaves "
            "the job alone, so it is reused if it still runs",
            deferred_try,
            job_id,
        )
        return None
    log.info(
        "Try %d was waiting for job %s in the triggerer when the task was cleared or marked: Airflow gave up "
        "on that job, so it is cancelled (if the trigger's on_kill has not yet) and a fresh job is trained",
        deferred_try,
        job_id,
    )
    if ensure_stopped(hook, job_id):
        wait_until_ended(hook, job_id, poll_interval=poll_interval, timeout=CANCEL_WAIT_S)
    return job_id
