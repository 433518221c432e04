"""The one place where errors become HTTP responses, in OpenAI's error shape:
`{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from voxhost.errors import VoxhostError

log = logging.getLogger("voxhost.http")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """Every error answer, in OpenAI's shape."""

    error: ErrorDetail


# What each error status means here; routes list the ones they can answer (see `error_responses`).
ERROR_STATUSES = {
    400: "Bad request: invalid parameters, unreadable or empty audio, text too long",
    401: "Missing or wrong API key (only when the server has keys)",
    403: "A host name the server does not answer to (--allowed-host), or a browser page of another site "
    "(--cors-origin)",
    404: "No such model (or voice, or job) is served here",
    409: "The job has no result yet (it is not completed)",
    413: "Request body, upload or audio larger than the server's limits",
    429: "The model's queue (or the jobs' queue or disk) is full; retry after the Retry-After header's "
    "seconds",
    503: "The server is stopping, the model failed to load (or would not fit the memory budget), or its "
    "worker died; retry",
    504: "The model's worker did not answer in time; it was replaced",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route answers (401, 403, 413 and 503 go with every
    route behind the key check, the origin and body checks, and the drain)."""
    return {
        status: {"model": ErrorBody, "description": ERROR_STATUSES[status]}
        for status in sorted({*statuses, 401, 403, 413, 503})
    }


def _body(message: str, error_type: str, code: str | None, param: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_body(exc: VoxhostError) -> dict[str, Any]:
    """An error in OpenAI's shape, for answers that are not a response of their own (a stream's event)."""
    return _body(exc.message, exc.error_type, exc.code, exc.param)


def error_response(
    status: int,
    message: str,
    *,
    error_type: str,
    code: str | None,
    param: str | None = None,
    retry_after: int | None = None,
) -> JSONResponse:
    body = _body(message, error_type, code, param)
    headers = {"Retry-After": str(retry_after or 1)} if status in (429, 503) else None
    return JSONResponse(body, status_code=status, headers=headers)


async def _voxhost_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VoxhostError)
    if exc.status >= 500:
        log.error("%s %s -> %d %s", request.method, request.url.path, exc.status, exc.message)
    return error_response(
        exc.status,
        exc.message,
        error_type=exc.error_type,
        code=exc.code,
        param=exc.param,
        retry_after=exc.retry_after,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    message = f"{'.'.join(location) or 'request'}: {first.get('msg', 'invalid request')}"
    return error_response(
        400,
        message,
        error_type="invalid_request_error",
        code="invalid_request",
        param=".".join(location) or None,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return error_response(exc.status_code, str(exc.detail), error_type=error_type, code=code)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal server error", error_type="server_error", code="internal_error")


def document_errors(app: FastAPI) -> None:
    """The app's OpenAPI schema says what the API answers: request validation fails with a 400 in the
    error shape above (FastAPI would document its own 422, which this API never sends)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    responses = operation.get("responses", {})
                    if responses.pop("422", None) is not None and "400" not in responses:
                        responses["400"] = {
                            "description": ERROR_STATUSES[400],
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                            },
                        }
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(VoxhostError, _voxhost_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
