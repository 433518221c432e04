"""The one place where errors become HTTP responses, in OpenAI's error shape:
`{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from voxhost.errors import VoxhostError

log = logging.getLogger("voxhost.http")


def error_response(
    status: int,
    message: str,
    *,
    error_type: str,
    code: str | None,
    param: str | None = None,
    retry_after: int | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
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


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(VoxhostError, _voxhost_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
