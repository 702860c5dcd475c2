"""JSON responses rendered with orjson, and the one error body shape of the API."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONBody(Response):
    """``application/json`` rendered by orjson (Decimals are converted before rendering)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_body(
    status_code: int,
    code: str,
    message: str,
    *,
    fields: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONBody:
    """``{"error": {"code", "message", "fields"?}}``: the shape of every 4xx/5xx body."""
    error: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return JSONBody({"error": error}, status_code=status_code, headers=headers)
