from __future__ import annotations

from decimal import Decimal

import pytest

from app.errors import ExchangeProtocolError
from app.exchanges.jsonfields import Fields, parse_decimal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("7485.00", Decimal("7485.00"), id="decimal-string"),
        pytest.param("-1.20", Decimal("-1.20"), id="negative-string"),
        pytest.param("1e-8", Decimal("1e-8"), id="exponent-string"),
        pytest.param(10, Decimal(10), id="int"),
        pytest.param(Decimal("0.05"), Decimal("0.05"), id="json-number-as-decimal"),
        pytest.param(0.05, Decimal("0.05"), id="float-via-str"),
        pytest.param(True, None, id="bool"),
        pytest.param("NaN", None, id="nan-string"),
        pytest.param("Infinity", None, id="infinity-string"),
        pytest.param(Decimal("NaN"), None, id="nan-decimal"),
        pytest.param(float("inf"), None, id="inf-float"),
        pytest.param("abc", None, id="garbage"),
        pytest.param("", None, id="empty"),
        pytest.param(" 1", None, id="whitespace"),
        pytest.param("1_000", None, id="underscore"),
        pytest.param(None, None, id="null"),
        pytest.param([1], None, id="list"),
    ],
)
def test_parse_decimal(value: object, expected: Decimal | None) -> None:
    assert parse_decimal(value) == expected


def test_errors_name_the_nested_field_path() -> None:
    body = Fields.of({"positions": [{"symbol": "X"}, {"symbol": 5}]}, endpoint="/e")
    rows = body.objects("positions")
    with pytest.raises(ExchangeProtocolError, match=r"positions\[1\]\.symbol must be a string"):
        rows[1].text("symbol")


def test_null_counts_as_missing_for_optional_and_fails_required() -> None:
    body = Fields.of({"a": None}, endpoint="/e")
    assert body.opt_decimal("a") is None
    with pytest.raises(ExchangeProtocolError, match="field a is null"):
        body.decimal("a")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (1763712000000, True),
        ("1763712000000", True),
        (Decimal("5"), True),
        (True, False),
        (Decimal("1.5"), False),
        ("1.5", False),
    ],
)
def test_integer(value: object, ok: bool) -> None:
    body = Fields.of({"t": value}, endpoint="/e")
    if ok:
        assert body.integer("t") == int(str(value))
    else:
        with pytest.raises(ExchangeProtocolError, match="field t must be an integer"):
            body.integer("t")
