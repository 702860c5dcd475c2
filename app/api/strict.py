"""Strict reading of requests: one meaning per request, or a 422 naming the field.

A request that a proxy, a client library and the guard could read differently is refused
rather than decided on one reading:

* **Amounts** are ASCII digits with an optional fraction (``AMOUNT``): no Unicode digits
  (``٣``, ``１００``), no ``1_000``, no padding, no sign or exponent in text. JSON numbers are
  read exactly, as decimals (``1.00000000000000000001`` stays that), never through a float.
* **Duplicate keys**, in a query string (``quantity=1000000&quantity=0.01``) or in any JSON
  object (``{"account": "delta", "account": "alpha"}``), are refused: the guard cannot know
  which one the sender (or a proxy in between) meant.
* A body that is not JSON names ``(body)`` and where it broke, not a character offset as a
  field.

``StrictRoute`` applies the query and body rules to every FastAPI route of the guard; the
fast paths (``app/api/fastpath.py``) use ``AMOUNT`` and ``json_keys_are_unique`` and hand
anything else to these routes, so both paths give the same answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

#: An amount as text: ASCII digits, an optional fraction; at most ``MAX_AMOUNT_CHARS``.
AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
MAX_AMOUNT_CHARS = 40
AMOUNT_RULE = "an amount is ASCII digits with an optional fraction, e.g. 0.01"

#: The end of every key in a JSON text (and possibly more: see ``json_keys_are_unique``).
_KEY_END = re.compile(rb'"[ \t\n\r]*:')


def strict_amount(value: object) -> object:
    """Pydantic before-validator of an amount: text must match ``AMOUNT``; a JSON number must
    have been read exactly (a ``Decimal`` or an ``int``, never a float or a boolean)."""
    if isinstance(value, str):
        if len(value) > MAX_AMOUNT_CHARS or AMOUNT.fullmatch(value) is None:
            raise ValueError(AMOUNT_RULE)
        return value
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise ValueError(AMOUNT_RULE)
    return value


def duplicate_query_key(query_string: bytes) -> str | None:
    """The first key given more than once in a query string, or None."""
    if b"&" not in query_string and b";" not in query_string:
        return None
    seen: set[str] = set()
    for key, _value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key in seen:
            return key
        seen.add(key)
    return None


class _Duplicates(dict[str, Any]):
    """A JSON object in which ``duplicate`` was given more than once."""

    duplicate: str


def _find_duplicate(value: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    if isinstance(value, _Duplicates):
        return (*path, value.duplicate)
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _find_duplicate(item, (*path, key))
        if found is not None:
            return found
    return None


def loads_exact(body: bytes) -> Any:
    """``body`` as JSON, every number read exactly as a ``Decimal``. Raises
    ``RequestValidationError`` (a 422 naming the place) for text that is not JSON and for an
    object with a key given twice."""
    duplicated = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal duplicated
        result = dict(items)
        if len(result) == len(items):
            return result
        marked = _Duplicates(result)
        seen: set[str] = set()
        for key, _value in items:
            if key in seen:
                marked.duplicate = key
                break
            seen.add(key)
        duplicated = True
        return marked

    try:
        data = json.loads(body, parse_float=Decimal, parse_int=Decimal, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise _invalid(("body",), "json_invalid", f"not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # not UTF-8, too deeply nested
        raise _invalid(("body",), "json_invalid", f"not valid JSON: {exc}") from None
    if duplicated:
        where = _find_duplicate(data, ("body",)) or ("body",)
        raise _invalid(where, "duplicate_key", "the key is given more than once")
    return data


def json_keys_are_unique(body: bytes, keys: int) -> bool:
    """Whether a JSON text whose objects hold ``keys`` keys in all (as decoded) has no
    duplicate key. Every key ends with ``"`` and ``:`` (whitespace between), so the text has
    at least as many such ends as keys: fewer decoded keys means a duplicate. A ``":`` inside
    a string counts too, so a text may be judged to have duplicates when it has none (it is
    then read the long way), never the other way round."""
    return len(_KEY_END.findall(body)) == keys


def _invalid(loc: tuple[str | int, ...], kind: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": loc, "msg": message, "input": None}])


def _is_json(content_type: str | None) -> bool:
    """FastAPI reads a body as JSON without a content type or with a ``json`` one."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = media.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


class StrictRoute(APIRoute):
    """A FastAPI route that refuses duplicate query keys and reads JSON bodies exactly (see
    the module docstring) before FastAPI validates them."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            duplicate = duplicate_query_key(request.scope.get("query_string", b""))
            if duplicate is not None:
                raise _invalid(("query", duplicate), "duplicate_key", "given more than once")
            if request.method in ("POST", "PUT", "PATCH"):
                body = await request.body()
                if body and _is_json(request.headers.get("content-type")):
                    # FastAPI reads request.json(), which returns what is kept here.
                    request._json = loads_exact(body)
            return await handler(request)

        return strict_handler
