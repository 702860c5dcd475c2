"""Margin ratio, initial-margin sufficiency and the price it needs."""

from __future__ import annotations

import pytest

from app.domain import AccountSnapshot, OrderIntent, OrderSide, Policy, PositionSide, ReasonCode
from app.rules import evaluate
from tests.unit.rules.builders import NOW, D, bare, order, position, snapshot, state

RATIO_LIMIT = Policy(max_margin_ratio=D("0.8"))


def _with_ratio(maintenance: str, margin_balance: str) -> AccountSnapshot:
    return snapshot(
        position("BTCUSDT", PositionSide.LONG, "1"),
        maintenance=maintenance,
        margin_balance=margin_balance,
    )


@pytest.mark.parametrize(
    ("account_snapshot", "expected"),
    [
        pytest.param(_with_ratio("7999.9999", "10000"), None, id="just-below-limit"),
        pytest.param(_with_ratio("8000", "10000"), ("0.8", "0.8"), id="exactly-at-limit"),
        pytest.param(_with_ratio("9000", "10000"), ("0.8", "0.9"), id="above-limit"),
        pytest.param(_with_ratio("2.5", "3"), ("0.8", "0.83333334"), id="shown-rounded-up"),
        pytest.param(_with_ratio("100", "0"), ("0.8", None), id="margin-balance-zero"),
        pytest.param(_with_ratio("100", "-50"), ("0.8", None), id="margin-balance-negative"),
        pytest.param(
            snapshot(margin_balance="0", maintenance="0"), None, id="no-positions-ratio-zero"
        ),
    ],
)
def test_margin_ratio(account_snapshot: AccountSnapshot, expected: tuple[str, str | None]) -> None:
    decision = evaluate(bare(), state(None, account_snapshot), RATIO_LIMIT, NOW)

    if expected is None:
        assert decision.allowed
        return
    (reason,) = decision.reasons
    assert reason.code is ReasonCode.MARGIN_RATIO_HIGH
    assert (reason.limit, reason.observed) == expected


def test_margin_ratio_does_not_stop_an_order_that_really_reduces() -> None:
    account_snapshot = _with_ratio("100", "0")  # at liquidation: exits matter most
    close = order("BTCUSDT", OrderSide.SELL, "1", reduce_only=True)

    decision = evaluate(close, state(None, account_snapshot), RATIO_LIMIT, NOW)

    assert decision.allowed


# 0.1 BTC at 60 000 with leverage 10 needs 600 USDT of initial margin.
@pytest.mark.parametrize(
    ("account_snapshot", "intent", "policy", "expected"),
    [
        pytest.param(
            snapshot(available="600", leverage_by_symbol={"BTCUSDT": D(10)}),
            order("BTCUSDT", OrderSide.BUY, "0.1", price="60000"),
            Policy(),
            None,
            id="required-equals-available",
        ),
        pytest.param(
            snapshot(available="599.99999999", leverage_by_symbol={"BTCUSDT": D(10)}),
            order("BTCUSDT", OrderSide.BUY, "0.1", price="60000"),
            Policy(),
            ("599.99999999", "600.0"),
            id="one-satoshi-short",
        ),
        pytest.param(
            snapshot(
                position("BTCUSDT", PositionSide.LONG, "1", mark_price="60000"), available="599"
            ),
            order("BTCUSDT", OrderSide.BUY, "0.1", price=None),
            Policy(),
            # 0.1 × 60000 × 1.0005 / 10 + open loss 0.1 × (60030 - 60000): Binance's cost
            # of a market BUY (assuming price = mark + 0.05 % slippage, binance-order-rules §5.1)
            ("599", "603.30000"),
            id="market-order-priced-at-mark-plus-slippage-and-position-leverage",
        ),
        pytest.param(
            snapshot(available="5999"),
            order("BTCUSDT", OrderSide.BUY, "0.1", price="60000"),
            Policy(),
            ("5999", "6000.0"),
            id="no-leverage-known-uses-default-1",
        ),
        pytest.param(
            snapshot(available="1200"),
            order("BTCUSDT", OrderSide.BUY, "0.1", price="60000"),
            Policy(default_leverage=D(5)),
            None,
            id="policy-default-leverage",
        ),
        pytest.param(
            snapshot(available="5999", leverage_by_symbol={"BTCUSDT": D("0.5")}),
            order("BTCUSDT", OrderSide.BUY, "0.1", price="60000"),
            Policy(),
            ("5999", "6000.0"),
            id="leverage-below-1-counts-as-1",
        ),
        pytest.param(
            snapshot(available="33.33333333", leverage_by_symbol={"BTCUSDT": D(3)}),
            order("BTCUSDT", OrderSide.BUY, "1", price="100"),
            Policy(),
            ("33.33333333", "33.33333334"),
            id="display-rounds-required-up",
        ),
    ],
)
def test_margin_sufficiency(
    account_snapshot: AccountSnapshot,
    intent: OrderIntent,
    policy: Policy,
    expected: tuple[str, str] | None,
) -> None:
    decision = evaluate(intent, state(None, account_snapshot), policy, NOW)

    if expected is None:
        assert decision.allowed, decision.reasons
        return
    (reason,) = decision.reasons
    assert reason.code is ReasonCode.INSUFFICIENT_MARGIN
    assert (reason.limit, reason.observed) == expected


@pytest.mark.parametrize(
    ("account_snapshot", "intent"),
    [
        pytest.param(
            snapshot(),
            order("BTCUSDT", OrderSide.BUY, "0.1", price=None),
            id="no-price-no-position",
        ),
        pytest.param(
            snapshot(position("BTCUSDT", PositionSide.LONG, "1", mark_price=None)),
            order("BTCUSDT", OrderSide.BUY, "0.1", price=None),
            id="position-without-mark-price",
        ),
        pytest.param(
            snapshot(position("ETHUSDT", PositionSide.LONG, "1", mark_price="3000")),
            order("BTCUSDT", OrderSide.BUY, "0.1", price=None),
            id="mark-price-of-another-symbol-only",
        ),
        pytest.param(
            snapshot(), order("BTCUSDT", OrderSide.BUY, "0.1", price="-1"), id="negative-price"
        ),
    ],
)
def test_margin_check_without_a_price_denies(
    account_snapshot: AccountSnapshot, intent: OrderIntent
) -> None:
    decision = evaluate(intent, state(None, account_snapshot), Policy(), NOW)

    assert not decision.allowed
    assert [r.code for r in decision.reasons] == [ReasonCode.PRICE_UNAVAILABLE]


@pytest.mark.parametrize(
    "intent",
    [
        pytest.param(bare(), id="bare-intent"),
        pytest.param(order("BTCUSDT", OrderSide.BUY, None, price=None), id="no-quantity"),
        pytest.param(order(None, None, "1000", price="60000"), id="no-symbol"),
    ],
)
def test_margin_sufficiency_needs_symbol_and_quantity(intent: OrderIntent) -> None:
    decision = evaluate(intent, state(None, snapshot(available="0")), Policy(), NOW)

    assert decision.allowed


def test_order_that_really_reduces_skips_margin_and_price_checks() -> None:
    # No money left and no price anywhere, yet closing the short must stay possible.
    account_snapshot = snapshot(
        position("BTCUSDT", PositionSide.SHORT, "2", mark_price=None), available="0"
    )
    close = order("BTCUSDT", OrderSide.BUY, "2", price=None, reduce_only=True)

    decision = evaluate(close, state(None, account_snapshot), Policy(), NOW)

    assert decision.allowed
