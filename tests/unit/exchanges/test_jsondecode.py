"""The row-by-row decoder reads exactly what json.loads reads, and refuses what it refuses."""

from __future__ import annotations

import gc
import json
from decimal import Decimal

import pytest

from app.exchanges.jsondecode import call_without_gc, loads


def reference(content: bytes) -> object:
    def reject(name: str) -> object:
        raise ValueError(name)

    return json.loads(content, parse_float=Decimal, parse_constant=reject)


@pytest.mark.parametrize(
    "content",
    [
        b'{"a":[1,2,{"b":[3]}],"c":"x","d":1.5,"e":null,"f":true}',
        b"[]",
        b"{}",
        b' [ {"x":1} , {"y":[]} ] ',
        b'{"k":{"n":{"m":[1,2,{"z":"1e-8"}]}}}',
        b'{"a" : [ ] , "b" : { } }\n',
        b'"text"',
        b"12.50",
        '{"s":"\u0661\u0660","esc":"a\\"b\\u00e9"}'.encode(),
        json.dumps({"positions": [{"symbol": f"S{i}", "quantity": "0.1"} for i in range(500)]})
        .replace('"0.1"', "0.1")
        .encode(),
    ],
)
def test_reads_what_json_loads_reads(content: bytes) -> None:
    assert loads(content) == reference(content)


@pytest.mark.parametrize(
    "content",
    [
        b'{"a":1,}',
        b"[1,2,]",
        b'{"a":NaN}',
        b'[{"a":Infinity}]',
        b"[1,2",
        b'{"a":1} x',
        b'{"a" 1}',
        b"{1:2}",
        b"",
        b"   ",
        b"\xff",
    ],
)
def test_refuses_what_json_loads_refuses(content: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - json's own errors are ValueErrors
        reference(content)
    with pytest.raises(ValueError):  # noqa: PT011
        loads(content)


def test_amounts_are_decimals_never_floats() -> None:
    body = loads(b'{"positions":[{"q":1.00000000000000000001}]}')
    assert isinstance(body, dict)
    assert body["positions"][0]["q"] == Decimal("1.00000000000000000001")


def test_the_collector_runs_again_after_a_paused_parse() -> None:
    assert gc.isenabled()
    assert call_without_gc(gc.isenabled) is False
    assert gc.isenabled()
