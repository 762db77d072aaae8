"""
The provider's error tree: one root, a few documented branches, no logic beyond attributes.

Callers branch on the exception *type* (and ``status_code``), never on message text::

    TogetherError (AirflowException)
    ├── TogetherConfigError            the job config or an operator argument is invalid (no HTTP call made)
    ├── TogetherFileRejectedError      a training file failed the local check or the server's validation
    ├── TogetherFileNotReadyError      Together was still validating an uploaded file when the wait ran out
    ├── TogetherEvaluationGateError    an evaluation's figure is below the gate (also AirflowFailException)
    ├── TogetherAPIError               the API answered with an error status
    │   ├── TogetherAuthError          401 / 403: missing, wrong or unauthorised API key
    │   ├── TogetherNotFoundError      404: unknown file, job or model
    │   ├── TogetherRateLimitError     429 after the retries ran out
    │   ├── TogetherBadRequestError    400 / 402 / 409 / 422: the API rejected the request (``param`` names the field)
    │   └── TogetherServerError        5xx after the retries ran out
    ├── TogetherTransportError         the request never got an answer (connect error, timeout) after retries
    ├── TogetherResponseError          an answer that cannot be read: not JSON, wrong shape, cut short, too big
    ├── TogetherAmbiguousSubmitError   POST /fine-tunes may or may not have created a job: reconcile, do not resend
    └── TogetherJobError               a fine-tuning job ended badly
        ├── TogetherJobFailedError     status ``error`` or ``user_error``; carries Together's own messages
        │   └── TogetherJobUserError   status ``user_error``: the input was at fault; never retried
        ├── TogetherJobCancelledError  status ``cancelled``
        └── TogetherJobTimeoutError    Airflow stopped waiting before the job ended

``transient_errors()`` names the branches a wait for a running job outlives (no answer, 5xx, 429, an
unreadable answer): the trigger, the sensor and the worker's wait count them in a row instead of failing.

Every message is built by this package from API fields and never includes the API key; ``request_id``
is kept so that Together support can find the request.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

__all__ = [
    "TogetherAPIError",
    "TogetherAmbiguousSubmitError",
    "TogetherAuthError",
    "TogetherBadRequestError",
    "TogetherConfigError",
    "TogetherError",
    "TogetherEvaluationGateError",
    "TogetherFileNotReadyError",
    "TogetherFileRejectedError",
    "TogetherJobCancelledError",
    "TogetherJobError",
    "TogetherJobFailedError",
    "TogetherJobTimeoutError",
    "TogetherJobUserError",
    "TogetherNotFoundError",
    "TogetherRateLimitError",
    "TogetherResponseError",
    "TogetherServerError",
    "TogetherTransportError",
    "transient_errors",
]


class TogetherError(AirflowException):
    """Root of every error raised by this provider."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        self.message = message
        self.request_id = request_id
        super().__init__(f"{message} (request id: {request_id})" if request_id else message)


class TogetherConfigError(TogetherError):
    """
    The fine-tuning config (or an operator argument) is invalid; raised before any HTTP call.

    :param problems: one ``(field_path, message)`` pair per problem found, all reported together.
    """

    def __init__(
        self, problems: list[tuple[str, str]], *, heading: str = "Invalid fine-tuning config"
    ) -> None:
        self.problems = list(problems)
        lines = [f"{heading}: {len(self.problems)} problem(s)"]
        lines += [f"  - {field}: {msg}" if field else f"  - {msg}" for field, msg in self.problems]
        super().__init__("\n".join(lines))


class TogetherFileRejectedError(TogetherError):
    """
    A training file was rejected, locally before upload or by Together's validation after it.

    :param file: the local path or the Together file id.
    :param line: 1-based line number of the first problem, when known.
    """

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, request_id: str | None = None
    ) -> None:
        self.file = file
        self.line = line
        super().__init__(message, request_id=request_id)


class TogetherFileNotReadyError(TogetherError):
    """
    Together had not finished validating an uploaded file when ``wait_for_file_ready`` stopped waiting.

    :param file: the Together file id.
    """

    def __init__(self, message: str, *, file: str | None = None, request_id: str | None = None) -> None:
        self.file = file
        super().__init__(message, request_id=request_id)


class TogetherEvaluationGateError(TogetherError, AirflowFailException):
    """
    A completed evaluation scored below the gate, so the model must not be promoted.

    Also an ``AirflowFailException``: a retry would pay for the same verdict. The operator raises
    ``AirflowSkipException`` instead when ``soft_fail=True``.

    :param evaluation_id: the Together evaluation id.
    :param figure: the figure that failed (``win_rate``, ``pass_percentage``, ``mean_score``).
    :param value: its value (``None`` when the evaluation produced none).
    :param threshold: the gate's minimum.
    """

    def __init__(
        self, message: str, *, evaluation_id: str, figure: str, value: float | None, threshold: float
    ) -> None:
        self.evaluation_id = evaluation_id
        self.figure = figure
        self.value = value
        self.threshold = threshold
        super().__init__(message)


