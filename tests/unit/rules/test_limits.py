"""Account limits shared by every bot: order notional, position, balance left, order rate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.domain import (
    OrderIntent,
    OrderRate,
    OrderSide,
    Policy,
    PositionSide,
    RateCount,
    RateLimit,
    ReasonCode,
)
from app.rules import evaluate
from tests.unit.rules.builders import NOW, D, bare, order, position, snapshot, state, status

#: Long 1 BTC marked at 60 000 (10x), short 2 ETH marked at 3 000 (10x); 10 000 available.
BOOK = state(
    None,
    snapshot(
        position("BTCUSDT", PositionSide.LONG, "1", mark_price="60000"),
        position("ETHUSDT", PositionSide.SHORT, "2", mark_price="3000"),
        available="10000",
    ),
)


def reasons(intent: OrderIntent, policy: Policy, **kwargs: object) -> list[tuple[str, str | None]]:
    decision = evaluate(intent, BOOK, policy, NOW, **kwargs)  # type: ignore[arg-type]
    assert decision.allowed is (not decision.reasons)
    return [(r.code.value, r.observed) for r in decision.reasons]


NOTIONAL_1000 = Policy(max_order_notional=D("1000"))


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        pytest.param(order("BTCUSDT", OrderSide.BUY, "0.01", price="60000"), [], id="600-under"),
        pytest.param(
            order("BTCUSDT", OrderSide.BUY, "0.02", price="50000"), [], id="exactly-at-limit"
        ),
        pytest.param(
            order("BTCUSDT", OrderSide.BUY, "0.02", price="50000.01"),
            [("ORDER_NOTIONAL_LIMIT", "1000.0002")],
            id="a-cent-over",
        ),
        pytest.param(
            order("BTCUSDT", OrderSide.SELL, "0.1", price=None),
            [("ORDER_NOTIONAL_LIMIT", "6000.0")],
            id="market-order-priced-at-mark",
        ),
        pytest.param(
            order("BTCUSDT", OrderSide.SELL, "1", price=None, reduce_only=True),
            [],
            id="real-exit-is-never-size-limited",
        ),
        pytest.param(bare(), [], id="bare-question"),
    ],
)
def test_order_notional_limit(intent: OrderIntent, expected: list[tuple[str, str]]) -> None:
    assert reasons(intent, NOTIONAL_1000) == expected


def test_order_notional_reason_carries_limit_and_observed() -> None:
    decision = evaluate(
        order("BTCUSDT", OrderSide.BUY, "1", price="2000"), BOOK, NOTIONAL_1000, NOW
    )
    [reason] = decision.reasons
    assert (reason.code, reason.limit, reason.observed) == (
        ReasonCode.ORDER_NOTIONAL_LIMIT,
        "1000",
        "2000",
    )
    assert "order notional 2000 USDT (1 BTCUSDT × 2000)" in reason.message
    assert "limit of 1000 USDT per order" in reason.message


def test_an_order_without_any_price_is_denied_by_the_margin_check_only() -> None:
    intent = order("SOLUSDT", OrderSide.BUY, "1", price=None)
    assert reasons(intent, NOTIONAL_1000) == [("PRICE_UNAVAILABLE", None)]


POSITION_90K = Policy(max_position_notional=D("90000"))


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        pytest.param(
            order("BTCUSDT", OrderSide.BUY, "0.5", price="60000"), [], id="long-grows-to-limit"
        ),
        pytest.param(
            order("BTCUSDT", OrderSide.BUY, "0.6", price="60000"),
            [("POSITION_LIMIT", "96000.0")],
            id="long-grows-past-limit",
        ),
        pytest.param(
            order("ETHUSDT", OrderSide.SELL, "28", price="3000"), [], id="short-grows-to-limit"
        ),
        pytest.param(
            order("ETHUSDT", OrderSide.SELL, "29", price="3000"),
            [("POSITION_LIMIT", "93000")],
            id="short-grows-past-limit",
        ),
        pytest.param(
            order("ETHUSDT", OrderSide.BUY, "31", price="3000"),
            [("POSITION_LIMIT", "93000")],
            id="buy-against-short-counts-as-a-new-long-fail-closed",
        ),
        pytest.param(
            order("BTCUSDT", OrderSide.SELL, "1.4", price="60000"),
            [],
            id="sell-against-long-counts-the-short-side-only",
        ),
        pytest.param(
            order("BTCUSDT", OrderSide.SELL, "1", price=None, reduce_only=True),
            [],
            id="real-exit-passes",
        ),
    ],
)
def test_position_limit(intent: OrderIntent, expected: list[tuple[str, str]]) -> None:
    assert reasons(intent, POSITION_90K) == expected


def test_position_limit_reason_names_side_and_limit() -> None:
    intent = order("BTCUSDT", OrderSide.BUY, "1", price="60000")
    [reason] = evaluate(intent, BOOK, POSITION_90K, NOW).reasons
    assert (reason.code, reason.limit, reason.observed) == (
        ReasonCode.POSITION_LIMIT,
        "90000",
        "120000",
    )
    assert "BTCUSDT LONG" in reason.message


KEEP_9000 = Policy(min_available_after_order=D("9000"))


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        # 0.1 × 60 000 / 10 = 600 margin: 9 400 left.
        pytest.param(order("BTCUSDT", OrderSide.BUY, "0.1", price="60000"), [], id="leaves-9400"),
        # 1 000 margin: exactly 9 000 left.
        pytest.param(
            order("BTCUSDT", OrderSide.BUY, "0.1", price="100000"), [], id="leaves-exactly-min"
        ),
        pytest.param(
            order("BTCUSDT", OrderSide.BUY, "0.1", price="100000.1"),
            [("INSUFFICIENT_MARGIN", "8999.999")],
            id="leaves-a-tenth-of-a-cent-less",
        ),
        pytest.param(
            order("BTCUSDT", OrderSide.BUY, "10", price="60000"),
            [("INSUFFICIENT_MARGIN", "60000")],
            id="does-not-fit-at-all-reported-once",
        ),
        pytest.param(
            order("BTCUSDT", OrderSide.SELL, "1", price=None, reduce_only=True),
            [],
            id="real-exit-needs-no-balance",
        ),
    ],
)
def test_min_available_after_order(intent: OrderIntent, expected: list[tuple[str, str]]) -> None:
    assert reasons(intent, KEEP_9000) == expected


def test_min_available_reason_carries_limit() -> None:
    intent = order("BTCUSDT", OrderSide.BUY, "0.2", price="60000")
    [reason] = evaluate(intent, BOOK, KEEP_9000, NOW).reasons
    assert (reason.limit, reason.observed) == ("9000", "8800.0")
    assert "below the account's minimum of 9000" in reason.message


ACCOUNT_RATE = Policy(order_rate=RateLimit(max_orders=5, window_s=1.0))
SYMBOL_RATE = Policy(symbol_order_rate=RateLimit(max_orders=2, window_s=10.0))
ENTRY = order("BTCUSDT", OrderSide.BUY, "0.01")
EXIT = order("BTCUSDT", OrderSide.SELL, "1", price=None, reduce_only=True)


@pytest.mark.parametrize(
    ("policy", "intent", "rate", "expected"),
    [
        pytest.param(ACCOUNT_RATE, ENTRY, OrderRate(RateCount(4)), [], id="account-one-slot-left"),
        pytest.param(
            ACCOUNT_RATE,
            ENTRY,
            OrderRate(RateCount(5, 250)),
            [("ORDER_RATE_LIMIT", "5")],
            id="account-window-full",
        ),
        pytest.param(
            ACCOUNT_RATE,
            EXIT,
            OrderRate(RateCount(5, 250)),
            [("ORDER_RATE_LIMIT", "5")],
            id="exits-count-too",
        ),
        pytest.param(
            SYMBOL_RATE,
            ENTRY,
            OrderRate(symbol=RateCount(2, 9000)),
            [("ORDER_RATE_LIMIT", "2")],
            id="symbol-window-full",
        ),
        pytest.param(
            replace(ACCOUNT_RATE, symbol_order_rate=SYMBOL_RATE.symbol_order_rate),
            ENTRY,
            OrderRate(RateCount(5, 250), RateCount(2, 9000)),
            [("ORDER_RATE_LIMIT", "5"), ("ORDER_RATE_LIMIT", "2")],
            id="both-full-both-named",
        ),
        pytest.param(ACCOUNT_RATE, ENTRY, None, [], id="nothing-counted"),
        pytest.param(Policy(), ENTRY, OrderRate(RateCount(100)), [], id="no-limit-configured"),
        pytest.param(ACCOUNT_RATE, bare(), OrderRate(RateCount(5, 1)), [], id="bare-not-limited"),
    ],
)
def test_order_rate_limit(
    policy: Policy, intent: OrderIntent, rate: OrderRate | None, expected: list[tuple[str, str]]
) -> None:
    assert reasons(intent, policy, rate=rate) == expected


def test_order_rate_reason_says_when_to_retry() -> None:
    decision = evaluate(ENTRY, BOOK, ACCOUNT_RATE, NOW, rate=OrderRate(RateCount(5, 250)))
    [reason] = decision.reasons
    assert (reason.limit, reason.observed, reason.retry_after_ms) == ("5", "5", 250)
    assert "5 allowed orders in the last 1 s" in reason.message


def test_limit_reasons_follow_check_order_with_the_rate_last() -> None:
    policy = Policy(
        max_order_notional=D("1"),
        max_position_notional=D("1"),
        min_available_after_order=D("9999.99"),
        order_rate=RateLimit(1, 1.0),
    )
    restricted = state(status("RESTRICTED"), BOOK.snapshot.value if BOOK.snapshot else None)

    decision = evaluate(ENTRY, restricted, policy, NOW, rate=OrderRate(RateCount(1, 10)))

    assert [r.code.value for r in decision.reasons] == [
        "ACCOUNT_NOT_NORMAL",
        "INSUFFICIENT_MARGIN",
        "ORDER_NOTIONAL_LIMIT",
        "POSITION_LIMIT",
        "ORDER_RATE_LIMIT",
    ]
