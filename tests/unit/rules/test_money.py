"""Margin arithmetic rounds against the trader, and display never raises."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.rules.money import required_margin, show_down, show_up


@pytest.mark.parametrize(
    ("quantity", "price", "leverage", "expected"),
    [
        pytest.param("0.1", "60000", "10", Decimal("600"), id="exact"),
        pytest.param(
            "1", "100", "3", Decimal("33.33333333333333333333333333333334"), id="rounded-up"
        ),
    ],
)
def test_required_margin_is_never_understated(
    quantity: str, price: str, leverage: str, expected: Decimal
) -> None:
    assert required_margin(Decimal(quantity), Decimal(price), Decimal(leverage)) == expected


@pytest.mark.parametrize(
    ("amount", "up", "down"),
    [
        pytest.param("600.0", "600.0", "600.0", id="kept-as-written"),
        pytest.param("0.123456789", "0.12345679", "0.12345678", id="rounded-to-8-places"),
        pytest.param("-0.123456789", "-0.12345678", "-0.12345679", id="negative"),
        pytest.param(
            "123456789012345678901234567890.123456789",
            "123456789012345678901234567890.12345679",
            "123456789012345678901234567890.12345678",
            id="wider-than-default-precision",
        ),
        pytest.param("1E+100", "1E+100", "1E+100", id="too-large-for-8-places"),
        pytest.param("Infinity", "Infinity", "Infinity", id="infinity"),
    ],
)
def test_display_rounds_outward_and_never_raises(amount: str, up: str, down: str) -> None:
    assert (show_up(Decimal(amount)), show_down(Decimal(amount))) == (up, down)