class TogetherAPIError(TogetherError):
    """
    The API answered with an error status.

    :param status_code: the HTTP status.
    :param message: the API's own error message (``error.message``), or a summary of the body.
    :param param: the request field the API blamed, when it named one.
    :param code: the API's error code or type, when given.
    :param body: the parsed error body, for debugging; it never holds the request's secrets.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        param: str | None = None,
        code: str | None = None,
        body: Any = None,
    ) -> None:
        self.status_code = status_code  # type: ignore[assignment]  # an int, not only the HTTPStatus members
        self.param = param
        self.code = code
        self.body = body
        where = f" (param: {param})" if param else ""
        super().__init__(f"Together API error {status_code}: {message}{where}", request_id=request_id)
        # Keep the API's own words reachable without the decoration added above.
        self.api_message = message


class TogetherAuthError(TogetherAPIError):
    """401 or 403: the API key is missing, wrong, or not allowed to do this."""


class TogetherNotFoundError(TogetherAPIError):
    """404: the file, job or model does not exist (or is not available for fine-tuning)."""


class TogetherRateLimitError(TogetherAPIError):
    """429: still rate limited after the configured retries."""


class TogetherBadRequestError(TogetherAPIError):
    """400, 402, 409 or 422: the API refused the request; ``param`` names the offending field when known."""


class TogetherServerError(TogetherAPIError):
    """5xx: the API failed after the configured retries."""


class TogetherTransportError(TogetherError):
    """No answer at all after the configured retries: connection refused or reset, or a timeout."""


class TogetherResponseError(TogetherError):
    """
    Together (or something between it and us: a proxy, a load balancer) answered something unreadable.

    Not JSON, JSON of the wrong shape, invalid UTF-8, a body cut short or larger than the cap, a redirect
    the API never sends. For reads, polls and cancels it is transient (the hook resends; a waiting task
    counts it against ``max_consecutive_failures``); for a job creation it means the job may exist, so the
    hook raises :class:`TogetherAmbiguousSubmitError` instead and the operator reconciles.

    :param method: the request's HTTP method.
    :param path: the request's path under the base URL (never a presigned URL's signature).
    :param status_code: the HTTP status of the answer.
    :param body_start: the first bytes of the body, decoded leniently, secrets scrubbed.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status_code: int,
        body_start: str = "",
        request_id: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status_code = status_code  # type: ignore[assignment]  # an int, not only the HTTPStatus members
        self.body_start = body_start
        super().__init__(message, request_id=request_id)


class TogetherAmbiguousSubmitError(TogetherError):
    """
    ``POST /fine-tunes`` got a 5xx or timed out after the request was sent: a job **may exist**.

    Resending could pay for the same training twice, so the hook never does. The operator reconciles by
    looking for the job in the job list instead.

    :param status_code: the 5xx status, or ``None`` for a read timeout / dropped connection.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, request_id: str | None = None
    ) -> None:
        self.status_code = status_code  # type: ignore[assignment]  # None: no HTTP answer at all
        super().__init__(message, request_id=request_id)


class TogetherJobError(TogetherError):
    """
    A fine-tuning job ended without producing a model.

    :param job_id: the Together job id (``ft-...``).
    :param status: the job's final status value.
    """

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        status: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.status = status
        super().__init__(message, request_id=request_id)


class TogetherJobFailedError(TogetherJobError):
    """The job ended in ``error`` or ``user_error``; the message carries Together's own error events."""


class TogetherJobCancelledError(TogetherJobError):
    """The job was cancelled (by a user, by Together, or by this provider on kill or timeout)."""


class TogetherJobTimeoutError(TogetherJobError):
    """Airflow stopped waiting for the job before it reached a terminal status."""


class TogetherJobUserError(TogetherJobFailedError, AirflowFailException):
    """
    The job ended in ``user_error``: the input was at fault, so a task retry would pay for the same failure.

    It is also an ``AirflowFailException``, so Airflow fails the task without using up retries.
    """


def transient_errors() -> tuple[type[TogetherError], ...]:
    """
    The errors a wait for a running job outlives: another poll may well succeed.

    No answer (transport), 5xx, 429 after the hook's own retries, and an unreadable answer. The trigger,
    the sensor and the worker's wait all count them against ``max_consecutive_failures``; anything else
    (auth, not found, bad request) ends the wait at once.
    """
    return (TogetherTransportError, TogetherServerError, TogetherRateLimitError, TogetherResponseError)
