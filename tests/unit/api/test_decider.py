"""The decision path: kill switches and rate counts reach the rules; only allowed orders count."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import orjson
import pytest
from prometheus_client import CollectorRegistry

from app.api.decider import Decider
from app.decision_log import DecisionLog, DecisionLogWriter
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


class Twin:
    """A decider whose decision lines are kept (batched writer, flushed on demand)."""

    def __init__(
        self,
        store: StateStore,
        clock: Clock,
        policy: Policy,
        switches: list[tuple[KillSwitch, ...]],
        cache_size: int,
    ) -> None:
        metrics = Metrics(CollectorRegistry(), "test")
        self.chunks: list[bytes] = []
        self.writer = DecisionLogWriter(
            self.chunks.append, metrics.decision_log_dropped, interval_s=60
        )
        self.decider = Decider(
            store,
            {"a": policy},
            metrics,
            decision_log=DecisionLog("all", self.writer),
            clock=clock,
            switches=lambda _: switches[0],
            cache_size=cache_size,
        )

    def lines(self) -> list[dict[str, object]]:
        """Decision lines written since the last call, without id and time."""
        self.writer.flush()
        text = b"".join(self.chunks).decode()
        self.chunks.clear()
        found = [json.loads(line) for line in text.splitlines()]
        for line in found:
            del line["decision_id"], line["timestamp"]
        return found


def _twins(
    policy: Policy, switches: list[tuple[KillSwitch, ...]]
) -> tuple[StateStore, Clock, Decider, Decider]:
    """Two deciders on one store and clock: one reusing evaluations, one never."""
    store, clock, twins = _triplets(policy, switches)
    return store, clock, twins[1].decider, twins[2].decider


def _triplets(
    policy: Policy, switches: list[tuple[KillSwitch, ...]]
) -> tuple[StateStore, Clock, tuple[Twin, Twin, Twin]]:
    """Three deciders on one store and clock: two reusing evaluations (one asked for JSON,
    one for the body), one never reusing."""
    store = StateStore([("a", "generic-v2")])
    store.put_status("a", status(), NOW)
    store.put_snapshot("a", snapshot(available="10000"), NOW)
    clock = Clock()
    made = tuple(Twin(store, clock, policy, switches, size) for size in (4096, 4096, 0))
    return store, clock, (made[0], made[1], made[2])


def _same(twins: tuple[Twin, Twin, Twin], intent: OrderIntent) -> dict[str, object]:
    """The three answer alike: the JSON one byte for byte (its id aside), the log lines too."""
    raw = twins[0].decider.decide_json(intent)
    as_json = orjson.loads(raw)
    body, plain = twins[1].decider.decide(intent), twins[2].decider.decide(intent)
    plain_with_id = {**plain, "decision_id": as_json["decision_id"]}
    assert raw == orjson.dumps(plain_with_id)
    for answer in (body, plain):
        answer.pop("decision_id")
    assert body == plain
    assert twins[0].lines() == twins[1].lines() == twins[2].lines()
    return plain


def test_reused_evaluations_answer_exactly_as_fresh_ones() -> None:
    policy = Policy(
        order_rate=RateLimit(max_orders=3, window_s=10.0),
        max_order_notional=Decimal("5000"),
        max_status_age_s=10.0,
        max_snapshot_age_s=15.0,
    )
    switches: list[tuple[KillSwitch, ...]] = [()]
    store, clock, twins = _triplets(policy, switches)
    cached = twins[1].decider
    small = replace(ENTRY, price=Decimal("100"))
    odd = replace(small, quantity=Decimal("0.0100"))  # equal amount, written differently
    seen = []
    for intent in (small, small, HUGE, odd, OrderIntent("a"), small, small):  # rate fills up
        seen.append(_same(twins, intent))
    assert ["ORDER_RATE_LIMIT"] in [codes(b) for b in seen]
    assert (
        len(cached._evaluations) == len(twins[0].decider._evaluations) == 4
    )  # small (and odd: its own entry), HUGE, bare
    clock.advance(11)  # rate window over, status stale (10 s): the gate answers
    assert codes(_same(twins, small)) == ["STALE_DATA"]
    store.put_status("a", status(), clock.now)  # fresh again, a new state object
    assert _same(twins, small)["allowed"] is True
    store.put_status(
        "a",
        status(indicators=(QuantIndicator("BTCUSDT", "UFR", Decimal(1), Decimal(1), True, None),)),
        clock.now,
    )
    assert codes(_same(twins, small)) == ["SYMBOL_LOCKED"]
    store.put_status("a", status(), clock.now)
    store.put_snapshot("a", snapshot(available="10000"), clock.now)
    halt = KillSwitch("ks-1", KillSwitchScope.GLOBAL, KillSwitchMode.HALT, "ops", "drill", 1)
    switches[0] = (halt,)
    assert codes(_same(twins, small)) == ["KILL_SWITCH"]
    switches[0] = ()
    assert _same(twins, small)["allowed"] is True
    tight = replace(policy, max_order_notional=Decimal("0.5"), order_rate=None)
    for twin in twins:
        twin.decider.set_policy("a", tight)
    assert codes(_same(twins, small)) == ["ORDER_NOTIONAL_LIMIT"]
    clock.advance(9.9)  # status 9.9 s old: still fresh, the reused answer stands
    assert codes(_same(twins, small)) == ["ORDER_NOTIONAL_LIMIT"]
    clock.advance(0.2)
    assert codes(_same(twins, small)) == ["STALE_DATA"]


def test_reused_evaluations_are_bounded() -> None:
    _, _, cached, _ = _twins(Policy(), [()])
    cached._cache_size = 3
    for i in range(10):
        cached.decide(replace(ENTRY, quantity=Decimal(i + 1) / 100))
        assert len(cached._evaluations) <= 3


def test_a_batch_answers_as_single_calls_at_one_instant() -> None:
    switches: list[tuple[KillSwitch, ...]] = [()]
    policy = Policy(order_rate=RateLimit(max_orders=3, window_s=10.0))
    _, _, twins = _triplets(policy, switches)
    intents = [ENTRY, HUGE, OrderIntent("a"), ENTRY, ENTRY, ENTRY]  # the 4th order: rate
    batch = twins[0].decider.decide_json_many([(i, None) for i in intents])
    singles = [twins[2].decider.decide(i) for i in intents]
    answers = [orjson.loads(raw) for raw in batch]
    assert [a["allowed"] for a in answers] == [True, False, True, True, True, False]
    for raw, answer, single in zip(batch, answers, singles, strict=True):
        assert raw == orjson.dumps({**single, "decision_id": answer["decision_id"]})
    assert len({a["decision_id"] for a in answers}) == len(intents)
    twins[0].writer.flush()
    raw_lines = b"".join(twins[0].chunks).splitlines()
    # Decided at one instant, logged with one timestamp: reused evaluations and the last
    # order (its rate reason makes it a fresh decision) alike.
    assert len(raw_lines) == len(intents)
    assert len({json.loads(line)["timestamp"] for line in raw_lines}) == 1
    assert twins[0].lines() == twins[2].lines()
    registry = twins[0].decider._metrics.registry
    assert registry.get_sample_value("pretrade_guard_decision_duration_seconds_count") == 6


def test_a_batch_with_an_unknown_account_decides_nothing() -> None:
    _, _, twins = _triplets(RATE_2, [()])
    guard = twins[0].decider
    with pytest.raises(UnknownAccount):
        guard.decide_json_many([(ENTRY, None), (OrderIntent("nope"), None)])
    assert twins[0].lines() == []
    assert guard.decide(ENTRY)["allowed"]  # the first order did not use the rate budget


def test_the_exchange_order_limits_are_counted_from_allowed_decisions() -> None:
    from app.domain import Observed
    from app.markets.model import MarketRules, MarkPrices, SymbolRules
    from app.markets.store import MarketView

    rules = MarketRules(
        {"BTCUSDT": SymbolRules("BTCUSDT", "TRADING")}, (RateLimit(3, 10.0), RateLimit(9, 60.0))
    )
    view = MarketView(
        "h",
        rules=Observed(rules, NOW.mono, NOW.wall_ms),
        marks=Observed(MarkPrices({"BTCUSDT": Decimal(60000)}), NOW.mono, NOW.wall_ms),
    )
    store = StateStore([("a", "binance-usdm")])
    store.put_status("a", status(), NOW)
    store.put_snapshot("a", snapshot(available="10000"), NOW)
    guard = Decider(
        store,
        {"a": Policy()},
        Metrics(CollectorRegistry(), "test"),
        decision_log="none",
        clock=lambda: NOW,
        markets=lambda _: view,
    )
    for _ in range(3):
        assert guard.decide_json(ENTRY).startswith(b'{"allowed":true')
    body = guard.decide(ENTRY)
    assert codes(body) == ["EXCHANGE_ORDER_RATE"]
    reason = body["reasons"][0]
    assert (reason["limit"], reason["observed"]) == ("3", "3")
    assert reason["retry_after_ms"] == 10_000
    # Off by policy: the bots of the account are not held to the exchange's limits.
    guard.set_policy("a", Policy(exchange_order_rate=False))
    assert guard.decide(ENTRY)["allowed"]
