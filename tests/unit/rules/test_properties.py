"""Properties that must hold for any state and order: the fail-closed guarantees."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import (
    ACCOUNT_SCOPE,
    AccountSnapshot,
    AccountState,
    AccountStatus,
    Decision,
    Instant,
    Observed,
    OrderIntent,
    OrderSide,
    Policy,
    Position,
    PositionSide,
    QuantIndicator,
    ReasonCode,
    TradingStatus,
    WarningCode,
)
from app.rules import evaluate
from tests.unit.rules.builders import ACCOUNT, NOW

BOUNDED = settings(max_examples=200, deadline=None)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
KNOWN_STATUSES = tuple(TradingStatus)
#: Known statuses, strings the exchange might invent, and "not reported" (None).
trading_statuses = st.one_of(st.none(), st.sampled_from(KNOWN_STATUSES), st.text(max_size=12))


def amounts(low: str, high: str, places: int = 8) -> st.SearchStrategy[Decimal]:
    return st.decimals(
        min_value=Decimal(low),
        max_value=Decimal(high),
        places=places,
        allow_nan=False,
        allow_infinity=False,
    )


quant_indicators = st.builds(
    QuantIndicator,
    scope=st.sampled_from((ACCOUNT_SCOPE, *SYMBOLS)),
    indicator=st.sampled_from(("UFR", "IFER", "GCR", "DR", "TMV")),
    value=amounts("0", "20", 4),
    trigger_value=amounts("0", "20", 4),
    is_locked=st.booleans(),
    planned_recover_time_ms=st.none() | st.integers(NOW.wall_ms - 60_000, NOW.wall_ms + 600_000),
)

account_statuses = st.builds(
    AccountStatus,
    trading_status=trading_statuses,
    reason=st.text(max_size=20),
    can_trade=st.booleans(),
    futures_enabled=st.none() | st.booleans(),
    indicators=st.lists(quant_indicators, max_size=4).map(tuple),
)

positions = st.builds(
    Position,
    symbol=st.sampled_from(SYMBOLS),
    side=st.sampled_from(tuple(PositionSide)),
    quantity=amounts("0.001", "100", 3),
    mark_price=st.none() | amounts("0.01", "100000", 2),
    leverage=st.none() | st.integers(1, 125).map(Decimal),
)

account_snapshots = st.builds(
    AccountSnapshot,
    available_balance=amounts("0", "1000000"),
    margin_balance=amounts("-1000", "1000000"),
    maintenance_margin=amounts("0", "1000000"),
    # One position per (symbol, side): one-way mode and hedge mode both occur.
    positions=st.lists(positions, max_size=4, unique_by=lambda p: (p.symbol, p.side)).map(tuple),
    leverage_by_symbol=st.dictionaries(
        st.sampled_from(SYMBOLS), st.integers(1, 125).map(Decimal), max_size=2
    ),
)

policies = st.builds(
    Policy,
    max_status_age_s=st.floats(1, 30),
    max_snapshot_age_s=st.floats(1, 30),
    max_margin_ratio=amounts("0.05", "1", 2),
    reduce_only_statuses=st.frozensets(st.sampled_from(KNOWN_STATUSES)),
    default_leverage=st.integers(1, 20).map(Decimal),
    quant_warning_fraction=amounts("0.5", "1", 2),
)

intents = st.builds(
    OrderIntent,
    account=st.just(ACCOUNT),
    symbol=st.none() | st.sampled_from(SYMBOLS),
    side=st.none() | st.sampled_from(tuple(OrderSide)),
    quantity=st.none() | amounts("0.001", "1000", 3),
    price=st.none() | amounts("0.01", "100000", 2),
    reduce_only=st.booleans(),
)


def _state(
    status: AccountStatus | None,
    snapshot: AccountSnapshot | None,
    status_age_s: float,
    snapshot_age_s: float,
) -> AccountState:
    return AccountState(
        account=ACCOUNT,
        exchange="generic-v2",
        status=None if status is None else Observed(status, NOW.mono - status_age_s, 0),
        snapshot=None if snapshot is None else Observed(snapshot, NOW.mono - snapshot_age_s, 0),
        last_error="last refresh failed",
    )


@st.composite
def fresh_cases(draw: st.DrawFn) -> tuple[AccountState, Policy]:
    """A complete state whose parts are within the policy's age limits."""
    policy = draw(policies)
    account_state = _state(
        draw(account_statuses),
        draw(account_snapshots),
        # 1 % of headroom: mono - (mono - age) is not exactly age in floating point.
        draw(st.floats(0, policy.max_status_age_s * 0.99)),
        draw(st.floats(0, policy.max_snapshot_age_s * 0.99)),
    )
    return account_state, policy


