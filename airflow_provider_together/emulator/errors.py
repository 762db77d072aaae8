"""The API's error shape, raised from anywhere in the emulator and rendered by one handler in :mod:`.app`."""

from __future__ import annotations

from typing import Any

__all__ = ["APIError", "not_found"]


class APIError(Exception):
    """
    An error answer in Together's shape: ``{"error": {"message", "type", "param", "code"}}``.

    :param status_code: HTTP status.
    :param message: user-facing message; never contains a secret from the request.
    :param type_: Together's error ``type`` (``invalid_request_error``, ``authentication_error`` ...).
    :param param: the request field at fault, so clients can point at it.
    :param code: a machine-readable code, when Together gives one.
    :param headers: extra response headers (``Retry-After`` for 429).
    :param bare: answer ``{"message": ...}`` without the ``error`` wrapper, as the model-limits 404 does.
    :param extra: more top-level keys (the 409 on upload carries ``file_id``).
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        bare: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.type_ = type_
        self.param = param
        self.code = code
        self.headers = headers or {}
        self.bare = bare
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """Return the JSON body of the answer."""
        if self.bare:
            return {"message": self.message, **self.extra}
        error = {"message": self.message, "type": self.type_, "param": self.param, "code": self.code}
        return {"error": error, **self.extra}


def not_found(kind: str, ident: str, *, param: str | None = None) -> APIError:
    """Build the 404 for an unknown file, job or model."""
    return APIError(404, f"{kind} {ident} not found", param=param, code="not_found")
