"""OpenAI-style errors: every failure the server answers is `{"error": {message, type, param, code}}`.

Routes raise `APIError`; `install` turns it, FastAPI's validation errors (wrong types, malformed JSON,
invalid UTF-8), unknown routes and unexpected exceptions into that shape. Validation errors are 400, as
OpenAI answers them, not FastAPI's default 422.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatforge.errors import ChatforgeError

log = logging.getLogger("chatforge.serve")

TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
         404: "invalid_request_error", 405: "invalid_request_error", 409: "invalid_request_error",
         413: "invalid_request_error", 429: "rate_limit_error", 503: "server_error"}


class APIError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.headers = status, message, code, param, headers


def body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "server_error"), "param": param, "code": code}}


def response(status: int, message: str, code: str | None = None, param: str | None = None,
             headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body(status, message, code, param), status_code=status, headers=headers)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, code or "invalid_value", param)


def _describe(err: dict) -> tuple[str, str | None]:
    """One readable line (and the offending parameter) from a pydantic error."""
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    kind = err.get("type", "")
    if kind == "json_invalid":
        return "We could not parse the JSON body of your request (invalid JSON or invalid UTF-8).", None
    if kind == "missing":
        return f"Missing required parameter: '{param}'.", param
    msg = err.get("msg", "invalid value")
    return (f"Invalid value for '{param}': {msg}." if param else f"Invalid request: {msg}."), param


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, e: APIError):
        return response(e.status, e.message, e.code, e.param, e.headers)

    @app.exception_handler(ChatforgeError)
    async def _user_error(request: Request, e: ChatforgeError):
        from chatforge.store import Conflict, NotFound

        status = 404 if isinstance(e, NotFound) else 409 if isinstance(e, Conflict) else 400
        return response(status, str(e), {404: "not_found", 409: "conflict"}.get(status, "invalid_value"))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError):
        errors = e.errors()
        message, param = _describe(errors[0]) if errors else ("Invalid request.", None)
        return response(400, message, "invalid_request" if param is None else "invalid_value", param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        message = {404: f"Unknown URL: {request.method} {request.url.path}",
                   405: f"Method {request.method} not allowed on {request.url.path}"}.get(e.status_code, str(e.detail))
        return response(e.status_code, message, "not_found" if e.status_code == 404 else None,
                        headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return response(500, "The server had an error while processing your request.", "server_error")
