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


def _password(conn_id: str, what: str) -> str:
    from airflow.providers.common.compat.sdk import BaseHook

    password = BaseHook.get_connection(conn_id).password
    if not password:
        raise TogetherConfigError(
            [(f"{what}_conn_id", f"connection {conn_id!r} has no password (the {what} key)")]
        )
    return password


def secret_request_fields(*, wandb_conn_id: str | None, hf_conn_id: str | None) -> dict[str, str]:
    """Return the secret request fields to merge into the POST /fine-tunes body (``wandb_key``, ``hf_api_token``)."""
    fields: dict[str, str] = {}
    if wandb_conn_id:
        # Together's wire name is wandb_key (both SDKs send it), not the spec's wandb_api_key.
        fields["wandb_key"] = _password(wandb_conn_id, "wandb")
    if hf_conn_id:
        fields["hf_api_token"] = _password(hf_conn_id, "hf")
    return fields
