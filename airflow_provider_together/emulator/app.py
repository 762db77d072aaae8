"""
The FastAPI application: one gate in front of every API route (count, authenticate, inject faults), the
API's error shape for every failure, and the routers of :mod:`.routes_files`, :mod:`.routes_jobs`,
:mod:`.routes_evals` and :mod:`.routes_admin`.

Routes return :class:`FastJSON` responses built from plain dicts: no response-model validation on the hot
path, because a thousand polling triggers hit ``GET /v1/fine-tunes/{id}`` in the benchmarks.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING, Any

import msgspec
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from airflow_provider_together.emulator import hostile
from airflow_provider_together.emulator.errors import APIError

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from airflow_provider_together.emulator.state import EmulatorState

__all__ = ["TRANSPORT_KEY", "FastJSON", "GatedRoute", "create_app", "error_response", "state_of"]

TRANSPORT_KEY = "together_emulator.transport"
_ENCODER = msgspec.json.Encoder()
_UNAUTHORIZED = APIError(
    401,
    "Invalid API key provided. You can find your API key at https://api.together.ai/settings/api-keys.",
    type_="invalid_request_error",
    code="invalid_api_key",
)


class FastJSON(Response):
    """A JSON response encoded by msgspec (several times faster than ``json.dumps`` for job objects)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Encode ``content`` as JSON."""
        return _ENCODER.encode(content)


def error_response(error: APIError) -> Response:
    """Render an :class:`APIError` in Together's shape."""
    return FastJSON(error.body(), status_code=error.status_code, headers=error.headers)


def state_of(request: Request) -> EmulatorState:
    """The emulator state the app was built with."""
    state: EmulatorState = request.app.state.emulator
    return state


def _authorized(request: Request, api_key: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


def _drop(request: Request) -> None:
    # Closing the socket without a byte of response is what a client sees when a proxy or the server dies.
    transport = request.scope.get(TRANSPORT_KEY)
    if transport is not None:
        transport.abort()


class GatedRoute(APIRoute):
    """
    An API route behind the gate: counted per route, authenticated (``/v1/`` only), and subject to faults.

    The presigned upload URL (``/_upload/...``) is counted and can be faulted, but needs no key, like S3.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler with the gate."""
        handler = super().get_route_handler()
        keys = {method: f"{method} {self.path}" for method in self.methods}
        needs_key = self.path.startswith("/v1/")

        async def gated(request: Request) -> Response:
            state = state_of(request)
            key = keys[request.method]
            state.counts[key] += 1
            if needs_key and not _authorized(request, state.settings.api_key):
                return error_response(_UNAUTHORIZED)
            decision = state.faults.decide(key, f"{request.method} {request.url.path}")
            if decision.latency_s:
                await asyncio.sleep(decision.latency_s)
            if decision.drop:
                _drop(request)
                return Response(status_code=599)
            if decision.error is not None:
                return error_response(decision.error)
            if decision.raw is not None:
                return hostile.replacement(decision.raw, request.url.path)
            try:
                response = await handler(request)
            except APIError as exc:
                return error_response(exc)
            except ClientDisconnect:
                # The client went away mid-upload; nobody reads this answer, and it is not a server error.
                return Response(status_code=499)
            if decision.ambiguous is not None:
                # The work is done and committed; only the answer is lost.
                return error_response(decision.ambiguous)
            if decision.mangle is not None:
                # The work is done too; only the answer arrives broken.
                return hostile.mangled(decision.mangle, response, request.scope.get(TRANSPORT_KEY))
            return response

        return gated


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith(("/v1/", "/_upload/")):
        state_of(request).counts["unmatched"] += 1
    return error_response(APIError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}"))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    param = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
    return error_response(APIError(400, f"Invalid request: {first.get('msg', 'bad input')}", param=param))


def create_app(state: EmulatorState) -> FastAPI:
    """
    Build the application around a state.

    :param state: the emulator state (owned by the caller, closed by the caller).
    """
    from airflow_provider_together.emulator import routes_admin, routes_evals, routes_files, routes_jobs

    app = FastAPI(
        title="Together API emulator",
        docs_url="/_emulator/docs",
        openapi_url="/_emulator/openapi.json",
        redoc_url=None,
    )
    app.state.emulator = state
    app.include_router(routes_files.router)
    app.include_router(routes_jobs.router)
    app.include_router(routes_evals.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_evals.admin)
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    return app
