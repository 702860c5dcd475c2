"""The admin CLI's HTTP side: one guard, one token, errors mapped to exit codes.

Exit codes (the same for every ``pretrade-guard admin`` command)::

    0  done
    2  wrong usage: a bad option, no token, an unreadable token file
    3  the guard cannot be reached (connection refused, timeout, DNS)
    4  the guard refused the token (401) or its scope (403)
    5  the guard refused the request (another 4xx: unknown account or switch, invalid value)
    6  the guard failed (5xx) or answered something that is not its JSON
"""

from __future__ import annotations

import json as jsonlib
import os
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import click
import httpx

# Names of environment variables, not secrets.
TOKEN_ENV = "PRETRADE_GUARD_TOKEN"  # noqa: S105
TOKEN_FILE_ENV = "PRETRADE_GUARD_TOKEN_FILE"  # noqa: S105
URL_ENV = "PRETRADE_GUARD_URL"
DEFAULT_URL = "http://127.0.0.1:8080"
#: A bound on what the CLI reads from a guard (an audit page of 1,000 entries fits easily).
MAX_BODY_BYTES = 16 * 1024 * 1024


class Exit(IntEnum):
    OK = 0
    USAGE = 2
    UNREACHABLE = 3
    AUTH = 4
    REFUSED = 5
    GUARD_FAILED = 6


class GuardCallError(click.ClickException):
    """A failed call, with the exit code of its kind and the guard's error (if it sent one)."""

    def __init__(self, message: str, exit_code: Exit, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.exit_code = int(exit_code)  # type: ignore[misc]  # click reads it per instance
        self.error = error or {"message": message}


def read_token(token_file: Path | None) -> str:
    """The bearer token from ``--token-file`` (or its variable), else ``$PRETRADE_GUARD_TOKEN``.

    Never a command-line value: arguments end up in shell history and ``ps``.
    """
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise click.UsageError(
                f"cannot read the token file {token_file}: {exc.strerror}"
            ) from None
        if not token:
            raise click.UsageError(f"the token file {token_file} is empty")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise click.UsageError(
            f"no token: give --token-file FILE (or set {TOKEN_FILE_ENV}) or set {TOKEN_ENV}"
        )
    return token


def _describe(body: Any) -> tuple[str, dict[str, Any] | None]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", None
    text = f"{error.get('code', '?')}: {error.get('message', '')}"
    for field in error.get("fields") or []:
        if isinstance(field, dict):
            text += f"\n  {field.get('field')}: {field.get('message')}"
    return text, error


class GuardClient:
    """Calls one guard's admin and read API with a bearer token."""

    def __init__(self, url: str, token: str, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "pretrade-guard-cli"},
            timeout=timeout_s,
            follow_redirects=False,
            trust_env=False,  # an HTTP(S)_PROXY must not see the admin token
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The JSON answer of a 2xx; ``GuardCallError`` for everything else."""
        where = f"{method} {self.url}{path}"
        try:
            with self._http.stream(method, path, json=json, params=params) as response:
                raw = bytearray()
                for chunk in response.iter_bytes():
                    raw += chunk
                    if len(raw) > MAX_BODY_BYTES:
                        raise GuardCallError(
                            f"{where}: answer larger than {MAX_BODY_BYTES} bytes",
                            Exit.GUARD_FAILED,
                        )
        except httpx.TransportError as exc:
            raise GuardCallError(
                f"cannot reach the guard at {self.url}: {type(exc).__name__}: {exc}",
                Exit.UNREACHABLE,
            ) from None
        try:
            body = jsonlib.loads(raw)
        except ValueError:
            body = None
        status = response.status_code
        if 200 <= status < 300 and isinstance(body, dict):
            return body
        detail, error = _describe(body)
        detail = detail or f"HTTP {status}"
        error = {"status": status, **(error or {"message": detail})}
        if status in (401, 403):
            hint = (
                "the token is missing or unknown"
                if status == 401
                else "the token lacks the scope this needs (admin, or read for accounts)"
            )
            raise GuardCallError(f"{where}: {status} {detail} ({hint})", Exit.AUTH, error)
        if 400 <= status < 500:
            raise GuardCallError(f"{where}: {status} {detail}", Exit.REFUSED, error)
        if 200 <= status < 300:
            raise GuardCallError(f"{where}: not a JSON object", Exit.GUARD_FAILED, error)
        raise GuardCallError(f"{where}: {status} {detail}", Exit.GUARD_FAILED, error)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
