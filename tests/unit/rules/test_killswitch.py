"""Kill switches in decisions: HALT stops everything, REDUCE_ONLY lets real exits out."""

from __future__ import annotations

import pytest

from app.domain import (
    AccountState,
    KillSwitch,
    KillSwitchMode,
    KillSwitchScope,
    OrderIntent,
    OrderSide,
    Policy,
    PositionSide,
    ReasonCode,
)
from app.rules import evaluate
from tests.unit.rules.builders import (
    ACCOUNT,
    NOW,
    bare,
    order,
    position,
    snapshot,
    state,
    status,
)

HALT, REDUCE = KillSwitchMode.HALT, KillSwitchMode.REDUCE_ONLY
LONG_1 = state(None, snapshot(position("BTCUSDT", PositionSide.LONG, "1")))

EXIT = order("BTCUSDT", OrderSide.SELL, "0.5", reduce_only=True)
TOO_BIG_EXIT = order("BTCUSDT", OrderSide.SELL, "2", reduce_only=True)
ENTRY = order("BTCUSDT", OrderSide.BUY, "0.01")
OTHER_SYMBOL = order("ETHUSDT", OrderSide.BUY, "0.01", price="3000")


def switch(
    scope: KillSwitchScope = KillSwitchScope.ACCOUNT,
    mode: KillSwitchMode = HALT,
    *,
    account: str | None = ACCOUNT,
    symbol: str | None = None,
    expires_at_ms: int | None = None,
    actor: str = "alice",
    reason: str = "exchange incident",
    created_at_ms: int = 1,
) -> KillSwitch:
    return KillSwitch(
        id=f"ks-{scope.value}-{mode.value}-{created_at_ms}",
        scope=scope,
        mode=mode,
        actor=actor,
        reason=reason,
        created_at_ms=created_at_ms,
        account=None if scope is KillSwitchScope.GLOBAL else account,
        symbol=symbol,
        expires_at_ms=expires_at_ms,
    )


GLOBAL_HALT = switch(KillSwitchScope.GLOBAL, HALT)
ACCOUNT_HALT = switch(KillSwitchScope.ACCOUNT, HALT)
ACCOUNT_REDUCE = switch(KillSwitchScope.ACCOUNT, REDUCE)
SYMBOL_REDUCE = switch(KillSwitchScope.SYMBOL, REDUCE, symbol="BTCUSDT")
SYMBOL_HALT = switch(KillSwitchScope.SYMBOL, HALT, symbol="BTCUSDT")
OTHER_ACCOUNT_HALT = switch(KillSwitchScope.ACCOUNT, HALT, account="someone-else")


def codes(intent: OrderIntent, *switches: KillSwitch, account: AccountState = LONG_1) -> list[str]:
    decision = evaluate(intent, account, Policy(), NOW, switches=switches)
    return [r.code.value for r in decision.reasons]


@pytest.mark.parametrize(
    ("switches", "intent", "denied"),
    [
        pytest.param((), ENTRY, False, id="no-switch-entry-allowed"),
        pytest.param((GLOBAL_HALT,), ENTRY, True, id="global-halt-denies-entry"),
        pytest.param((GLOBAL_HALT,), EXIT, True, id="global-halt-denies-real-exit"),
        pytest.param((ACCOUNT_HALT,), bare(), True, id="account-halt-denies-bare-question"),
        pytest.param((ACCOUNT_REDUCE,), ENTRY, True, id="account-reduce-only-denies-entry"),
        pytest.param((ACCOUNT_REDUCE,), EXIT, False, id="account-reduce-only-lets-exit-out"),
        pytest.param(
            (ACCOUNT_REDUCE,), TOO_BIG_EXIT, True, id="account-reduce-only-denies-oversized-exit"
        ),
        pytest.param((ACCOUNT_REDUCE,), bare(), True, id="account-reduce-only-denies-bare"),
        pytest.param((SYMBOL_REDUCE,), ENTRY, True, id="symbol-reduce-only-denies-entry"),
        pytest.param((SYMBOL_REDUCE,), EXIT, False, id="symbol-reduce-only-lets-exit-out"),
        pytest.param((SYMBOL_HALT,), OTHER_SYMBOL, False, id="symbol-halt-spares-other-symbol"),
        pytest.param((SYMBOL_HALT,), bare(), False, id="symbol-halt-spares-bare-question"),
        pytest.param((OTHER_ACCOUNT_HALT,), ENTRY, False, id="other-accounts-switch-ignored"),
        pytest.param(
            (ACCOUNT_REDUCE, SYMBOL_HALT), EXIT, True, id="narrow-halt-beats-wide-reduce-only"
        ),
        pytest.param(
            (GLOBAL_HALT, SYMBOL_REDUCE), EXIT, True, id="narrow-reduce-only-never-loosens-halt"
        ),
    ],
)
def test_kill_switch_table(
    switches: tuple[KillSwitch, ...], intent: OrderIntent, denied: bool
) -> None:
    found = codes(intent, *switches)
    assert (ReasonCode.KILL_SWITCH.value in found) is denied, found


