"""``simulator.orders.check_order``: the documented choices where the references leave one open.

The simulator's order checks are a pure function, so the numbers a guard must reproduce (the
margin of a short limit, the open loss of a market buy, what counts toward -2027) are pinned
here; the HTTP tests cover the codes end to end.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from simulator.markets import DEFAULT_MARKETS, MarketSpec
from simulator.orders import Accepted, AccountView, OpenOrder, Rejected, check_order, decimals

BTC = DEFAULT_MARKETS["BTCUSDT"]  # mark 60000.00, tick 0.10, step 0.001, min notional 100


def order(**fields: str) -> dict[str, str]:
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    return {**base, **fields}


def margin(result: Accepted | Rejected) -> Decimal:
    assert isinstance(result, Accepted), result
    return result.margin


def rejected(result: Accepted | Rejected) -> int:
    assert isinstance(result, Rejected), result
    return result.code


RICH = AccountView(available_balance=Decimal(1_000_000), leverage=10)


def test_decimals_ignore_trailing_zeros() -> None:
    assert [decimals(Decimal(text)) for text in ("100", "1E+2", "0.10", "0.001", "5.50")] == [
        0,
        0,
        1,
        3,
        1,
    ]


def test_margin_of_limit_orders_buy_at_price_sell_at_the_buffered_mark() -> None:
    assert margin(check_order(order(quantity="0.1", price="59000"), BTC, RICH)) == Decimal(590)
    # A BUY above the mark pays the open loss: 0.1 * (61000 - 60000).
    above = check_order(order(quantity="0.1", price="61000"), BTC, RICH)
    assert margin(above) == Decimal(610) + Decimal(100)
    # A SELL below mark * 1.0015 is margined at that price: 0.1 * 60090 / 10.
    below = check_order(order(side="SELL", quantity="0.1", price="59000"), BTC, RICH)
    assert margin(below) == Decimal("600.9")


def test_margin_of_market_orders() -> None:
    market = {"symbol": "BTCUSDT", "type": "MARKET", "quantity": "0.1"}
    buy = check_order({**market, "side": "BUY"}, BTC, RICH)
    # ask * 1.0005 = 60030: 600.3 initial margin + 0.1 * 30 open loss.
    assert margin(buy) == Decimal("603.3")
    sell = check_order({**market, "side": "SELL"}, BTC, RICH)
    assert margin(sell) == Decimal(600)


def test_only_the_opening_part_needs_margin() -> None:
    long_half = AccountView(available_balance=Decimal(0), long_qty=Decimal("0.5"))
    closing = check_order(order(side="SELL", quantity="0.5", price="60000"), BTC, long_half)
    assert margin(closing) == 0
    flipping = check_order(order(side="SELL", quantity="0.6", price="60000"), BTC, long_half)
    assert rejected(flipping) == -2019  # 0.1 opens a short, no balance


def test_position_limit_counts_same_direction_opening_orders() -> None:
    levered = MarketSpec.model_validate(
        {**BTC.model_dump(by_alias=True), "markPrice": "50000"}
    )  # 125x allows 50,000: one contract
    resting = OpenOrder(side="BUY", position_side="BOTH", type="LIMIT", quantity=Decimal("0.5"))
    stop = OpenOrder(side="BUY", position_side="BOTH", type="STOP_MARKET", quantity=Decimal(5))
    account = AccountView(
        available_balance=Decimal(1_000_000),
        leverage=125,
        long_qty=Decimal("0.4"),
        open_orders=(resting, stop),
    )
    assert isinstance(check_order(order(quantity="0.1", price="50000"), levered, account), Accepted)
    assert rejected(check_order(order(quantity="0.2", price="50000"), levered, account)) == -2027


def test_conditional_orders_count_against_the_algo_limit_and_skip_margin() -> None:
    stops = tuple(
        OpenOrder(side="SELL", position_side="BOTH", type="STOP_MARKET", quantity=Decimal(1))
        for _ in range(10)
    )
    stop = {"symbol": "BTCUSDT", "side": "BUY", "type": "STOP_MARKET", "stopPrice": "61000"}
    poor = AccountView(available_balance=Decimal(0))
    assert margin(check_order({**stop, "quantity": "1"}, BTC, poor)) == 0
    full = AccountView(available_balance=Decimal(0), open_orders=stops)
    assert rejected(check_order({**stop, "quantity": "1"}, BTC, full)) == -4045
    with_close = {**stop, "closePosition": "true"}
    assert isinstance(check_order(with_close, BTC, poor), Accepted)
    assert rejected(check_order({**with_close, "reduceOnly": "true"}, BTC, poor)) == -1106


@pytest.mark.parametrize(
    ("fields", "now_ms", "code"),
    [
        ({"timeInForce": "GTD", "goodTillDate": "1000000"}, 900_000, -5040),
        ({"timeInForce": "GTD", "goodTillDate": "2000000"}, 900_000, 0),
        ({"timeInForce": "GTD"}, 0, -1102),
        ({"reduceOnly": "maybe"}, 0, -4062),
        ({"closePosition": "true"}, 0, -1106),
        ({"stopPrice": "59000"}, 0, -1106),
    ],
)
def test_parameter_rules(fields: dict[str, str], now_ms: int, code: int) -> None:
    result = check_order(order(quantity="0.1", price="60000", **fields), BTC, RICH, now_ms=now_ms)
    assert (0 if isinstance(result, Accepted) else result.code) == code


def test_huge_numbers_are_answered_not_raised() -> None:
    """With maxPrice/maxQty disabled (0), the tick and step modulo of a 45-digit price or a
    70-digit quantity used to raise decimal.InvalidOperation (an HTTP 500)."""
    open_ended = MarketSpec(max_price=Decimal(0), max_qty=Decimal(0), multiplier_up=Decimal(10**50))
    huge_price = order(quantity="1", price="1" * 45)
    assert isinstance(check_order(huge_price, open_ended, RICH), Rejected)
    assert rejected(check_order(order(quantity="1" * 70, price="100"), open_ended, RICH)) == -4023
