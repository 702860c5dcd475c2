"""JSON in and out of the control API, and its error answers.

Every problem is answered as ``{"error": "<what is wrong>", "detail": ...}`` with a 4xx status
(400 unreadable body or query, 404 unknown resource, 405 wrong method, 409 conflict,
422 well-formed JSON with wrong content); the control API never answers 500 for bad input.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

ModelT = TypeVar("ModelT", bound=BaseModel)


class ControlError(Exception):
    """A control-API request that cannot be carried out; becomes a 4xx answer."""

    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail


def reply(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def problem(status: int, error: str, detail: Any = None) -> Response:
    return reply({"error": error, "detail": detail}, status)


async def read_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/422 ``ControlError``."""
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ControlError(400, "request body is not valid JSON", str(exc)) from exc
    if not isinstance(data, dict):
        raise ControlError(422, "request body must be a JSON object")
    return data


def validate(model: type[ModelT], data: Any) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc) from exc


def invalid(exc: ValidationError) -> ControlError:
    # ``errors()`` may hold exception objects in ``ctx``; the JSON rendering is always safe.
    detail = orjson.loads(exc.json(include_url=False, include_input=False))
    return ControlError(422, "request body has invalid fields", detail)
