"""The error tree: one root, the documented branches, messages that carry ids and never secrets."""

from __future__ import annotations

import pytest
from airflow.exceptions import AirflowException

from airflow_provider_together import exceptions as exc


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (exc.TogetherError, AirflowException),
        (exc.TogetherConfigError, exc.TogetherError),
        (exc.TogetherFileRejectedError, exc.TogetherError),
        (exc.TogetherFileNotReadyError, exc.TogetherError),
        (exc.TogetherAPIError, exc.TogetherError),
        (exc.TogetherAuthError, exc.TogetherAPIError),
        (exc.TogetherNotFoundError, exc.TogetherAPIError),
        (exc.TogetherRateLimitError, exc.TogetherAPIError),
        (exc.TogetherBadRequestError, exc.TogetherAPIError),
        (exc.TogetherServerError, exc.TogetherAPIError),
        (exc.TogetherTransportError, exc.TogetherError),
        (exc.TogetherAmbiguousSubmitError, exc.TogetherError),
        (exc.TogetherJobError, exc.TogetherError),
        (exc.TogetherJobFailedError, exc.TogetherJobError),
        (exc.TogetherJobCancelledError, exc.TogetherJobError),
        (exc.TogetherJobTimeoutError, exc.TogetherJobError),
    ],
)
def test_tree(child: type, parent: type) -> None:
    assert issubclass(child, parent)


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in exc.__all__:
        cls = getattr(exc, name)
        assert cls.__doc__
        assert name in exc.__doc__


def test_api_error_carries_status_param_code_and_request_id() -> None:
    error = exc.TogetherBadRequestError(
        "n_epochs too high", status_code=400, param="n_epochs", code="bad", request_id="r-1"
    )
    assert str(error) == "Together API error 400: n_epochs too high (param: n_epochs) (request id: r-1)"
    assert (error.api_message, error.status_code, error.param, error.code) == (
        "n_epochs too high",
        400,
        "n_epochs",
        "bad",
    )


def test_ambiguous_submit_is_not_an_api_error() -> None:
    # Callers that catch TogetherAPIError to retry must not swallow "a job may exist".
    assert not issubclass(exc.TogetherAmbiguousSubmitError, exc.TogetherAPIError)
    assert exc.TogetherAmbiguousSubmitError("may exist", status_code=502).status_code == 502


def test_config_error_lists_every_problem() -> None:
    error = exc.TogetherConfigError([("extra.max_retries", "must be an integer"), ("password", "empty")])
    assert error.problems == [("extra.max_retries", "must be an integer"), ("password", "empty")]
    assert "2 problem(s)" in str(error)
    assert "  - password: empty" in str(error)
