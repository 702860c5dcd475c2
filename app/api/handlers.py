"""Exception handlers: every error answer has the ``{"error": {...}}`` shape, never a 500 body
with internals, never a secret."""

from __future__ import annotations

from typing import cast

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from app.api.responses import error_body
from app.api.security import AuthError
from app.errors import SharedStateUnavailable
from app.state.store import UnknownAccount

log = structlog.get_logger("app.api")

_LOCATIONS = {"query", "body", "path", "header"}


async def _validation(_: Request, exc: Exception) -> Response:
    exc = cast(RequestValidationError, exc)
    fields = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if str(p) not in _LOCATIONS]
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        fields.append({"field": ".".join(loc) or "(request)", "message": message})
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error_body(422, "INVALID_REQUEST", summary or "invalid request", fields=fields)


async def _unknown_account(_: Request, exc: Exception) -> Response:
    exc = cast(UnknownAccount, exc)
    account = exc.args[0] if exc.args else ""
    field = exc.args[1] if len(exc.args) > 1 else "account"
    return error_body(
        404,
        "UNKNOWN_ACCOUNT",
        f"account {account!r} is not configured in this guard",
        fields=[{"field": field, "message": "unknown account"}],
    )


async def _auth(_: Request, exc: Exception) -> Response:
    exc = cast(AuthError, exc)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return error_body(exc.status_code, exc.code, exc.message, headers=headers)


async def _http(_: Request, exc: Exception) -> Response:
    exc = cast(HTTPException, exc)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot even decode (not UTF-8): the same 422 as a body
        # that is not JSON, so clients see one shape for "this request is malformed".
        return error_body(
            422,
            "INVALID_REQUEST",
            f"(body): {exc.detail}",
            fields=[{"field": "(body)", "message": str(exc.detail)}],
        )
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
    return error_body(
        exc.status_code,
        codes.get(exc.status_code, "HTTP_ERROR"),
        str(exc.detail),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _shared_unavailable(_: Request, exc: Exception) -> Response:
    return error_body(
        503, "SHARED_STATE_UNAVAILABLE", str(exc) or "fleet store unavailable; nothing changed"
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", path=request.url.path, error_type=type(exc).__name__)
    return error_body(500, "INTERNAL_ERROR", "internal error; see the guard's log")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(UnknownAccount, _unknown_account)
    app.add_exception_handler(AuthError, _auth)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(SharedStateUnavailable, _shared_unavailable)
    app.add_exception_handler(Exception, _unexpected)
