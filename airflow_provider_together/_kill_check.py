"""
Tell whether a stopped trigger's task was killed, or its trigger only moved: asked before cancelling a paid job.

Airflow 3.3 calls a trigger's ``on_kill()`` when a user marks its deferred task failed or success, or clears it.
Airflow 3.1 and 3.2 have no such hook; the only code that runs is ``cleanup()``, and it runs whenever the trigger
stops in a triggerer: after its event, on a triggerer shutdown, when another triggerer takes it over, and when
its task left ``deferred``. Only the last is a kill. The task instance's state tells them apart: a trigger that
has not fired and whose task instance is no longer deferred was stopped by a user (or by Airflow giving up on
it). A triggerer restart or a takeover leaves the task deferred; an unanswered question counts as "still
deferred", so a doubt never cancels a job.

Airflow 3.3 calls ``on_kill()`` for more than a kill. Its triggerer cancels, with the "user action" message that
triggers ``on_kill``, every trigger it runs that is no longer assigned to it
(``TriggerRunnerSupervisor.update_triggers``: ``running_triggers - requested_trigger_ids``), and that includes a
trigger another triggerer took over (HA assignment). Seen in the cluster suite: a trigger started on triggerer 5,
was picked up by triggerer 4 a second later, and triggerer 5 logged "Trigger cancelled by user action, invoking
on_kill" and cancelled a job whose task was still deferred; the retry then paid for a second job. So ``on_kill``
asks too (:func:`moved_not_killed`): a task instance that Airflow says is still ``deferred`` (or ``running``,
a new try that resumed) was not killed. There, a question Airflow did not answer leaves ``on_kill`` to cancel:
Airflow did say "user action", and a real kill left running costs the whole job.
"""

from __future__ import annotations

import asyncio
from typing import Any

from airflow.triggers.base import BaseTrigger

#: Airflow 3.3+ runs ``BaseTrigger.on_kill`` itself; ``cleanup()`` must then never cancel too.
TRIGGERER_CALLS_ON_KILL = hasattr(BaseTrigger, "on_kill")


def fetch_task_states(dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
    """Ask Airflow for one task instance's state: ``{run_id: {task_id or task_id_mapindex: state}}``."""
    # The Task SDK's call is synchronous; in the triggerer it sends through the supervisor channel, which
    # must not be driven from the event loop thread (hence sync_to_async at the caller).
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    result: dict[str, Any] = RuntimeTaskInstance.get_task_states(
        dag_id=dag_id, task_ids=[task_id], run_ids=[run_id], map_index=map_index
    )
    return result


#: States in which the job is still wanted: the trigger's own deferral (a triggerer restart or a takeover), or a
#: new try that may already have reattached to the same job (Airflow 3.1 / 3.2 reattach through the job list).
_STILL_WANTED = frozenset({"deferred", "running"})
_UNKNOWN = object()

#: How long the triggerer's supervisor may take to answer the state question before it counts as unanswered.
#: The kill's work outlives Airflow's own bound on ``on_kill`` (``TogetherJobTrigger._run_to_the_end``), so
#: this is what keeps it finite if the supervisor never answers.
STATE_QUESTION_TIMEOUT_S = 20.0


async def task_state(ti: Any) -> Any:
    """
    Return the current state of the trigger's task instance as Airflow reports it.

    ``None`` is a real answer (a cleared task instance has no state); ``_UNKNOWN`` means Airflow did not answer
    (within ``STATE_QUESTION_TIMEOUT_S``) or does not know the task instance.

    :param ti: the trigger's ``task_instance`` (dag_id, run_id, task_id, map_index), set by the triggerer.
    """
    from asgiref.sync import sync_to_async

    from airflow_provider_together._fine_tune.reattach import comms_errors

    map_index = getattr(ti, "map_index", -1)
    map_index = -1 if map_index is None else int(map_index)
    unanswered: tuple[type[BaseException], ...] = (*comms_errors(), asyncio.TimeoutError)
    try:
        states = await asyncio.wait_for(
            sync_to_async(fetch_task_states)(ti.dag_id, ti.run_id, ti.task_id, map_index),
            timeout=STATE_QUESTION_TIMEOUT_S,
        )
    except unanswered:
        return _UNKNOWN
    key = ti.task_id if map_index < 0 else f"{ti.task_id}_{map_index}"
    run_states = states.get(ti.run_id) or {}
    if key not in run_states:
        return _UNKNOWN
    state = run_states[key]
    return None if state is None else str(getattr(state, "value", state))


async def killed_while_deferred(ti: Any) -> bool:
    """
    Return True when the task instance left ``deferred`` without its trigger firing (call from ``cleanup()``).

    Failed, success, skipped (marked by a user), no state, scheduled, queued, up_for_retry (cleared) are kills;
    ``deferred`` and ``running`` are not, and neither is a question Airflow did not answer: doubt never cancels
    a paid job.

    :param ti: the trigger's ``task_instance``; None (a trigger run outside a triggerer) is never a kill.
    """
    if ti is None or TRIGGERER_CALLS_ON_KILL:
        return False
    state = await task_state(ti)
    return state is not _UNKNOWN and state not in _STILL_WANTED


async def moved_not_killed(ti: Any) -> bool:
    """
    Return True when Airflow says the task instance is still ``deferred`` or ``running`` (call from ``on_kill``).

    Then the trigger was stopped on this triggerer because another one took it over (or the task already
    resumed), not because a user acted. Anything else, including no answer, is False: ``on_kill`` goes on.

    :param ti: the trigger's ``task_instance``; None (a trigger run outside a triggerer) is never a move.
    """
    if ti is None:
        return False
    state = await task_state(ti)
    return state is not _UNKNOWN and state in _STILL_WANTED
