"""Exception handlers: every error answer has the ``{"error": {...}}`` shape, never a 500 body
with internals, never a secret."""

from __future__ import annotations

import errno
import sqlite3
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
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            # The body is not JSON at all: FastAPI puts the character offset where a field
            # name goes ("11"); name the body, and say where it broke in the message.
            loc: list[str] = []
            where = [str(p) for p in err.get("loc", ()) if str(p) not in _LOCATIONS]
            detail = (err.get("ctx") or {}).get("error")
            if detail and where:
                message = f"not valid JSON: {detail} (at character {where[0]})"
            field = "(body)"
        else:
            loc = [str(p) for p in err.get("loc", ()) if str(p) not in _LOCATIONS]
            field = ".".join(loc) or "(request)"
        fields.append({"field": field, "message": message})
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


#: ``OSError`` numbers that mean "the disk cannot take the write".
_STORAGE_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_STORAGE_ERRNOS = _STORAGE_FULL_ERRNOS | {errno.EIO, errno.EROFS}


async def _storage(request: Request, exc: Exception) -> Response:
    """The guard's database (kill switches, audit) could not be written or read: a JSON 507
    when the disk is full, 503 otherwise, never a bare 500. A failed write is rolled back, so
    nothing changed; the message says to check the state anyway."""
    full = (
        isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL"
    ) or (isinstance(exc, OSError) and exc.errno in _STORAGE_FULL_ERRNOS)
    log.error(
        "storage error",
        path=request.url.path,
        error_type=type(exc).__name__,
        error=str(exc),
        disk_full=full,
    )
    if full:
        return error_body(
            507,
            "STORAGE_FULL",
            "the guard's disk is full: the change was not recorded; free space in "
            "server.data_dir and retry (GET /admin/kill-switches shows what is engaged)",
        )
    return error_body(
        503,
        "STORAGE_UNAVAILABLE",
        f"the guard's database could not be written ({exc}); the change may not have been "
        "recorded: retry, and check GET /admin/kill-switches",
    )


async def _os_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
        return await _storage(request, exc)
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", path=request.url.path, error_type=type(exc).__name__)
    return error_body(500, "INTERNAL_ERROR", "internal error; see the guard's log")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(UnknownAccount, _unknown_account)
    app.add_exception_handler(AuthError, _auth)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(SharedStateUnavailable, _shared_unavailable)
    app.add_exception_handler(sqlite3.Error, _storage)
    app.add_exception_handler(OSError, _os_error)
    app.add_exception_handler(Exception, _unexpected)
