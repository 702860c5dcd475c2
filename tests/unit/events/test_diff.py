"""``diff``: one event per change of an account's derived state, none for anything else."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from app.domain import AccountState, AccountStatus, Observed
from app.events.diff import diff
from app.events.model import EventType
from tests.unit.rules.builders import ACCOUNT, indicator, snapshot, status

FRACTION = Decimal("0.8")
HEALTHY = status("NORMAL")


def at(account_status: AccountStatus | None, version: int = 1) -> AccountState:
    return AccountState(
        account=ACCOUNT,
        exchange="generic-v2",
        status=None if account_status is None else Observed(account_status, 1.0, 0),
        snapshot=Observed(snapshot(), 1.0, 0),
        version=version,
    )


def events(
    before: AccountStatus | None, after: AccountStatus | None
) -> list[tuple[str, str | None]]:
    return [
        (e.type.value, e.symbol) for e in diff(at(before), at(after, 2), warning_fraction=FRACTION)
    ]


BTC_LOCK = indicator("BTCUSDT", "DR", "0.95", "0.9", locked=True)
BTC_LOCK_OTHER = indicator("BTCUSDT", "UFR", "0.99", "0.9", locked=True)
ACCOUNT_LOCK = indicator("ACCOUNT", "TMV", "10", "1", locked=True)
SOL_NEAR = indicator("SOLUSDT", "UFR", "0.8", "1", locked=False)
SOL_FAR = indicator("SOLUSDT", "UFR", "0.79", "1", locked=False)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(HEALTHY, HEALTHY, [], id="same-status-no-event"),
        pytest.param(
            HEALTHY,
            status("RESTRICTED"),
            [("TRADING_STATUS_CHANGED", None)],
            id="normal-to-restricted",
        ),
        pytest.param(
            status("RESTRICTED"),
            HEALTHY,
            [("TRADING_STATUS_CHANGED", None)],
            id="restricted-back-to-normal",
        ),
        pytest.param(
            HEALTHY, status(can_trade=False), [("CAN_TRADE_CHANGED", None)], id="can-trade-off"
        ),
        pytest.param(
            HEALTHY,
            status(futures_enabled=False),
            [("FUTURES_ENABLED_CHANGED", None)],
            id="futures-disabled",
        ),
        pytest.param(
            status(futures_enabled=True),
            status(futures_enabled=None),
            [],
            id="futures-no-longer-reported-is-no-change",
        ),
        pytest.param(
            HEALTHY,
            status(indicators=(BTC_LOCK,)),
            [("SYMBOL_LOCKED", "BTCUSDT")],
            id="symbol-locked",
        ),
        pytest.param(
            status(indicators=(BTC_LOCK,)),
            status(indicators=(BTC_LOCK, BTC_LOCK_OTHER)),
            [],
            id="second-lock-on-a-locked-symbol-no-event",
        ),
        pytest.param(
            status(indicators=(BTC_LOCK,)),
            HEALTHY,
            [("SYMBOL_UNLOCKED", "BTCUSDT")],
            id="symbol-unlocked",
        ),
        pytest.param(
            HEALTHY,
            status(indicators=(ACCOUNT_LOCK,)),
            [("ACCOUNT_LOCKED", None)],
            id="account-locked",
        ),
        pytest.param(
            status(indicators=(ACCOUNT_LOCK,)),
            HEALTHY,
            [("ACCOUNT_UNLOCKED", None)],
            id="account-unlocked",
        ),
        pytest.param(
            status(indicators=(SOL_FAR,)),
            status(indicators=(SOL_NEAR,)),
            [("QUANT_RULE_NEAR_TRIGGER", "SOLUSDT")],
            id="warning-appears-at-exactly-the-fraction",
        ),
        pytest.param(
            status(indicators=(SOL_NEAR,)),
            status(indicators=(replace(SOL_NEAR, value=Decimal("0.9")),)),
            [],
            id="warning-persisting-no-event",
        ),
        pytest.param(
            status(indicators=(SOL_NEAR,)), status(indicators=(SOL_FAR,)), [], id="warning-clears"
        ),
        pytest.param(
            HEALTHY,
            status("CLOSED", can_trade=False, futures_enabled=False, indicators=(BTC_LOCK,)),
            [
                ("TRADING_STATUS_CHANGED", None),
                ("CAN_TRADE_CHANGED", None),
                ("FUTURES_ENABLED_CHANGED", None),
                ("SYMBOL_LOCKED", "BTCUSDT"),
            ],
            id="several-changes-in-fixed-order",
        ),
        # First status after a start: compared with a healthy baseline.
        pytest.param(None, HEALTHY, [], id="first-status-healthy-is-silent"),
        pytest.param(
            None,
            status("RESTRICTED", can_trade=False, indicators=(SOL_NEAR,)),
            [
                ("TRADING_STATUS_CHANGED", None),
                ("CAN_TRADE_CHANGED", None),
                ("QUANT_RULE_NEAR_TRIGGER", "SOLUSDT"),
            ],
            id="first-status-unhealthy-is-announced",
        ),
        pytest.param(HEALTHY, None, [], id="no-status-no-event"),
    ],
)
def test_diff_table(
    before: AccountStatus | None,
    after: AccountStatus | None,
    expected: list[tuple[str, str | None]],
) -> None:
    assert events(before, after) == expected


def test_a_snapshot_refresh_alone_is_not_an_event() -> None:
    old = at(HEALTHY)
    new = replace(old, snapshot=Observed(snapshot(available="1"), 2.0, 0), version=2)
    assert diff(old, new, warning_fraction=FRACTION) == []


def test_event_data_says_what_changed_and_from_what() -> None:
    [event] = diff(at(HEALTHY), at(status("RESTRICTED", reason="KYC")), warning_fraction=FRACTION)
    assert event.type is EventType.TRADING_STATUS_CHANGED
    assert event.account == ACCOUNT
    assert dict(event.data) == {
        "trading_status": "RESTRICTED",
        "previous": "NORMAL",
        "reason": "KYC",
    }


def test_lock_event_carries_indicators_and_recovery_time() -> None:
    [event] = diff(at(HEALTHY), at(status(indicators=(BTC_LOCK,))), warning_fraction=FRACTION)
    assert event.data["planned_recover_time_ms"] == BTC_LOCK.planned_recover_time_ms
    assert event.data["indicators"] == [
        {
            "indicator": "DR",
            "value": "0.95",
            "trigger_value": "0.9",
            "planned_recover_time_ms": BTC_LOCK.planned_recover_time_ms,
        }
    ]


def test_warning_fraction_comes_from_the_caller() -> None:
    before, after = at(status(indicators=())), at(status(indicators=(SOL_FAR,)))
    assert diff(before, after, warning_fraction=Decimal("0.5"))[0].data["warning_fraction"] == "0.5"
    assert diff(before, after, warning_fraction=Decimal("0.9")) == []
