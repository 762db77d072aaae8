"""
Secrets the job needs (W&B key, Hugging Face token), read from Airflow connections at submit time.

They are never operator arguments: an argument is rendered into the UI's "Rendered Template" tab, stored
in the serialized DAG and easy to log. A connection's password is masked in task logs by Airflow as soon
as it is read. The values go straight into the request body sent to Together and nowhere else: not the
config, not its fingerprint, not XCom, not trigger kwargs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_together.exceptions import TogetherConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["SECRET_FIELDS", "reject_inline_secrets", "secret_request_fields"]

#: Request/config keys that hold a secret, mapped to the operator argument that must supply them instead.
SECRET_FIELDS: dict[str, str] = {
    "wandb_key": "wandb_conn_id",
    "wandb_api_key": "wandb_conn_id",
    "hf_api_token": "hf_conn_id",
    "hf_token": "hf_conn_id",
}


def reject_inline_secrets(config: Mapping[str, object]) -> None:
    """
    Fail when a secret was put in the config itself; the message never repeats the value.

    :raises TogetherConfigError: naming each offending field and the connection argument to use instead.
    """
    problems = [
        (
            field,
            f"secrets are not accepted in the config; store it as the password of a connection and pass {arg}",
        )
        for field, arg in SECRET_FIELDS.items()
        if config.get(field) not in (None, "")
    ]
    if problems:
        raise TogetherConfigError(problems)


def _not_found_errors() -> tuple[type[Exception], ...]:
    """What ``get_connection`` raises for an unknown connection id (the Task SDK's class, or core's on 3.1)."""
    found: list[type[Exception]] = []
    for module in ("airflow.sdk.exceptions", "airflow.exceptions"):
        try:
            found.append(__import__(module, fromlist=["AirflowNotFoundException"]).AirflowNotFoundException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _password(conn_id: str, what: str) -> str:
    from airflow.providers.common.compat.sdk import BaseHook

    try:
        password = BaseHook.get_connection(conn_id).password
    except _not_found_errors() as exc:
        raise TogetherConfigError(
            [(f"{what}_conn_id", f"connection {conn_id!r} does not exist ({type(exc).__name__})")]
        ) from exc
    if not password:
        raise TogetherConfigError(
            [(f"{what}_conn_id", f"connection {conn_id!r} has no password (the {what} key)")]
        )
    return password


def secret_request_fields(*, wandb_conn_id: str | None, hf_conn_id: str | None) -> dict[str, str]:
    """
    Return the secret request fields to merge into the POST /fine-tunes body (``wandb_key``, ``hf_api_token``).

    :raises TogetherConfigError: a connection is missing or has no password, naming each argument.
    """
    fields: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    # Together's wire name is wandb_key (both SDKs send it), not the spec's wandb_api_key.
    for conn_id, what, key in ((wandb_conn_id, "wandb", "wandb_key"), (hf_conn_id, "hf", "hf_api_token")):
        if not conn_id:
            continue
        try:
            fields[key] = _password(conn_id, what)
        except TogetherConfigError as exc:
            problems += exc.problems
    if problems:
        raise TogetherConfigError(problems)
    return fields
