"""One error body for every failure: ``{"error": {"code", "message", "request_id",
"fields"?}}``; ``fields`` (on a 422) names each refused value: ``{"loc": [...], "msg": ...}``.

Messages are written for the caller and never carry internals (a 500 says only that it
failed and which request id to quote). What a caller sent is never echoed back whole: a
message or a field location is cut to a bounded length and NUL or lone surrogates in it are
escaped (``flashmm.inputs.short``). An ``InputError`` (the input policy, flashmm/inputs.py)
raised anywhere in a route is a 422 naming the field."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from flashmm.inputs import InputError, short

log = logging.getLogger(__name__)
MAX_MESSAGE = 300  # characters of a message; a longer one is cut with a note

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "timeout",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str
    fields: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


# responses every authenticated route can give, for the OpenAPI schema
COMMON: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody, "description": _CODES[s].replace("_", " ")}
    for s in (401, 403, 404, 413, 422, 429, 500, 504)
}


def error_response(
    request_id: str,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    fields: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    detail: dict[str, Any] = {
        "code": _CODES.get(status, "error"),
        "message": short(message, MAX_MESSAGE),
        "request_id": request_id,
    }
    if fields is not None:
        detail["fields"] = fields
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request_id(request), exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else _CODES.get(exc.status_code, "")
        return error_response(
            request_id(request), exc.status_code, message, getattr(exc, "headers", None)
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "loc": [short(str(p)) for p in e.get("loc", ())],
                "msg": short(str(e.get("msg", "")), MAX_MESSAGE),
            }
            for e in exc.errors()[:20]
        ]
        return error_response(request_id(request), 422, "the request is not valid", None, fields)

    @app.exception_handler(InputError)
    async def _refused(request: Request, exc: InputError) -> JSONResponse:
        request.state.input_refused = True  # audited like any refused input
        request.state.outcome = f"refused: {exc}"
        rid = request_id(request)
        return error_response(rid, 422, "the request is not valid", None, [exc.field()])

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"request_id": request_id(request)})
        return error_response(request_id(request), 500, "internal error")
