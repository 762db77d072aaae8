"""
Injected failures (per route) and job scenarios (per job), set with CLI flags or the admin API.

A fault rule matches requests by route (``"POST /v1/fine-tunes"``, the route template
``"GET /v1/fine-tunes/{job_id}"``, a concrete path, or an ``fnmatch`` pattern such as ``"GET /v1/*"``) and
fires with a probability (``rate``) and/or for a number of matching requests (``count``, a burst). Kinds:

- ``status``: answer ``status`` (429 with ``Retry-After``, 500, 503 ...) in the API's error shape;
- ``latency``: delay the answer by ``latency_ms`` (combines with the others);
- ``drop``: close the socket without any response;
- ``ambiguous``: do the work (e.g. commit the job), then answer 500, so a careless client resubmits;
- ``body``: answer ``status`` (default 200) with ``body`` as it is (or ``body_b64``, raw bytes such as
  invalid UTF-8) and ``content_type``, without doing the work: an estimate with a null price, a proxy's
  HTML page, JSON of the wrong shape, a job whose status went back from a terminal one, events with
  duplicate or missing timestamps;
- ``truncate``: do the work, then send the answer with a ``Content-Length`` larger than its body, half
  of the body, and close;
- ``slow``: do the work, then send the answer ``bytes_per_second`` bytes a second;
- ``gzip_bomb``: answer ``status`` (default 200) with a gzip body of about 1 MiB per GiB that inflates to
  ``size_mb`` MiB (default 1024), without doing the work;
- ``redirect``: answer 302 to the same path (a redirect loop), without doing the work.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import asdict, dataclass, field
from enum import Enum
from fnmatch import fnmatchcase
from typing import Any

from airflow_provider_together.emulator.errors import APIError
from airflow_provider_together.emulator.timeline import Scenario

__all__ = ["FaultKind", "FaultRule", "Faults", "ScenarioRule", "parse_fault_spec"]

_MESSAGES = {
    429: (
        "Rate limit exceeded: too many requests, please retry later",
        "rate_limit_exceeded",
        "dynamic_request_limited",
    ),
    500: ("Internal server error", "server_error", None),
    502: ("Bad gateway", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "service_unavailable", None),
    504: ("Timeout: the request took too long", "timeout", None),
}


class FaultKind(str, Enum):
    """What a fault rule does to a matching request."""

    STATUS = "status"
    LATENCY = "latency"
    DROP = "drop"
    AMBIGUOUS = "ambiguous"
    BODY = "body"
    TRUNCATE = "truncate"
    SLOW = "slow"
    GZIP_BOMB = "gzip_bomb"
    REDIRECT = "redirect"


#: Kinds that answer instead of the route (the work is not done) and kinds that mangle its real answer.
REPLACING = frozenset({FaultKind.BODY, FaultKind.GZIP_BOMB, FaultKind.REDIRECT})
MANGLING = frozenset({FaultKind.TRUNCATE, FaultKind.SLOW})


@dataclass
class FaultRule:
    """
    One injected failure.

    :param route: what to match (see the module docstring); ``"*"`` matches every API route.
    :param kind: the :class:`FaultKind`.
    :param status: the HTTP status for ``status`` (and ``ambiguous``, default 500).
    :param rate: probability that a matching request triggers the rule.
    :param count: trigger at most this many times (a burst), then stay inert; ``None`` means forever.
    :param latency_ms: added delay for ``latency``.
    :param retry_after: seconds for the ``Retry-After`` header (429/503).
    :param message: override of the error message.
    :param body: for ``body``: the exact answer body (text).
    :param body_b64: for ``body``: the exact answer body as base64 (bytes that are not text).
    :param content_type: for ``body``: its ``Content-Type``.
    :param size_mb: for ``gzip_bomb``: MiB the body inflates to.
    :param bytes_per_second: for ``slow``: how fast the answer trickles.
    """

    route: str = "*"
    kind: FaultKind = FaultKind.STATUS
    status: int = 500
    rate: float = 1.0
    count: int | None = None
    latency_ms: float = 0.0
    retry_after: float | None = None
    message: str | None = None
    body: str | None = None
    body_b64: str | None = None
    content_type: str = "application/json"
    size_mb: float = 1024.0
    bytes_per_second: float = 1.0
    id: str = field(default_factory=lambda: f"fault-{uuid.uuid4().hex[:8]}")
    hits: int = 0

    def matches(self, route_key: str, concrete: str) -> bool:
        """Whether the rule applies to a request with this route template key / concrete path."""
        if self.count is not None and self.hits >= self.count:
            return False
        pattern = self.route if " " in self.route else f"* {self.route}"
        return fnmatchcase(route_key, pattern) or fnmatchcase(concrete, pattern)

    def error(self) -> APIError:
        """The error answer this rule produces."""
        message, type_, code = _MESSAGES.get(
            self.status, (f"Emulated error {self.status}", "server_error", None)
        )
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = f"{self.retry_after:g}"
        return APIError(self.status, self.message or message, type_=type_, code=code, headers=headers)

    def to_json(self) -> dict[str, Any]:
        """Render for the admin API."""
        return {**asdict(self), "kind": self.kind.value}


@dataclass
class ScenarioRule:
    """
    Assign a scenario to jobs created from now on that match ``model`` / ``suffix`` (both optional).

    :param count: apply to this many jobs, then stay inert; ``None`` means every matching job.
    """

    scenario: Scenario
    params: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    suffix: str | None = None
    count: int | None = None
    id: str = field(default_factory=lambda: f"scenario-{uuid.uuid4().hex[:8]}")
    used: int = 0

    def to_json(self) -> dict[str, Any]:
        """Render for the admin API."""
        return {**asdict(self), "scenario": self.scenario.value}


@dataclass
class Decision:
    """What the gate must do with one request."""

    latency_s: float = 0.0
    error: APIError | None = None
    drop: bool = False
    ambiguous: APIError | None = None
    raw: FaultRule | None = None
    mangle: FaultRule | None = None


class Faults:
    """
    The active fault and scenario rules.

    :param seed: seed for the rate draws, so a flaky-network test is reproducible.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rules: list[FaultRule] = []
        self.scenarios: list[ScenarioRule] = []
        self.default_scenario = Scenario.COMPLETE
        self.default_params: dict[str, Any] = {}
        self._random = random.Random(seed)

    def reset(self) -> None:
        """Remove every rule and return to the default scenario."""
        self.rules.clear()
        self.scenarios.clear()
        self.default_scenario = Scenario.COMPLETE
        self.default_params = {}

    def decide(self, route_key: str, concrete: str) -> Decision:
        """Draw the faults for one request (each rule counts a hit only when it fires)."""
        decision = Decision()
        if not self.rules:
            return decision
        for rule in self.rules:
            if not rule.matches(route_key, concrete) or (
                rule.rate < 1.0 and self._random.random() >= rule.rate
            ):
                continue
            if rule.kind is FaultKind.LATENCY:
                rule.hits += 1
                decision.latency_s += rule.latency_ms / 1000.0
            elif (
                decision.error is None
                and not decision.drop
                and decision.ambiguous is None
                and decision.raw is None
                and decision.mangle is None
            ):
                rule.hits += 1
                if rule.kind in REPLACING:
                    decision.raw = rule
                elif rule.kind in MANGLING:
                    decision.mangle = rule
                elif rule.kind is FaultKind.DROP:
                    decision.drop = True
                elif rule.kind is FaultKind.AMBIGUOUS:
                    decision.ambiguous = FaultRule(status=rule.status or 500, message=rule.message).error()
                else:
                    decision.error = rule.error()
        return decision

    def scenario_for(self, model: str, suffix: str | None) -> tuple[Scenario, dict[str, Any]]:
        """Pick (and consume) the scenario of a job being created."""
        for rule in self.scenarios:
            if rule.count is not None and rule.used >= rule.count:
                continue
            if (rule.model is None or rule.model == model) and (rule.suffix is None or rule.suffix == suffix):
                rule.used += 1
                return rule.scenario, dict(rule.params)
        return self.default_scenario, dict(self.default_params)


