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
    QuantIndicator,
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


# ------------------------------------------------------------------ reused rule evaluations


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> Instant:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now = Instant(self.now.wall_ms + int(seconds * 1000), self.now.mono + seconds)


def _twins(
    policy: Policy, switches: list[tuple[KillSwitch, ...]]
) -> tuple[StateStore, Clock, Decider, Decider]:
    """Two deciders on one store and clock: one reusing evaluations, one never."""
    store = StateStore([("a", "generic-v2")])
    store.put_status("a", status(), NOW)
    store.put_snapshot("a", snapshot(available="10000"), NOW)
    clock = Clock()
    made = [
        Decider(
            store,
            {"a": policy},
            Metrics(CollectorRegistry(), "test"),
            decision_log="none",
            clock=clock,
            switches=lambda _: switches[0],
            cache_size=size,
        )
        for size in (4096, 0)
    ]
    return store, clock, made[0], made[1]


def _same(cached: Decider, plain: Decider, intent: OrderIntent) -> dict[str, object]:
    a, b = cached.decide(intent), plain.decide(intent)
    for body in (a, b):
        body.pop("decision_id")
    assert a == b
    return a


def test_reused_evaluations_answer_exactly_as_fresh_ones() -> None:
    policy = Policy(
        order_rate=RateLimit(max_orders=3, window_s=10.0),
        max_order_notional=Decimal("5000"),
        max_status_age_s=10.0,
        max_snapshot_age_s=15.0,
    )
    switches: list[tuple[KillSwitch, ...]] = [()]
    store, clock, cached, plain = _twins(policy, switches)
    small = replace(ENTRY, price=Decimal("100"))
    odd = replace(small, quantity=Decimal("0.0100"))  # equal amount, written differently
    seen = []
    for intent in (small, small, HUGE, odd, OrderIntent("a"), small, small):  # rate fills up
        seen.append(_same(cached, plain, intent))
    assert ["ORDER_RATE_LIMIT"] in [codes(b) for b in seen]
    assert len(cached._evaluations) == 4  # small (and odd: its own entry), HUGE, bare
    clock.advance(11)  # rate window over, status stale (10 s): the gate answers
    assert codes(_same(cached, plain, small)) == ["STALE_DATA"]
    store.put_status("a", status(), clock.now)  # fresh again, a new state object
    assert _same(cached, plain, small)["allowed"] is True
    store.put_status(
        "a",
        status(indicators=(QuantIndicator("BTCUSDT", "UFR", Decimal(1), Decimal(1), True, None),)),
        clock.now,
    )
    assert codes(_same(cached, plain, small)) == ["SYMBOL_LOCKED"]
    store.put_status("a", status(), clock.now)
    store.put_snapshot("a", snapshot(available="10000"), clock.now)
    halt = KillSwitch("ks-1", KillSwitchScope.GLOBAL, KillSwitchMode.HALT, "ops", "drill", 1)
    switches[0] = (halt,)
    assert codes(_same(cached, plain, small)) == ["KILL_SWITCH"]
    switches[0] = ()
    assert _same(cached, plain, small)["allowed"] is True
    tight = replace(policy, max_order_notional=Decimal("0.5"), order_rate=None)
    cached.set_policy("a", tight)
    plain.set_policy("a", tight)
    assert codes(_same(cached, plain, small)) == ["ORDER_NOTIONAL_LIMIT"]
    clock.advance(9.9)  # status 9.9 s old: still fresh, the reused answer stands
    assert codes(_same(cached, plain, small)) == ["ORDER_NOTIONAL_LIMIT"]
    clock.advance(0.2)
    assert codes(_same(cached, plain, small)) == ["STALE_DATA"]


def test_reused_evaluations_are_bounded() -> None:
    _, _, cached, _ = _twins(Policy(), [()])
    cached._cache_size = 3
    for i in range(10):
        cached.decide(replace(ENTRY, quantity=Decimal(i + 1) / 100))
        assert len(cached._evaluations) <= 3