def test_reason_names_mode_scope_actor_and_reason() -> None:
    [reason] = evaluate(ENTRY, LONG_1, Policy(), NOW, switches=(SYMBOL_REDUCE,)).reasons
    assert reason.code is ReasonCode.KILL_SWITCH
    assert "REDUCE_ONLY" in reason.message
    assert f"account {ACCOUNT} symbol BTCUSDT" in reason.message
    assert "alice" in reason.message
    assert "exchange incident" in reason.message
    assert reason.retry_after_ms is None


def test_an_expiring_switch_says_when_it_lifts() -> None:
    expiring = switch(expires_at_ms=NOW.wall_ms + 90_000)
    [reason] = evaluate(ENTRY, LONG_1, Policy(), NOW, switches=(expiring,)).reasons
    assert reason.retry_after_ms == 90_000
    assert str(NOW.wall_ms + 90_000) in reason.message


@pytest.mark.parametrize(
    ("expires_at_ms", "holds"),
    [
        pytest.param(NOW.wall_ms + 1, True, id="expires-in-1ms-holds"),
        pytest.param(NOW.wall_ms, False, id="expires-now-ignored"),
        pytest.param(NOW.wall_ms - 60_000, False, id="expired-a-minute-ago-ignored"),
    ],
)
def test_expired_switches_hold_nothing(expires_at_ms: int, holds: bool) -> None:
    found = codes(ENTRY, switch(expires_at_ms=expires_at_ms))
    assert (ReasonCode.KILL_SWITCH.value in found) is holds


def test_strictest_then_widest_switch_comes_first_and_every_hold_is_named() -> None:
    decision = evaluate(
        ENTRY,
        LONG_1,
        Policy(),
        NOW,
        switches=(SYMBOL_REDUCE, ACCOUNT_REDUCE, SYMBOL_HALT, GLOBAL_HALT),
    )
    heads = [r.message.split(" engaged")[0] for r in decision.reasons]
    assert heads == [
        "kill switch HALT (global)",
        f"kill switch HALT (account {ACCOUNT} symbol BTCUSDT)",
        f"kill switch REDUCE_ONLY (account {ACCOUNT})",
        f"kill switch REDUCE_ONLY (account {ACCOUNT} symbol BTCUSDT)",
    ]


def test_kill_switch_is_reported_before_exchange_reasons() -> None:
    closed = state(status("CLOSED"), snapshot())
    assert codes(ENTRY, ACCOUNT_HALT, account=closed) == ["KILL_SWITCH", "ACCOUNT_NOT_NORMAL"]


@pytest.mark.parametrize(
    "account_state",
    [
        pytest.param(AccountState(account=ACCOUNT, exchange="generic-v2"), id="no-data"),
        pytest.param(state(status_age_s=60.0), id="stale-data"),
    ],
)
def test_halt_is_reported_even_without_fresh_data(account_state: AccountState) -> None:
    found = codes(EXIT, ACCOUNT_HALT, account=account_state)
    assert found[0] == "KILL_SWITCH"
    assert found[1] in {"NO_DATA", "STALE_DATA"}


def test_reduce_only_switch_is_not_judged_on_stale_data() -> None:
    # Whether the order reduces depends on the (stale) position: only the gate speaks.
    assert codes(EXIT, ACCOUNT_REDUCE, account=state(status_age_s=60.0)) == ["STALE_DATA"]