def parse_fault_spec(text: str) -> FaultRule:
    """
    Parse a ``--fault`` CLI value: ``ROUTE=KIND[:STATUS][,key=value...]``.

    Examples: ``"POST /v1/fine-tunes=ambiguous"``, ``"GET /v1/fine-tunes/*=status:429,count=3,retry_after=1"``,
    ``"*=latency,latency_ms=50"``, ``"PUT *=drop,rate=0.1"``,
    ``'POST /v1/fine-tunes/estimate-price=body:200,count=1,body={"estimation_available": true}'``
    (``body=`` takes the rest of the spec, commas included, so it comes last).
    """
    route, sep, rest = text.partition("=")
    if not sep:
        raise ValueError(f"fault spec {text!r} must look like ROUTE=KIND[:STATUS][,key=value...]")
    rest, _, body = rest.partition(",body=") if not rest.startswith("body=") else ("", "", rest[5:])
    head, *options = rest.split(",")
    kind, _, status = head.partition(":")
    rule = FaultRule(route=route.strip(), kind=FaultKind(kind.strip()))
    if rule.kind in (FaultKind.BODY, FaultKind.GZIP_BOMB):
        rule.status, rule.body = 200, body or None
    if status:
        rule.status = int(status)
    for option in options:
        key, _, value = option.partition("=")
        key = key.strip()
        if key in ("rate", "latency_ms", "retry_after", "size_mb", "bytes_per_second"):
            setattr(rule, key, float(value))
        elif key in ("count", "status"):
            setattr(rule, key, int(value))
        elif key in ("message", "content_type", "body_b64"):
            setattr(rule, key, value)
        else:
            raise ValueError(f"unknown fault option {key!r} in {text!r}")
    return rule
