"""Quantitative-rule locks (account and symbol) and near-trigger warnings."""

from __future__ import annotations

import pytest

from app.domain import (
    OrderIntent,
    OrderSide,
    Policy,
    PositionSide,
    QuantIndicator,
    ReasonCode,
    WarningCode,
)
from app.rules import evaluate
from tests.unit.rules.builders import (
    NOW,
    D,
    bare,
    indicator,
    order,
    position,
    snapshot,
    state,
    status,
)

IN_1_MIN = NOW.wall_ms + 60_000
IN_5_MIN = NOW.wall_ms + 300_000
LONG_BTC = snapshot(position("BTCUSDT", PositionSide.LONG, "1"))


@pytest.mark.parametrize(
    ("indicators", "intent", "expected"),
    [
        pytest.param(
            (indicator("BTCUSDT", "DR", "0.99", "0.99"),),
            order("BTCUSDT"),
            [(ReasonCode.SYMBOL_LOCKED, 60_000, "0.99", "0.99")],
            id="symbol-locked",
        ),
        pytest.param(
            (indicator("ACCOUNT", "TMV", "10", "1"),),
            bare(),
            [(ReasonCode.ACCOUNT_LOCKED, 60_000, "1", "10")],
            id="account-locked-denies-bare-intent",
        ),
        pytest.param(
            (indicator("ETHUSDT", "DR"),),
            order("BTCUSDT"),
            [],
            id="other-symbol-locked-allows",
        ),
        pytest.param(
            (indicator("BTCUSDT", "DR"),),
            bare(),
            [],
            id="symbol-lock-ignored-without-symbol",
        ),
        pytest.param(
            (indicator("BTCUSDT", "DR", locked=False),),
            order("BTCUSDT"),
            [],
            id="indicator-not-locked-allows",
        ),
        pytest.param(
            (indicator("ACCOUNT", "TMV", "10", "1"), indicator("BTCUSDT", "UFR", "0.996", "0.995")),
            order("BTCUSDT"),
            [
                (ReasonCode.ACCOUNT_LOCKED, 60_000, "1", "10"),
                (ReasonCode.SYMBOL_LOCKED, 60_000, "0.995", "0.996"),
            ],
            id="account-and-symbol-one-reason-each",
        ),
        pytest.param(
            (indicator("BTCUSDT", "DR", recover_ms=NOW.wall_ms - 1),),
            order("BTCUSDT"),
            [(ReasonCode.SYMBOL_LOCKED, 0, "0.99", "0.99")],
            id="recovery-time-passed-still-denies-retry-now",
        ),
        pytest.param(
            (indicator("BTCUSDT", "DR", recover_ms=None),),
            order("BTCUSDT"),
            [(ReasonCode.SYMBOL_LOCKED, None, "0.99", "0.99")],
            id="unknown-recovery-time",
        ),
    ],
)
def test_quant_locks(
    indicators: tuple[QuantIndicator, ...],
    intent: OrderIntent,
    expected: list[tuple[ReasonCode, int | None, str, str]],
) -> None:
    decision = evaluate(intent, state(status(indicators=indicators)), Policy(), NOW)

    assert [(r.code, r.retry_after_ms, r.limit, r.observed) for r in decision.reasons] == expected
    assert decision.allowed is (not expected)


def test_several_locks_on_one_scope_give_one_reason_with_the_latest_recovery() -> None:
    indicators = (
        indicator("BTCUSDT", "UFR", "0.999", "0.995", recover_ms=IN_5_MIN),
        indicator("BTCUSDT", "DR", "0.99", "0.99", recover_ms=IN_1_MIN),
    )

    decision = evaluate(order("BTCUSDT"), state(status(indicators=indicators)), Policy(), NOW)

    (reason,) = decision.reasons
    assert reason.code is ReasonCode.SYMBOL_LOCKED
    assert reason.retry_after_ms == 300_000
    assert (reason.limit, reason.observed) == (None, None)
    assert reason.message == (
        "BTCUSDT locked by quantitative trading rule UFR (value 0.999, trigger 0.995), "
        f"DR (value 0.99, trigger 0.99); planned recovery at {IN_5_MIN} (epoch ms)"
    )


