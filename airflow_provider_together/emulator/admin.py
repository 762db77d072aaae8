"""A small synchronous client of the emulator's admin API (``/_emulator/``), for tests and scripts."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["AdminClient"]


class AdminClient:
    """
    Drive a running emulator: reset it, inject faults, pick scenarios, read jobs and request counts.

    :param root_url: the emulator's URL without ``/v1`` (``http://127.0.0.1:PORT``).
    :param timeout: seconds per admin call.
    """

    def __init__(self, root_url: str, timeout: float = 10.0) -> None:
        self.root_url = root_url.rstrip("/")
        self._client = httpx.Client(base_url=f"{self.root_url}/_emulator", timeout=timeout)

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        response = self._client.request(method, path, json=json)
        response.raise_for_status()
        return response.json()

    def health(self) -> dict[str, Any]:
        """Return ``{"ok", "pid", "speed"}``."""
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def reset(self) -> None:
        """Forget files, jobs, faults, scenarios and counts; restore start-up settings."""
        self._call("POST", "/reset")

    def settings(self) -> dict[str, Any]:
        """Current settings (``speed``, ``credit_limit_usd``, ``multipart_threshold_bytes`` ...)."""
        result: dict[str, Any] = self._call("GET", "/settings")
        return result

    def update_settings(self, **changes: Any) -> dict[str, Any]:
        """Change settings, e.g. ``update_settings(speed=50, credit_limit_usd=5)``."""
        result: dict[str, Any] = self._call("PATCH", "/settings", changes)
        return result

    def add_fault(self, route: str = "*", kind: str = "status", **options: Any) -> dict[str, Any]:
        """
        Add a fault rule; returns it (with its ``id``).

        :param route: ``"POST /v1/fine-tunes"``, a route template, a concrete path or an fnmatch pattern.
        :param kind: ``status``, ``latency``, ``drop``, ``ambiguous`` or ``body`` (see ``emulator.faults``).
        :param options: ``status``, ``rate``, ``count``, ``latency_ms``, ``retry_after``, ``message``.
        """
        result: dict[str, Any] = self._call("POST", "/faults", {"route": route, "kind": kind, **options})[
            "data"
        ][0]
        return result

    def faults(self) -> list[dict[str, Any]]:
        """Active fault rules, with ``hits``."""
        result: list[dict[str, Any]] = self._call("GET", "/faults")["data"]
        return result

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._call("DELETE", "/faults")

    def remove_fault(self, fault_id: str) -> None:
        """Remove one fault rule."""
        self._call("DELETE", f"/faults/{fault_id}")

    def set_default_scenario(self, scenario: str, **params: Any) -> None:
        """Make every job that no rule matches follow ``scenario``."""
        self._call("POST", "/scenarios", {"default": scenario, "params": params})

    def add_scenario(
        self,
        scenario: str,
        *,
        model: str | None = None,
        suffix: str | None = None,
        count: int | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Make future jobs matching ``model``/``suffix`` (at most ``count`` of them) follow ``scenario``."""
        body = {"scenario": scenario, "model": model, "suffix": suffix, "count": count, "params": params}
        result: dict[str, Any] = self._call("POST", "/scenarios", body)
        return result

    def clear_scenarios(self) -> None:
        """Remove scenario rules; jobs complete normally again."""
        self._call("DELETE", "/scenarios")

    def set_job_scenario(self, job_id: str, scenario: str, **params: Any) -> dict[str, Any]:
        """Change how an existing job ends, from now on."""
        result: dict[str, Any] = self._call(
            "POST", f"/jobs/{job_id}/scenario", {"scenario": scenario, "params": params}
        )
        return result

    def jobs(self) -> list[dict[str, Any]]:
        """Every job with ``status``, ``scenario`` and ``history`` (``[{"status", "at"}]``)."""
        result: list[dict[str, Any]] = self._call("GET", "/jobs")["data"]
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        """One job with its history."""
        result: dict[str, Any] = self._call("GET", f"/jobs/{job_id}")
        return result

    def evaluations(self) -> list[dict[str, Any]]:
        """Every evaluation with ``status``, ``scenario``, ``rows`` and ``history``."""
        result: list[dict[str, Any]] = self._call("GET", "/evaluations")["data"]
        return result

    def set_evaluation_quality(self, model: str, quality: float) -> None:
        """Make the emulated judge rate ``model`` (an fnmatch pattern over model and column names) at ``quality``."""
        self._call("POST", "/evaluations/quality", {"model": model, "quality": quality})

    def clear_evaluation_quality(self) -> None:
        """Every model back to the default quality (0.5)."""
        self._call("DELETE", "/evaluations/quality")

    def set_evaluation_scenario(self, eval_id: str, scenario: str, **params: Any) -> dict[str, Any]:
        """Change how an existing evaluation ends (``error``, ``user_error``, ``stall``, ``unknown_status``)."""
        result: dict[str, Any] = self._call(
            "POST", f"/evaluations/{eval_id}/scenario", {"scenario": scenario, "params": params}
        )
        return result

    def requests(self) -> dict[str, int]:
        """Request counts per route key, e.g. ``{"POST /v1/fine-tunes": 1}``."""
        result: dict[str, int] = self._call("GET", "/requests")["routes"]
        return result

    def count(self, route_key: str) -> int:
        """Requests seen on one route key (0 if none)."""
        return self.requests().get(route_key, 0)

    def reset_counts(self) -> None:
        """Zero the request counters."""
        self._call("DELETE", "/requests")

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
