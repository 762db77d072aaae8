"""
The retry decision, as plain functions of (request, outcome, attempt): no sleeping, no sending.

Why not tenacity: the decision depends on the *request* (a job create may only be resent when the server
cannot have seen it) and on the *response* (``retry-after-ms``), and it must raise a different exception
per case (:class:`TogetherAmbiguousSubmitError` vs :class:`TogetherServerError`). A tenacity ``Retrying``
would wrap all that in callbacks and ``RetryError``; an explicit loop over this decision is shorter and the
sync and async shells share it unchanged (``_flow.request``).

.. seealso:: https://docs.together.ai/docs/rate-limits
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import httpx

from airflow_provider_together._transport.http import Retry, error_for_response, request_id
from airflow_provider_together.exceptions import (
    TogetherAmbiguousSubmitError,
    TogetherResponseError,
    TogetherTransportError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_together._transport.http import Spec
    from airflow_provider_together._transport.settings import TogetherSettings

MAX_RETRY_AFTER = 60.0
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# The request provably never reached the server: safe to resend even a job create.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """
    When to resend and how long to wait first.

    :param max_retries: resends after the first attempt (0 disables retries).
    :param delay: first back-off step in seconds; doubles per attempt.
    :param max_delay: cap of the exponential back-off.
    :param jitter: returns a float in [0, 1); scales the back-off down by up to 25 % so that many
        clients rate-limited together do not come back in lockstep. Injectable for deterministic tests.
    :param now: wall clock for HTTP-date ``Retry-After`` values.
    """

    max_retries: int = 2
    delay: float = 1.0
    max_delay: float = 10.0
    jitter: Callable[[], float] = field(default=random.random, compare=False)
    now: Callable[[], float] = field(default=time.time, compare=False)

    @classmethod
    def from_settings(cls, settings: TogetherSettings) -> RetryPolicy:
        """The policy configured on the connection (``max_retries``, ``retry_delay``, ``retry_max_delay``)."""
        return cls(settings.max_retries, settings.retry_delay, settings.retry_max_delay)

    def backoff(self, attempt: int) -> float:
        """Exponential back-off with jitter before resend number ``attempt + 1``."""
        return min(self.delay * 2.0**attempt, self.max_delay) * (1.0 - 0.25 * self.jitter())

    def retry_after(self, headers: httpx.Headers) -> float | None:
        """
        The server's requested wait: ``retry-after-ms``, else ``Retry-After`` (seconds or HTTP date).

        Values outside [0, 60] s are ignored, as the Together SDKs do: a broken header must not park a
        task for an hour.
        """
        seconds: float | None = None
        raw_ms = headers.get("retry-after-ms")
        raw = headers.get("retry-after")
        try:
            if raw_ms is not None:
                seconds = float(raw_ms) / 1000.0
            elif raw is not None:
                seconds = float(raw)
        except ValueError:
            seconds = None
        if seconds is None and raw is not None:
            try:
                seconds = parsedate_to_datetime(raw).timestamp() - self.now()
            except (TypeError, ValueError):
                return None
        if seconds is None or not 0.0 <= seconds <= MAX_RETRY_AFTER:
            return None
        return seconds

    def after_response(self, spec: Spec, response: httpx.Response, attempt: int, *, secret: str) -> float:
        """
        Return the delay before resending ``spec`` after the error ``response``; raise if it is final.

        A job create (``Retry.SUBMIT``) is resent only on 429 (the server refused before acting). Its 5xx
        raises :class:`TogetherAmbiguousSubmitError`: the job may exist, and resending could pay twice.
        """
        status = response.status_code
        retryable = status in RETRY_STATUSES or status > 504
        if spec.retry is Retry.SUBMIT:
            retryable = status == 429
            if status >= 500:
                raise TogetherAmbiguousSubmitError(
                    f"{spec.describe()} answered {status} after the request was sent: the job may "
                    "or may not have been created, so it was not resent. Look for it in the job list.",
                    status_code=status,
                    request_id=request_id(response.headers),
                )
        else:
            override = response.headers.get("x-should-retry")
            if override in ("true", "false"):
                retryable = override == "true"
        if not retryable or attempt >= self.max_retries:
            raise error_for_response(response, secret=secret, context=spec.describe())
        wait = self.retry_after(response.headers)
        return self.backoff(attempt) if wait is None else wait

    def after_error(self, spec: Spec, exc: httpx.TransportError, attempt: int) -> float:
        """
        Return the delay before resending ``spec`` after a transport failure; raise if it is final.

        For a job create only errors raised before the request left (connect errors, pool waits) are
        retried; a read timeout or a dropped connection after sending raises
        :class:`TogetherAmbiguousSubmitError`.
        """
        name = type(exc).__name__
        if spec.retry is Retry.SUBMIT and not isinstance(exc, NEVER_SENT):
            raise TogetherAmbiguousSubmitError(
                f"{spec.describe()} failed after the request was sent ({name}): the job may or may "
                "not have been created, so it was not resent. Look for it in the job list."
            ) from exc
        if not isinstance(exc, TRANSIENT) or attempt >= self.max_retries:
            raise TogetherTransportError(
                f"{spec.describe()} failed after {attempt + 1} attempt(s): {name}: {exc}"
            ) from exc
        return self.backoff(attempt)

    def after_unreadable(self, spec: Spec, error: TogetherResponseError, attempt: int) -> float:
        """
        Return the delay before resending ``spec`` after an unreadable answer; raise if it is final.

        A proxy's error page or a truncated body is usually gone on the next try, so reads, polls and
        cancels are resent like after a 5xx. A job creation is not: the server answered, so the job may
        exist, and the operator must look for it (:class:`TogetherAmbiguousSubmitError`).
        """
        if spec.retry is Retry.SUBMIT:
            raise TogetherAmbiguousSubmitError(
                f"{error.message}: the job may or may not have been created, so it was not "
                "resent. Look for it in the job list.",
                status_code=error.status_code,
                request_id=error.request_id,
            ) from error
        if attempt >= self.max_retries:
            raise error
        return self.backoff(attempt)
