"""
The plugin's FastAPI app, mounted by Airflow's api-server under ``/together``: read-only, one HTML route.

Airflow enforces nothing on a plugin app (reference B4), so every request is authenticated here with the
api-server's own auth manager (the ``_token`` cookie the UI sets, or a Bearer token) and authorized like
Airflow's task-instance endpoints: ``GET`` on the DAG's task instances. Together is called through the hook in
the api-server, so the API key never reaches the browser.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse

from airflow_provider_together.plugins import data, page

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_together.hooks import TogetherHook

__all__ = ["app", "create_app", "parse_map_index"]

#: The page runs no script and loads nothing from elsewhere; it may only be framed by Airflow's own UI.
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def parse_map_index(raw: str) -> int:
    """Return the map index of the URL; the UI leaves ``{MAP_INDEX}`` unreplaced on unmapped task instances."""
    return int(raw) if raw.lstrip("-").isdigit() else -1


def _token(request: Request) -> str | None:
    authz = request.headers.get("authorization", "")
    if authz[:7].lower() == "bearer " and authz[7:].strip():
        return authz[7:].strip()
    # The UI's login cookie (COOKIE_NAME_JWT_TOKEN); an iframe sends only this. Read by hand because
    # Airflow 3.1.0's GetUserDep reads the header only.
    return request.cookies.get("_token") or None


async def _authorize(request: Request, dag_id: str) -> None:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from jwt import ExpiredSignatureError, InvalidTokenError

    token = _token(request)
    if token is None:
        raise HTTPException(status_code=401, detail="Not authenticated")
    manager = get_auth_manager()
    try:
        user = await manager.get_user_from_token(token)
    except ExpiredSignatureError:  # as core's resolve_user_from_token answers
        raise HTTPException(status_code=401, detail="Token Expired") from None
    except InvalidTokenError:
        raise HTTPException(status_code=403, detail="Invalid JWT token") from None
    details = DagDetails(id=dag_id, team_name=_team_of(dag_id))
    if not manager.is_authorized_dag(
        method="GET", access_entity=DagAccessEntity.TASK_INSTANCE, details=details, user=user
    ):
        raise HTTPException(status_code=403, detail="Forbidden")


def _team_of(dag_id: str) -> str | None:
    from airflow.providers.common.compat.sdk import conf

    if not conf.getboolean("core", "multi_team", fallback=False):
        return None
    from airflow.models.dag import DagModel

    get_team_name = getattr(DagModel, "get_team_name", None)
    return get_team_name(dag_id) if get_team_name is not None else None


def _default_hook(conn_id: str) -> TogetherHook:
    from airflow_provider_together.hooks import TogetherHook

    return TogetherHook(together_conn_id=conn_id)


def _render(ref: data.TaskRef, job: data.JobRef | None, hook_factory: Callable[[str], TogetherHook]) -> str:
    """Build the page (blocking: database and Together); run in a thread by the route."""
    from airflow_provider_together.exceptions import TogetherError
    from airflow_provider_together.links import evaluation_url, job_url
    from airflow_provider_together.models import Outcome, classify

    if job is None:
        return page.nothing_page(ref)
    hook = hook_factory(job.conn_id)
    try:
        if job.kind == "evaluation":
            ev = data.evaluation_view(hook, job)
            running = classify(ev.job) is Outcome.RUNNING
            return page.evaluation_page(ev, dashboard_url=evaluation_url(job.job_id), running=running)
        ft = data.fine_tune_view(hook, job.job_id, job.estimated_usd)
        running = classify(ft.job) is Outcome.RUNNING
        return page.fine_tune_page(ft, dashboard_url=job_url(job.job_id), running=running)
    except TogetherError as exc:
        return page.error_page(
            f"Could not read {job.job_id} from Together: {type(exc).__name__}: {str(exc)[:300]}"
        )


def create_app(
    *,
    locate: Callable[[data.TaskRef], data.JobRef | None] = data.locate,
    hook_factory: Callable[[str], TogetherHook] = _default_hook,
) -> FastAPI:
    """
    Build the app.

    :param locate: finds the job of a task instance (default: its XCom in the metadata database).
    :param hook_factory: builds the hook for a connection id (default: :class:`TogetherHook`).
    """
    sub = FastAPI(title="Together fine-tuning views", docs_url=None, redoc_url=None, openapi_url=None)

    @sub.get("/ti/{dag_id}/{run_id}/{task_id}/{map_index}", response_class=HTMLResponse)
    async def task_instance_view(
        dag_id: str, run_id: str, task_id: str, map_index: str, request: Request
    ) -> Any:
        """The Together tab of one task instance."""
        await _authorize(request, dag_id)
        ref = data.TaskRef(dag_id, run_id, task_id, parse_map_index(map_index))

        def build() -> str:
            return _render(ref, locate(ref), hook_factory)

        return HTMLResponse(await asyncio.to_thread(build), headers=_HEADERS)

    return sub


app = create_app()
