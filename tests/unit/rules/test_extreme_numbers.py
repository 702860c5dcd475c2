"""No arithmetic in the rules raises, whatever the parsed amounts: ``evaluate()`` over extreme
decimals (huge and tiny exponents, zero, negatives, infinities, NaNs) always returns a
decision, and a computed amount that is not finite never lets an order through a limit."""

from __future__ import annotations

import decimal
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import (
    AccountSnapshot,
    AccountState,
    AccountStatus,
    Observed,
    OrderIntent,
    OrderSide,
    Policy,
    Position,
    PositionSide,
    ReasonCode,
)
from app.rules import evaluate
from tests.unit.rules.builders import ACCOUNT, NOW, RECEIVED_MONO, order, state

EXTREMES = (
    "1E+999999999",
    "-1E+999999999",
    "9.999999999999999999999999999999999E+999999",
    "1E+400",
    "1E-999999999",
    "1E-400",
    "0",
    "-0",
    "1",
    "60000",
    "123456789012345678901234567890.123456789",
    "Infinity",
    "-Infinity",
    "NaN",
)
#: Any decimal at all: the named extremes and whatever hypothesis makes (NaNs included).
extreme = st.one_of(
    st.sampled_from(EXTREMES).map(Decimal),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.integers(-(10**60), 10**60).map(lambda i: Decimal(f"{i}E+1000000")),
)
#: Parsed requests carry only positive finite amounts, but of any magnitude.
request_amount = st.one_of(
    st.sampled_from(("1E+999999999", "1E-999999999", "1E+400", "0.01", "60000")).map(Decimal),
    st.decimals(min_value=Decimal("1E-40"), allow_nan=False, allow_infinity=False),
)
SYMBOLS = ("BTCUSDT", "ETHUSDT")

extreme_positions = st.builds(
    Position,
    symbol=st.sampled_from(SYMBOLS),
    side=st.sampled_from(tuple(PositionSide)),
    quantity=extreme,
    mark_price=st.none() | extreme,
    leverage=st.none() | extreme,
    notional=st.none() | extreme,
    initial_margin=st.none() | extreme,
    maintenance_margin=st.none() | extreme,
)
extreme_snapshots = st.builds(
    AccountSnapshot,
    available_balance=extreme,
    margin_balance=extreme,
    maintenance_margin=extreme,
    wallet_balance=extreme,
    initial_margin=extreme,
    positions=st.lists(extreme_positions, max_size=3).map(tuple),
    leverage_by_symbol=st.dictionaries(st.sampled_from(SYMBOLS), extreme, max_size=2),
)
extreme_policies = st.builds(
    Policy,
    max_margin_ratio=extreme,
    default_leverage=extreme,
    quant_warning_fraction=extreme,
    max_order_notional=st.none() | extreme,
    max_position_notional=st.none() | extreme,
    min_available_after_order=st.none() | extreme,
)
intents = st.builds(
    OrderIntent,
    account=st.just(ACCOUNT),
    symbol=st.none() | st.sampled_from(SYMBOLS),
    side=st.none() | st.sampled_from(tuple(OrderSide)),
    quantity=st.none() | request_amount,
    price=st.none() | request_amount,
    reduce_only=st.booleans(),
)
statuses = st.builds(AccountStatus, trading_status=st.just("NORMAL"), can_trade=st.just(True))


def _fresh(status: AccountStatus, snap: AccountSnapshot) -> AccountState:
    return AccountState(
        account=ACCOUNT,
        exchange="generic-v2",
        status=Observed(status, RECEIVED_MONO, 0),
        snapshot=Observed(snap, RECEIVED_MONO, 0),
    )


@settings(max_examples=400, deadline=None)
@given(snap=extreme_snapshots, policy=extreme_policies, intent=intents, status=statuses)
def test_evaluate_never_raises_on_extreme_decimals(
    snap: AccountSnapshot, policy: Policy, intent: OrderIntent, status: AccountStatus
) -> None:
    # The caller's decimal context must not matter either: the default one traps overflow
    # and invalid operations, which is what turned a huge position into a 500.
    with decimal.localcontext(decimal.Context(traps=[decimal.Overflow, decimal.InvalidOperation])):
        decision = evaluate(intent, _fresh(status, snap), policy, NOW)
    assert decision.allowed == (not decision.reasons)
    for reason in decision.reasons:
        assert isinstance(reason.message, str)


@settings(max_examples=200, deadline=None)
@given(
    held=st.sampled_from(("1E+999999999", "1E+400", "Infinity", "NaN")).map(Decimal),
    quantity=request_amount,
)
def test_a_position_sum_that_is_not_finite_denies_at_the_position_limit(
    held: Decimal, quantity: Decimal
) -> None:
    snap = AccountSnapshot(
        available_balance=Decimal("1E+999999999"),
        margin_balance=Decimal("1E+9"),
        maintenance_margin=Decimal(0),
        positions=(Position("BTCUSDT", PositionSide.LONG, held, mark_price=Decimal(60000)),),
    )
    policy = Policy(max_position_notional=Decimal(40_000), max_margin_ratio=Decimal("0.8"))
    intent = order(side=OrderSide.BUY, quantity=str(quantity), price="60000")
    decision = evaluate(intent, state(account_snapshot=snap), policy, NOW)
    assert not decision.allowed
    assert ReasonCode.POSITION_LIMIT in {r.code for r in decision.reasons}


def test_a_huge_position_quantity_gives_a_position_limit_denial_not_an_error() -> None:
    """The reported case: a position of 1E+999999999 BTC made /can-trade answer 500."""
    snap = AccountSnapshot(
        available_balance=Decimal(100_000),
        margin_balance=Decimal(100_000),
        maintenance_margin=Decimal(0),
        positions=(
            Position(
                "BTCUSDT", PositionSide.LONG, Decimal("1E+999999999"), mark_price=Decimal(60000)
            ),
        ),
    )
    policy = Policy(max_position_notional=Decimal(40_000))
    decision = evaluate(
        order(side=OrderSide.BUY, quantity="0.01", price="60000"),
        state(account_snapshot=snap),
        policy,
        NOW,
    )
    assert not decision.allowed
    assert [r.code for r in decision.reasons] == [ReasonCode.POSITION_LIMIT]