@st.composite
def any_cases(draw: st.DrawFn) -> tuple[AccountState | None, Policy]:
    """Any state at all: absent, partial, stale or fresh."""
    if draw(st.booleans()):
        return draw(fresh_cases())
    policy = draw(policies)
    if draw(st.integers(0, 9)) == 0:
        return None, policy
    account_state = _state(
        draw(st.none() | account_statuses),
        draw(st.none() | account_snapshots),
        draw(st.floats(0, 120)),
        draw(st.floats(0, 120)),
    )
    return account_state, policy


def _really_reduces(intent: OrderIntent, snapshot: AccountSnapshot) -> bool:
    """Oracle, written apart from the rules: a reduce-only order within the opposite position."""
    if not intent.reduce_only or intent.symbol is None or intent.side is None:
        return False
    wanted = PositionSide.LONG if intent.side is OrderSide.SELL else PositionSide.SHORT
    for pos in snapshot.positions:
        if pos.symbol == intent.symbol and pos.side is wanted and pos.quantity > 0:
            return intent.quantity is None or intent.quantity <= pos.quantity
    return False


def _codes(decision: Decision) -> set[ReasonCode | WarningCode]:
    return {reason.code for reason in decision.reasons}


@BOUNDED
@given(case=any_cases(), intent=intents)
def test_allowed_exactly_when_there_is_no_reason(
    case: tuple[AccountState | None, Policy], intent: OrderIntent
) -> None:
    account_state, policy = case

    decision = evaluate(intent, account_state, policy, NOW)

    assert decision.allowed is (decision.reasons == ())
    assert all(isinstance(r.code, ReasonCode) for r in decision.reasons)
    assert all(r.code is WarningCode.QUANT_RULE_NEAR_TRIGGER for r in decision.warnings)


@BOUNDED
@given(
    case=fresh_cases(),
    intent=intents,
    drop_status=st.booleans(),
    drop_snapshot=st.booleans(),
)
def test_missing_data_never_allows(
    case: tuple[AccountState, Policy], intent: OrderIntent, drop_status: bool, drop_snapshot: bool
) -> None:
    account_state, policy = case
    if not (drop_status or drop_snapshot):
        broken: AccountState | None = None
    else:
        broken = AccountState(
            account=ACCOUNT,
            exchange=account_state.exchange,
            status=None if drop_status else account_state.status,
            snapshot=None if drop_snapshot else account_state.snapshot,
        )

    decision = evaluate(intent, broken, policy, NOW)

    assert not decision.allowed
    assert _codes(decision) == {ReasonCode.NO_DATA}


@BOUNDED
@given(
    case=fresh_cases(),
    intent=intents,
    status_excess_s=st.floats(0, 3600),
    snapshot_excess_s=st.floats(0, 3600),
    which=st.sampled_from(("status", "snapshot", "both")),
)
def test_stale_data_never_allows(
    case: tuple[AccountState, Policy],
    intent: OrderIntent,
    status_excess_s: float,
    snapshot_excess_s: float,
    which: str,
) -> None:
    account_state, policy = case
    assert account_state.status is not None
    assert account_state.snapshot is not None
    # Just over the limit (1 ms) up to an hour over it.
    status_age = policy.max_status_age_s + 0.001 + status_excess_s
    snapshot_age = policy.max_snapshot_age_s + 0.001 + snapshot_excess_s
    stale = _state(
        account_state.status.value,
        account_state.snapshot.value,
        status_age if which != "snapshot" else 0.0,
        snapshot_age if which != "status" else 0.0,
    )

    decision = evaluate(intent, stale, policy, NOW)

    assert not decision.allowed
    assert _codes(decision) == {ReasonCode.STALE_DATA}


