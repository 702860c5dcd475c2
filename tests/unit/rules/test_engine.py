"""``evaluate`` as a whole: the healthy path, and every reason collected in a fixed order."""

from __future__ import annotations

import pytest

from app.domain import OrderIntent, OrderSide, Policy, PositionSide, ReasonCode, WarningCode
from app.rules import evaluate
from tests.unit.rules.builders import (
    NOW,
    bare,
    indicator,
    order,
    position,
    snapshot,
    state,
    status,
)


@pytest.mark.parametrize(
    "intent",
    [
        pytest.param(bare(), id="bare-intent"),
        pytest.param(order("BTCUSDT", OrderSide.BUY, "0.1", price="60000"), id="limit-buy"),
        pytest.param(order("BTCUSDT", OrderSide.SELL, "0.1", price=None), id="market-sell-at-mark"),
    ],
)
def test_healthy_account_allows(intent: OrderIntent) -> None:
    account_state = state(
        status("NORMAL"),
        snapshot(position("BTCUSDT", PositionSide.LONG, "0.5"), available="7485"),
    )

    decision = evaluate(intent, account_state, Policy(), NOW)

    assert decision.allowed
    assert decision.reasons == ()
    assert decision.warnings == ()


def test_every_applicable_reason_is_collected_in_check_order() -> None:
    account_state = state(
        status(
            "CLOSED",
            reason="closed by user",
            can_trade=False,
            futures_enabled=False,
            indicators=(
                indicator("BTCUSDT", "DR"),
                indicator("ACCOUNT", "TMV", "10", "1"),
                indicator("BTCUSDT", "UFR", "0.9", "1", locked=False),
            ),
        ),
        snapshot(
            position("BTCUSDT", PositionSide.LONG, "1"),
            available="10",
            margin_balance="1000",
            maintenance="900",
        ),
    )
    # Reduce-only, but bigger than the long it claims to reduce.
    intent = order("BTCUSDT", OrderSide.SELL, "2", price="60000", reduce_only=True)

    decision = evaluate(intent, account_state, Policy(), NOW)

    assert not decision.allowed
    assert [r.code for r in decision.reasons] == [
        ReasonCode.ACCOUNT_NOT_NORMAL,
        ReasonCode.TRADING_DISABLED,
        ReasonCode.FUTURES_DISABLED,
        ReasonCode.ACCOUNT_LOCKED,
        ReasonCode.SYMBOL_LOCKED,
        ReasonCode.MARGIN_RATIO_HIGH,
        ReasonCode.REDUCE_ONLY_WOULD_INCREASE,
        ReasonCode.INSUFFICIENT_MARGIN,
    ]
    # Advice still comes with a deny.
    assert [w.code for w in decision.warnings] == [WarningCode.QUANT_RULE_NEAR_TRIGGER]


def test_an_order_that_really_reduces_only_meets_the_full_stops() -> None:
    # Same wrecked account, but the order closes the long: locks, margin ratio and margin
    # no longer apply; status, canTrade and futures permission still do.
    account_state = state(
        status(
            "CLOSED",
            can_trade=False,
            futures_enabled=False,
            indicators=(indicator("BTCUSDT", "DR"), indicator("ACCOUNT", "TMV", "10", "1")),
        ),
        snapshot(
            position("BTCUSDT", PositionSide.LONG, "1"),
            available="0",
            margin_balance="0",
            maintenance="900",
        ),
    )
    intent = order("BTCUSDT", OrderSide.SELL, "1", price=None, reduce_only=True)

    decision = evaluate(intent, account_state, Policy(), NOW)

    assert [r.code for r in decision.reasons] == [
        ReasonCode.ACCOUNT_NOT_NORMAL,
        ReasonCode.TRADING_DISABLED,
        ReasonCode.FUTURES_DISABLED,
    ]
