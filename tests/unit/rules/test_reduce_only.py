"""Reduce-only orders: which really reduce (one-way and hedge mode), which would increase."""

from __future__ import annotations

import pytest

from app.domain import AccountSnapshot, OrderIntent, OrderSide, Policy, PositionSide, ReasonCode
from app.rules import evaluate
from tests.unit.rules.builders import ACCOUNT, NOW, order, position, snapshot, state

# Nothing is available in any of these accounts: a real exit needs no margin.
LONG_1 = snapshot(position("BTCUSDT", PositionSide.LONG, "1"), available="0")
SHORT_2 = snapshot(position("BTCUSDT", PositionSide.SHORT, "2"), available="0")
#: Hedge mode: both sides held at once, with different sizes.
HEDGED = snapshot(
    position("BTCUSDT", PositionSide.LONG, "1"),
    position("BTCUSDT", PositionSide.SHORT, "3"),
    available="0",
)


@pytest.mark.parametrize(
    ("account_snapshot", "intent"),
    [
        pytest.param(
            LONG_1, order("BTCUSDT", OrderSide.SELL, "1", reduce_only=True), id="sell-all-of-long"
        ),
        pytest.param(
            LONG_1,
            order("BTCUSDT", OrderSide.SELL, "0.4", reduce_only=True),
            id="sell-part-of-long",
        ),
        pytest.param(
            SHORT_2, order("BTCUSDT", OrderSide.BUY, "2", reduce_only=True), id="buy-back-short"
        ),
        pytest.param(
            LONG_1,
            order("BTCUSDT", OrderSide.SELL, None, reduce_only=True),
            id="close-without-quantity",
        ),
        pytest.param(
            HEDGED,
            order("BTCUSDT", OrderSide.SELL, "1", reduce_only=True),
            id="hedge-sell-reduces-long",
        ),
        pytest.param(
            HEDGED,
            order("BTCUSDT", OrderSide.BUY, "3", reduce_only=True),
            id="hedge-buy-reduces-short",
        ),
    ],
)
def test_reduce_only_that_really_reduces_is_allowed(
    account_snapshot: AccountSnapshot, intent: OrderIntent
) -> None:
    decision = evaluate(intent, state(None, account_snapshot), Policy(), NOW)

    assert decision.allowed, decision.reasons


@pytest.mark.parametrize(
    ("account_snapshot", "intent", "limit", "observed", "message"),
    [
        pytest.param(
            LONG_1,
            order("BTCUSDT", OrderSide.SELL, "1.5", reduce_only=True),
            "1",
            "1.5",
            "reduce-only SELL 1.5 BTCUSDT exceeds the LONG position of 1",
            id="larger-than-position",
        ),
        pytest.param(
            LONG_1,
            order("BTCUSDT", OrderSide.BUY, "0.5", reduce_only=True),
            "0",
            "0.5",
            "reduce-only BUY BTCUSDT has no opposite position to reduce",
            id="same-side-as-position",
        ),
        pytest.param(
            snapshot(),
            order("BTCUSDT", OrderSide.SELL, None, reduce_only=True),
            "0",
            None,
            "reduce-only SELL BTCUSDT has no opposite position to reduce",
            id="no-position-no-quantity",
        ),
        pytest.param(
            HEDGED,
            order("BTCUSDT", OrderSide.SELL, "3", reduce_only=True),
            "1",
            "3",
            "reduce-only SELL 3 BTCUSDT exceeds the LONG position of 1",
            id="hedge-sell-checked-against-long-not-short",
        ),
        pytest.param(
            LONG_1,
            OrderIntent(account=ACCOUNT, symbol="BTCUSDT", reduce_only=True),
            "0",
            None,
            "a reduce-only order needs a symbol and a side to be checked against a position",
            id="no-side",
        ),
        pytest.param(
            LONG_1,
            OrderIntent(account=ACCOUNT, side=OrderSide.SELL, reduce_only=True),
            "0",
            None,
            "a reduce-only order needs a symbol and a side to be checked against a position",
            id="no-symbol",
        ),
    ],
)
def test_reduce_only_that_would_increase_is_denied(
    account_snapshot: AccountSnapshot,
    intent: OrderIntent,
    limit: str,
    observed: str | None,
    message: str,
) -> None:
    decision = evaluate(intent, state(None, account_snapshot), Policy(), NOW)

    # Other reasons (no margin, no price) may join; this one must be there.
    assert not decision.allowed
    reason = next(r for r in decision.reasons if r.code is ReasonCode.REDUCE_ONLY_WOULD_INCREASE)
    assert (reason.limit, reason.observed, reason.message) == (limit, observed, message)


def test_reduce_only_that_would_increase_still_gets_margin_checks() -> None:
    # Not a real exit, so it is treated like any order opening exposure.
    decision = evaluate(
        order("BTCUSDT", OrderSide.SELL, "2", price="60000", reduce_only=True),
        state(None, snapshot(position("BTCUSDT", PositionSide.LONG, "1"), available="100")),
        Policy(),
        NOW,
    )

    assert [r.code for r in decision.reasons] == [
        ReasonCode.REDUCE_ONLY_WOULD_INCREASE,
        ReasonCode.INSUFFICIENT_MARGIN,
    ]