@BOUNDED
@given(case=fresh_cases(), intent=intents)
def test_status_other_than_normal_allows_only_listed_real_exits(
    case: tuple[AccountState, Policy], intent: OrderIntent
) -> None:
    account_state, policy = case
    assert account_state.status is not None
    assert account_state.snapshot is not None
    trading_status = account_state.status.value.trading_status

    decision = evaluate(intent, account_state, policy, NOW)

    normal = trading_status is None or trading_status == TradingStatus.NORMAL
    listed_exit = trading_status in policy.reduce_only_statuses and _really_reduces(
        intent, account_state.snapshot.value
    )
    if normal or listed_exit:
        assert ReasonCode.ACCOUNT_NOT_NORMAL not in _codes(decision)
    else:
        assert not decision.allowed
        assert ReasonCode.ACCOUNT_NOT_NORMAL in _codes(decision)


@st.composite
def real_exits(draw: st.DrawFn) -> tuple[AccountState, Policy, OrderIntent]:
    """A fresh state holding at least one position, and a reduce-only order within it."""
    account_state, policy = draw(fresh_cases())
    assert account_state.snapshot is not None
    snapshot = account_state.snapshot.value
    if not snapshot.positions:
        extra = draw(positions)
        snapshot = AccountSnapshot(
            available_balance=snapshot.available_balance,
            margin_balance=snapshot.margin_balance,
            maintenance_margin=snapshot.maintenance_margin,
            positions=(extra,),
        )
    target = draw(st.sampled_from(snapshot.positions))
    quantity = draw(st.none() | amounts("0.001", str(target.quantity), 3))
    intent = OrderIntent(
        account=ACCOUNT,
        symbol=target.symbol,
        side=OrderSide.SELL if target.side is PositionSide.LONG else OrderSide.BUY,
        quantity=quantity,
        price=draw(st.none() | amounts("0.01", "100000", 2)),
        reduce_only=True,
    )
    assert account_state.status is not None
    fresh = AccountState(
        account=ACCOUNT,
        exchange=account_state.exchange,
        status=account_state.status,
        snapshot=Observed(snapshot, account_state.snapshot.received_mono, 0),
    )
    return fresh, policy, intent


#: Denies that must never stop a real exit: they concern opening exposure.
EXIT_SAFE = frozenset(
    {
        ReasonCode.INSUFFICIENT_MARGIN,
        ReasonCode.MARGIN_RATIO_HIGH,
        ReasonCode.PRICE_UNAVAILABLE,
        ReasonCode.ACCOUNT_LOCKED,
        ReasonCode.SYMBOL_LOCKED,
        ReasonCode.REDUCE_ONLY_WOULD_INCREASE,
    }
)


@BOUNDED
@given(case=real_exits())
def test_an_order_that_really_reduces_is_never_denied_for_margin_price_or_locks(
    case: tuple[AccountState, Policy, OrderIntent],
) -> None:
    account_state, policy, intent = case

    decision = evaluate(intent, account_state, policy, NOW)

    assert not (_codes(decision) & EXIT_SAFE)


@BOUNDED
@given(case=real_exits(), listed=st.booleans())
def test_a_real_exit_is_allowed_on_a_tradable_account_in_normal_or_listed_status(
    case: tuple[AccountState, Policy, OrderIntent], listed: bool
) -> None:
    account_state, policy, intent = case
    assert account_state.status is not None
    # NORMAL, or a restriction the policy lets exits through (RESTRICTED if it lists none).
    trading_status: str = TradingStatus.NORMAL
    if listed:
        if not policy.reduce_only_statuses:
            policy = replace(policy, reduce_only_statuses=frozenset({TradingStatus.RESTRICTED}))
        trading_status = min(policy.reduce_only_statuses)
    tradable = AccountStatus(
        trading_status=trading_status,
        reason="",
        can_trade=True,
        indicators=account_state.status.value.indicators,  # locks included
    )
    account_state = AccountState(
        account=ACCOUNT,
        exchange=account_state.exchange,
        status=Observed(tradable, account_state.status.received_mono, 0),
        snapshot=account_state.snapshot,
    )

    decision = evaluate(intent, account_state, policy, NOW)

    assert decision.allowed, decision.reasons


def test_now_is_only_read_from_the_argument() -> None:
    # Same inputs at two different decision times inside the age limits: same answer.
    account_state = _state(
        AccountStatus("NORMAL", "", can_trade=True),
        AccountSnapshot(Decimal(100), Decimal(100), Decimal(0), ()),
        0.0,
        0.0,
    )
    later = Instant(wall_ms=NOW.wall_ms + 5000, mono=NOW.mono + 5.0)
    intent = OrderIntent(account=ACCOUNT)

    assert evaluate(intent, account_state, Policy(), NOW) == evaluate(
        intent, account_state, Policy(), later
    )
