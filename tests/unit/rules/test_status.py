"""Trading status, canTrade and futures permission."""

from __future__ import annotations

import dataclasses

import pytest

from app.domain import AccountStatus, OrderIntent, OrderSide, Policy, PositionSide, ReasonCode
from app.rules import evaluate
from tests.unit.rules.builders import NOW, bare, order, position, snapshot, state, status

LONG_BTC = snapshot(position("BTCUSDT", PositionSide.LONG, "1"))
#: Sells 0.5 of the 1 BTC long: really reduces.
CLOSE_HALF = order("BTCUSDT", OrderSide.SELL, "0.5", reduce_only=True)
EXITS_WHEN_RESTRICTED = Policy(reduce_only_statuses=frozenset({"RESTRICTED"}))


@pytest.mark.parametrize(
    "trading_status",
    [
        "CLOSED",
        "MARGIN_CLOSED",
        "RESTRICTED",
        "TRIGGER_CLOSED",
        "UNDER_REVIEW",
        pytest.param("SUSPENDED_FOR_MAINTENANCE", id="unknown-status"),
        pytest.param("normal", id="lowercase-normal-is-unknown"),
        pytest.param("", id="empty-status"),
    ],
)
def test_status_other_than_normal_denies(trading_status: str) -> None:
    account_state = state(status(trading_status, reason="KYC pending"))

    decision = evaluate(bare(), account_state, Policy(), NOW)

    assert not decision.allowed
    assert [r.code for r in decision.reasons] == [ReasonCode.ACCOUNT_NOT_NORMAL]
    assert decision.reasons[0].message == f"account trading status is {trading_status}: KYC pending"


@pytest.mark.parametrize(
    "trading_status",
    [
        "NORMAL",
        pytest.param(None, id="exchange-without-trading-status"),
    ],
)
def test_normal_or_unreported_status_allows(trading_status: str | None) -> None:
    decision = evaluate(bare(), state(status(trading_status)), Policy(), NOW)

    assert decision.allowed
    assert decision.reasons == ()


@pytest.mark.parametrize(
    ("trading_status", "intent", "policy", "allowed"),
    [
        pytest.param("RESTRICTED", CLOSE_HALF, EXITS_WHEN_RESTRICTED, True, id="configured-exit"),
        pytest.param("RESTRICTED", CLOSE_HALF, Policy(), False, id="exit-not-configured"),
        pytest.param(
            "CLOSED", CLOSE_HALF, EXITS_WHEN_RESTRICTED, False, id="exit-in-unlisted-status"
        ),
        pytest.param(
            "RESTRICTED",
            order("BTCUSDT", OrderSide.SELL, "0.5"),
            EXITS_WHEN_RESTRICTED,
            False,
            id="opposite-side-without-reduce-only-flag",
        ),
        pytest.param(
            "RESTRICTED",
            order("BTCUSDT", OrderSide.BUY, "0.5", reduce_only=True),
            EXITS_WHEN_RESTRICTED,
            False,
            id="reduce-only-on-same-side-as-position",
        ),
    ],
)
def test_reduce_only_passes_a_listed_status_only_when_it_really_reduces(
    trading_status: str, intent: OrderIntent, policy: Policy, allowed: bool
) -> None:
    account_state = state(status(trading_status), LONG_BTC)

    decision = evaluate(intent, account_state, policy, NOW)

    assert decision.allowed is allowed
    codes = [r.code for r in decision.reasons]
    assert (ReasonCode.ACCOUNT_NOT_NORMAL in codes) is (not allowed)


def test_listed_status_tells_that_only_exits_are_allowed() -> None:
    account_state = state(status("RESTRICTED"), LONG_BTC)

    decision = evaluate(order(), account_state, EXITS_WHEN_RESTRICTED, NOW)

    assert decision.reasons[0].message == (
        "account trading status is RESTRICTED; "
        "only reduce-only orders that shrink an open position are allowed"
    )


@pytest.mark.parametrize(
    ("account_status", "intent", "expected"),
    [
        pytest.param(status(can_trade=False), bare(), [ReasonCode.TRADING_DISABLED], id="cantrade"),
        pytest.param(
            status(can_trade=False),
            CLOSE_HALF,
            [ReasonCode.TRADING_DISABLED],
            id="cantrade-denies-reduce-only",
        ),
        pytest.param(
            status(futures_enabled=False), bare(), [ReasonCode.FUTURES_DISABLED], id="futures"
        ),
        pytest.param(
            status(futures_enabled=False),
            CLOSE_HALF,
            [ReasonCode.FUTURES_DISABLED],
            id="futures-denies-reduce-only",
        ),
        pytest.param(status(futures_enabled=None), bare(), [], id="futures-not-reported-allows"),
        pytest.param(
            status(can_trade=False, futures_enabled=False),
            bare(),
            [ReasonCode.TRADING_DISABLED, ReasonCode.FUTURES_DISABLED],
            id="both-reported-in-order",
        ),
    ],
)
def test_exchange_permissions(
    account_status: AccountStatus, intent: OrderIntent, expected: list[ReasonCode]
) -> None:
    decision = evaluate(intent, state(account_status, LONG_BTC), Policy(), NOW)

    assert [r.code for r in decision.reasons] == expected
    assert decision.allowed is (not expected)


def _margin_off() -> AccountStatus:
    return dataclasses.replace(status(), margin_enabled=False)


@pytest.mark.parametrize(
    ("intent", "allowed"),
    [
        pytest.param(order("BTCUSDT", OrderSide.BUY, "0.01"), False, id="increase-long"),
        pytest.param(order("ETHUSDT", OrderSide.SELL, "1"), False, id="open-short"),
        pytest.param(bare(), False, id="may-it-trade"),
        pytest.param(CLOSE_HALF, True, id="reduce-only-that-reduces"),
        pytest.param(
            order("BTCUSDT", OrderSide.SELL, "5", reduce_only=True), False, id="reduce-only-too-big"
        ),
        pytest.param(
            order("BTCUSDT", OrderSide.BUY, "0.1", reduce_only=True),
            False,
            id="reduce-only-same-side",
        ),
    ],
)
def test_margin_trading_disabled_leaves_only_exits(intent: OrderIntent, allowed: bool) -> None:
    # isMarginTradingEnabled: false had no effect: every futures order is a margin order.
    decision = evaluate(intent, state(_margin_off(), LONG_BTC), Policy(), NOW)

    assert decision.allowed is allowed
    codes = [r.code for r in decision.reasons]
    # A reduce-only order that does not really reduce opens exposure: denied too.
    assert (ReasonCode.MARGIN_TRADING_DISABLED in codes) is (not allowed)


def test_margin_trading_not_reported_or_enabled_allows() -> None:
    for flag in (None, True):
        account_status = dataclasses.replace(status(), margin_enabled=flag)
        assert evaluate(order(), state(account_status, LONG_BTC), Policy(), NOW).allowed
