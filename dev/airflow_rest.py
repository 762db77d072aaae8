"""A small synchronous client of Airflow 3's public REST API (``/api/v2``), for the local launcher and e2e tests.

Only what the demo and the end-to-end scenarios drive: DAG runs, task instances, logs, XComs, state changes and
connections. Every wait is bounded by a timeout and fails with the last state seen, so a stuck test says why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
TERMINAL_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def _q(value: str) -> str:
    # Run ids contain ':' and '+' (manual__2026-...+00:00); they must be escaped in a path segment.
    return quote(value, safe="")


class AirflowREST:
    """Talk to one Airflow API server. With ``simple_auth_manager_all_admins`` no token is needed.

    :param base_url: the API server root, e.g. ``http://127.0.0.1:PORT``.
    :param timeout: per-request timeout in seconds.
    """

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url + "/api/v2", timeout=timeout)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request and return the response as it is (fetching the token first if one is needed)."""
        response = self._client.request(method, path, **kwargs)
        if response.status_code == 401 and "authorization" not in self._client.headers:
            # Airflow 3.1's public API wants a token even when everyone is admin; it hands one out without
            # credentials in that mode (3.3 needs none).
            token = httpx.get(f"{self.base_url}/auth/token", timeout=self._client.timeout)
            token.raise_for_status()
            self._client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            response = self._client.request(method, path, **kwargs)
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request and return the decoded JSON body; raise with the body on an HTTP error."""
        response = self.send(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text[:2000]}")
        if not response.content:
            return None
        return response.json()

    # --- health and DAGs ---------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any] | None:
        """Return the health document, or None while the API server is not answering yet."""
        try:
            response = self._client.get("/monitor/health", timeout=5.0)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed and serialized ``dag_id``; fail with any import error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Through send(): on Airflow 3.1 this can be the first call, the one that fetches the token.
            response = self.send("GET", f"/dags/{_q(dag_id)}")
            if response.status_code == 200:
                return dict(response.json())
            time.sleep(1.0)
        errors = self.request("GET", "/importErrors")
        raise TimeoutError(f"DAG {dag_id} not parsed within {timeout:.0f}s; import errors: {errors}")

    def unpause(self, dag_id: str) -> None:
        """Unpause a DAG (new DAGs are paused at creation, so a manual run would stay queued)."""
        self.request("PATCH", f"/dags/{_q(dag_id)}", json={"is_paused": False})

    # --- DAG runs ---------------------------------------------------------------------------------------------

    def trigger(
        self, dag_id: str, conf: Mapping[str, Any] | None = None, *, run_id: str | None = None
    ) -> str:
        """Create a manual DAG run (unpausing the DAG first) and return its run id."""
        self.unpause(dag_id)
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf or {})}
        if run_id is not None:
            body["dag_run_id"] = run_id
        return str(self.request("POST", f"/dags/{_q(dag_id)}/dagRuns", json=body)["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """Return one DAG run."""
        return dict(self.request("GET", f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}"))

    def wait_dag_run(
        self, dag_id: str, run_id: str, *, states: Iterable[str] = TERMINAL_RUN_STATES, timeout: float = 180.0
    ) -> str:
        """Wait (bounded) until the run reaches one of ``states``; return the state."""
        wanted = set(states)
        return str(
            self._wait(
                lambda: self.dag_run(dag_id, run_id)["state"],
                lambda s: s in wanted,
                timeout,
                f"{dag_id}/{run_id}",
            )
        )

    # --- task instances ---------------------------------------------------------------------------------------

    def _ti_path(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        path = f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        return path if map_index < 0 else f"{path}/{map_index}"

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Return every task instance of a run (mapped ones included)."""
        body = self.request(
            "GET", f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances", params={"limit": 1000}
        )
        return list(body["task_instances"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """Return one task instance (``rendered_fields``, ``pid``, ``try_number``, ``state`` ...)."""
        return dict(self.request("GET", self._ti_path(dag_id, run_id, task_id, map_index)))

    def wait_ti(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        *,
        states: Iterable[str],
        timeout: float = 120.0,
        map_index: int = -1,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Wait (bounded) until the task instance is in one of ``states`` (and ``predicate`` holds); return it."""
        wanted = set(states)
        ok = predicate or (lambda ti: True)
        return dict(
            self._wait(
                lambda: self.task_instance(dag_id, run_id, task_id, map_index),
                lambda ti: ti["state"] in wanted and ok(ti),
                timeout,
                f"{dag_id}/{run_id}/{task_id}[{map_index}]",
            )
        )

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """Return every try of a task instance (history and current), oldest first."""
        path = self._ti_path(dag_id, run_id, task_id, map_index) + "/tries"
        return sorted(self.request("GET", path)["task_instances"], key=lambda t: t["try_number"])

    def set_ti_state(self, dag_id: str, run_id: str, task_id: str, state: str, map_index: int = -1) -> Any:
        """Mark a task instance ``failed`` / ``success`` as a user would in the UI (runs trigger ``on_kill``)."""
        return self.request(
            "PATCH", self._ti_path(dag_id, run_id, task_id, map_index), json={"new_state": state}
        )

    def clear(self, dag_id: str, run_id: str, task_ids: list[str]) -> Any:
        """Clear task instances of one run (a new try is scheduled; a deferred one's trigger is killed)."""
        # only_failed defaults to True in the API, which would silently skip a deferred or running task.
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": task_ids,
            "only_failed": False,
            "reset_dag_runs": True,
        }
        cleared = self.request("POST", f"/dags/{_q(dag_id)}/clearTaskInstances", json=body)
        if not cleared.get("task_instances"):
            raise RuntimeError(f"clear of {dag_id}/{run_id} {task_ids} matched no task instance: {cleared}")
        return cleared

    # --- logs, XCom, links --------------------------------------------------------------------------------------

    def task_log_records(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> list[dict[str, Any]]:
        """Return the structured records of one try's full log (worker and trigger parts, merged)."""
        path = f"{self._ti_path(dag_id, run_id, task_id)}/logs/{try_number}"
        body = self.request(
            "GET",
            path,
            params={"full_content": "true", "map_index": map_index},
            headers={"Accept": "application/json"},
        )
        return [item if isinstance(item, dict) else {"event": item} for item in body.get("content", [])]

    def task_log_events(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> list[str]:
        """Return the message of every record of one try's log, in order."""
        records = self.task_log_records(dag_id, run_id, task_id, try_number, map_index)
        return [str(record.get("event", "")) for record in records]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """Return one try's full log as text: each record's message and its structured fields."""
        lines = []
        for record in self.task_log_records(dag_id, run_id, task_id, try_number, map_index):
            extra = {k: v for k, v in record.items() if k not in ("event", "timestamp")}
            lines.append(
                f"{record.get('event', '')} {json.dumps(extra, default=str) if extra else ''}".rstrip()
            )
        return "\n".join(lines)

    def xcom_keys(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[str]:
        """Return the XCom keys a task instance pushed."""
        path = f"{self._ti_path(dag_id, run_id, task_id)}/xcomEntries"
        body = self.request("GET", path, params={"map_index": map_index})
        return [entry["key"] for entry in body["xcom_entries"]]

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        """Return one XCom value (deserialized by the API server)."""
        path = f"{self._ti_path(dag_id, run_id, task_id)}/xcomEntries/{_q(key)}"
        body = self.request("GET", path, params={"map_index": map_index, "deserialize": "true"})
        return body.get("value")

    def xcom_or_none(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        """Return one XCom value, or None when it does not exist (yet)."""
        try:
            return self.xcom(dag_id, run_id, task_id, key, map_index)
        except RuntimeError as exc:
            if "-> 404" in str(exc):
                return None
            raise

    def links(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """Return the extra links of a task instance as the UI sees them (name -> URL)."""
        path = f"{self._ti_path(dag_id, run_id, task_id)}/links"
        return dict(self.request("GET", path, params={"map_index": map_index})["extra_links"])

    # --- connections ------------------------------------------------------------------------------------------

    def create_connection(self, conn_id: str, conn: Mapping[str, Any]) -> Any:
        """Create a connection in the metadata DB (visible and editable in the UI)."""
        body = {"connection_id": conn_id, **conn}
        if isinstance(body.get("extra"), Mapping):
            body["extra"] = json.dumps(body["extra"])
        return self.request("POST", "/connections", json=body)

    # --- helpers ----------------------------------------------------------------------------------------------

    @staticmethod
    def _wait(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = fetch()
            if done(last):
                return last
            time.sleep(0.5)
        raise TimeoutError(f"{what}: condition not met within {timeout:.0f}s; last seen: {last}")
