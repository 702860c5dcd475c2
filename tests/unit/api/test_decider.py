"""The decision path: kill switches and rate counts reach the rules; only allowed orders count."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from app.api.decider import Decider
from app.domain import (
    Instant,
    KillSwitch,
    KillSwitchMode,
    KillSwitchScope,
    OrderIntent,
    OrderSide,
    Policy,
    RateLimit,
)
from app.metrics import Metrics
from app.state.store import StateStore, UnknownAccount
from tests.unit.rules.builders import snapshot, status

NOW = Instant(wall_ms=1_763_712_000_000, mono=500.0)
RATE_2 = Policy(order_rate=RateLimit(max_orders=2, window_s=10.0))
ENTRY = OrderIntent("a", "BTCUSDT", OrderSide.BUY, Decimal("0.01"), Decimal("60000"))
HUGE = replace(ENTRY, quantity=Decimal("1000"))


def decider(policy: Policy = RATE_2, switches: tuple[KillSwitch, ...] = ()) -> Decider:
    store = StateStore([("a", "generic-v2")])
    store.put_status("a", status(), NOW)
    store.put_snapshot("a", snapshot(available="10000"), NOW)
    return Decider(
        store,
        {"a": policy},
        Metrics(CollectorRegistry(), "test"),
        decision_log="none",
        clock=lambda: NOW,
        switches=lambda _: switches,
    )


def codes(body: dict[str, object]) -> list[str]:
    return [r["code"] for r in body["reasons"]]  # type: ignore[attr-defined]


def test_only_allowed_orders_use_the_rate_budget() -> None:
    guard = decider()
    for _ in range(5):  # denied for margin: costs nothing
        assert codes(guard.decide(HUGE)) == ["INSUFFICIENT_MARGIN"]
    assert guard.decide(ENTRY)["allowed"]
    assert guard.decide(OrderIntent("a"))["allowed"]  # a bare question is not an order
    assert guard.decide(ENTRY)["allowed"]
    assert codes(guard.decide(ENTRY)) == ["ORDER_RATE_LIMIT"]


def test_kill_switches_reach_the_rules() -> None:
    halt = KillSwitch("ks-1", KillSwitchScope.GLOBAL, KillSwitchMode.HALT, "ops", "drill", 1)
    assert codes(decider(switches=(halt,)).decide(ENTRY)) == ["KILL_SWITCH"]


def test_policy_can_be_swapped_and_reset_at_run_time() -> None:
    guard = decider(Policy())
    tight = Policy(max_order_notional=Decimal("100"))
    guard.set_policy("a", tight)

    assert guard.is_overridden("a")
    assert codes(guard.decide(ENTRY)) == ["ORDER_NOTIONAL_LIMIT"]
    guard.reset_policy("a")
    assert not guard.is_overridden("a")
    assert guard.decide(ENTRY)["allowed"]
    with pytest.raises(UnknownAccount):
        guard.set_policy("nope", tight)