@pytest.mark.parametrize(
    ("indicators", "intent", "allowed"),
    [
        pytest.param(
            (indicator("BTCUSDT", "DR"),),
            order("BTCUSDT", OrderSide.SELL, "1", reduce_only=True),
            True,
            id="symbol-lock-passes-full-close",
        ),
        pytest.param(
            (indicator("ACCOUNT", "TMV", "10", "1"),),
            order("BTCUSDT", OrderSide.SELL, None, reduce_only=True),
            True,
            id="account-lock-passes-close-without-quantity",
        ),
        pytest.param(
            (indicator("BTCUSDT", "DR"),),
            order("BTCUSDT", OrderSide.SELL, "1.5", reduce_only=True),
            False,
            id="reduce-only-larger-than-position-stays-locked",
        ),
        pytest.param(
            (indicator("BTCUSDT", "DR"),),
            order("BTCUSDT", OrderSide.SELL, "0.5"),
            False,
            id="sell-without-reduce-only-flag-stays-locked",
        ),
    ],
)
def test_orders_that_really_reduce_pass_locks(
    indicators: tuple[QuantIndicator, ...], intent: OrderIntent, allowed: bool
) -> None:
    decision = evaluate(intent, state(status(indicators=indicators), LONG_BTC), Policy(), NOW)

    codes = {r.code for r in decision.reasons}
    assert decision.allowed is allowed
    assert bool(codes & {ReasonCode.SYMBOL_LOCKED, ReasonCode.ACCOUNT_LOCKED}) is (not allowed)


@pytest.mark.parametrize(
    ("quant", "intent", "expected"),
    [
        pytest.param(
            indicator("BTCUSDT", "UFR", "0.8", "1", locked=False),
            order("BTCUSDT"),
            [("1", "0.8")],
            id="exactly-at-warning-fraction",
        ),
        pytest.param(
            indicator("BTCUSDT", "UFR", "0.79", "1", locked=False),
            order("BTCUSDT"),
            [],
            id="just-below-warning-fraction",
        ),
        pytest.param(
            indicator("ACCOUNT", "TMV", "9", "10", locked=False),
            bare(),
            [("10", "9")],
            id="account-indicator-warns-bare-intent",
        ),
        pytest.param(
            indicator("ETHUSDT", "UFR", "0.99", "1", locked=False),
            order("BTCUSDT"),
            [],
            id="other-symbol-no-warning",
        ),
        pytest.param(
            indicator("BTCUSDT", "UFR", "5", "0", locked=False),
            order("BTCUSDT"),
            [],
            id="zero-trigger-no-warning",
        ),
        pytest.param(
            indicator("BTCUSDT", "UFR", "0.99", "1", locked=True),
            order("BTCUSDT"),
            [],
            id="locked-is-a-deny-not-a-warning",
        ),
    ],
)
def test_near_trigger_warnings(
    quant: QuantIndicator, intent: OrderIntent, expected: list[tuple[str, str]]
) -> None:
    decision = evaluate(intent, state(status(indicators=(quant,))), Policy(), NOW)

    assert all(w.code is WarningCode.QUANT_RULE_NEAR_TRIGGER for w in decision.warnings)
    assert [(w.limit, w.observed) for w in decision.warnings] == expected


def test_warning_never_denies_and_names_the_indicator() -> None:
    quant = indicator("BTCUSDT", "DR", "0.95", "0.99", locked=False)

    decision = evaluate(order("BTCUSDT"), state(status(indicators=(quant,))), Policy(), NOW)

    assert decision.allowed
    assert decision.reasons == ()
    assert decision.warnings[0].message == (
        "quantitative rule DR on BTCUSDT is at 0.95, near its trigger 0.99; "
        "the exchange locks trading when it is reached"
    )


def test_warning_fraction_comes_from_policy() -> None:
    quant = indicator("BTCUSDT", "DR", "0.5", "1", locked=False)
    policy = Policy(quant_warning_fraction=D("0.5"))

    decision = evaluate(order("BTCUSDT"), state(status(indicators=(quant,))), policy, NOW)

    assert [w.code for w in decision.warnings] == [WarningCode.QUANT_RULE_NEAR_TRIGGER]
