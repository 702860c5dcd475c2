"""JSON decoding that lets other threads run: big answers are decoded one row at a time.

``json.loads`` is one C call: it holds the GIL until the whole document is built, so decoding
a 25 MB answer in a worker thread still stops the event loop (and every other account's
decisions) for that long. Exchange answers are an object (or an array) whose big parts are
arrays of small rows, so this decoder walks the top level and its arrays itself and decodes
each member and each row with ``raw_decode``: short C calls, between which the interpreter
may switch threads. Rows nested deeper are decoded whole (they are small).

Amounts come out as ``Decimal`` (never ``float``); ``NaN`` / ``Infinity`` are refused.
"""

from __future__ import annotations

import contextlib
import gc
import json
import re
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

T = TypeVar("T")

_WS = re.compile(r"[ \t\n\r]*")


def _reject_constant(name: str) -> Any:
    # json.loads would otherwise turn NaN / Infinity into floats that look like amounts.
    raise ValueError(f"non-finite JSON constant {name}")


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def loads(content: bytes) -> object:
    """``json.loads(content)`` with Decimal amounts; a big top-level object or array is decoded
    member by member and row by row. Raises ``ValueError`` on invalid JSON."""
    with gc_paused():
        return _loads(content)


def _loads(content: bytes) -> object:
    text = content.decode("utf-8")
    index = _WS.match(text, 0).end()  # type: ignore[union-attr]
    value, index = _value(text, index, depth=0)
    if _WS.match(text, index).end() != len(text):  # type: ignore[union-attr]
        raise ValueError("extra data after the JSON value")
    return value


def _value(text: str, index: int, depth: int) -> tuple[object, int]:
    if depth < 2 and index < len(text):
        if text[index] == "{":
            return _object(text, index, depth)
        if text[index] == "[":
            return _array(text, index, depth)
    result: tuple[object, int] = _DECODER.raw_decode(text, index)
    return result


def _skip(text: str, index: int) -> int:
    return _WS.match(text, index).end()  # type: ignore[union-attr]


def _expect(text: str, index: int, char: str) -> int:
    if index >= len(text) or text[index] != char:
        raise ValueError(f"expected {char!r} at {index}")
    return index + 1


def _object(text: str, index: int, depth: int) -> tuple[dict[str, object], int]:
    result: dict[str, object] = {}
    index = _skip(text, index + 1)
    if index < len(text) and text[index] == "}":
        return result, index + 1
    while True:
        key, index = _DECODER.raw_decode(text, index)
        if not isinstance(key, str):
            raise ValueError(f"object key at {index} is not a string")
        index = _skip(text, _expect(text, _skip(text, index), ":"))
        result[key], index = _value(text, index, depth + 1)
        index = _skip(text, index)
        if index < len(text) and text[index] == ",":
            index = _skip(text, index + 1)
            continue
        return result, _expect(text, index, "}")


def _array(text: str, index: int, depth: int) -> tuple[list[object], int]:
    result: list[object] = []
    index = _skip(text, index + 1)
    if index < len(text) and text[index] == "]":
        return result, index + 1
    while True:
        item, index = _value(text, index, depth + 1)
        result.append(item)
        index = _skip(text, index)
        if index < len(text) and text[index] == ",":
            index = _skip(text, index + 1)
            continue
        return result, _expect(text, index, "]")


_gc_lock = threading.Lock()
_gc_pausers = 0


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while big answers are decoded and parsed (any thread).

    Building 100,000 rows makes the collector walk every tracked object several times, each
    walk holding the GIL (a pause of the event loop too). The rows hold no reference cycles,
    so nothing is lost by collecting once afterwards instead, as the collector then does.
    """
    global _gc_pausers
    with _gc_lock:
        _gc_pausers += 1
        if _gc_pausers == 1:
            gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0:
                gc.enable()


def call_without_gc(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` under ``gc_paused`` (for ``asyncio.to_thread`` of a big parse)."""
    with gc_paused():
        return fn(*args)
