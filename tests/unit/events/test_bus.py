"""The event bus: stamps, logs, counts and fans out without ever waiting on a consumer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from app.events.bus import (
    EventBus,
    InvalidEventId,
    Subscription,
    TooManySubscribers,
    parse_event_id,
)
from app.events.model import Event, EventType, StampedEvent
from app.metrics import Metrics

STALE_A = Event(EventType.DATA_STALE, "a", None, {"status_age_ms": 1})
LOCK_B = Event(EventType.SYMBOL_LOCKED, "b", "BTCUSDT", {})
GLOBAL = Event(EventType.KILL_SWITCH_ENGAGED, None, None, {"mode": "HALT"})


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry(), "test")


def bus_with(metrics: Metrics, **kwargs: Any) -> EventBus:
    return EventBus(metrics, clock=lambda: 1_763_712_000_000, **kwargs)


def test_published_event_has_the_public_json_shape(metrics: Metrics) -> None:
    bus = bus_with(metrics)
    plain = bus.publish(STALE_A)
    with_symbol = bus.publish(LOCK_B)

    assert json.loads(plain.body) == {
        "id": plain.id,
        "type": "DATA_STALE",
        "account": "a",
        "time_ms": 1_763_712_000_000,
        "data": {"status_age_ms": 1},
    }
    assert json.loads(with_symbol.body)["symbol"] == "BTCUSDT"
    assert plain.id != with_symbol.id
    registry = metrics.registry
    assert registry.get_sample_value("pretrade_guard_events_total", {"type": "DATA_STALE"}) == 1
    assert registry.get_sample_value("pretrade_guard_events_total", {"type": "DATA_FRESH"}) == 0


async def test_subscribers_get_their_account_and_global_events(metrics: Metrics) -> None:
    bus = bus_with(metrics)
    only_a = bus.subscribe("a")
    everything = bus.subscribe(None)
    for event in (STALE_A, LOCK_B, GLOBAL):
        bus.publish(event)

    async def drain(sub: Subscription) -> list[str]:
        got: list[str] = []
        while True:
            item = await sub.next(0.01)
            if not isinstance(item, StampedEvent):
                return got
            got.append(item.event.type.value)

    assert await drain(only_a) == ["DATA_STALE", "KILL_SWITCH_ENGAGED"]
    assert await drain(everything) == ["DATA_STALE", "SYMBOL_LOCKED", "KILL_SWITCH_ENGAGED"]
    assert metrics.registry.get_sample_value("pretrade_guard_sse_subscribers") == 2


async def test_a_slow_subscriber_is_dropped_and_others_keep_going(metrics: Metrics) -> None:
    bus = bus_with(metrics, subscriber_queue=2)
    slow = bus.subscribe(None)
    healthy = bus.subscribe(None)
    for _ in range(2):
        bus.publish(STALE_A)
        await healthy.next(0.01)
    bus.publish(STALE_A)  # the slow one has not taken the first: it is out of the log

    assert await slow.next(0.01) is None  # the stream ends as soon as it reads
    assert slow.overflowed
    assert isinstance(await healthy.next(0.01), StampedEvent)
    assert not healthy.overflowed
    dropped = {"reason": "overflow"}
    assert metrics.registry.get_sample_value("pretrade_guard_sse_dropped_total", dropped) == 1


async def test_a_burst_reaches_each_of_many_subscribers_in_one_batch(metrics: Metrics) -> None:
    """Publishing costs the same whatever the number of subscribers: they are woken once
    for a burst and each takes the whole burst at once."""
    bus = bus_with(metrics, subscriber_queue=256, max_subscribers=2000, flush_s=0.01)
    subs = [bus.subscribe(None) for _ in range(1000)]
    waiting = [asyncio.create_task(sub.next_batch(5)) for sub in subs]
    await asyncio.sleep(0)  # every subscriber is waiting now
    for _ in range(100):
        bus.publish(STALE_A)
    batches = await asyncio.gather(*waiting)
    assert all(isinstance(b, list) and len(b) == 100 for b in batches)


async def test_subscribers_are_capped(metrics: Metrics) -> None:
    bus = bus_with(metrics, max_subscribers=2)
    first = bus.subscribe(None)
    bus.subscribe("a")
    assert bus.full
    with pytest.raises(TooManySubscribers):
        bus.subscribe(None)
    assert metrics.registry.get_sample_value("pretrade_guard_sse_refused_total") == 1
    bus.unsubscribe(first)
    assert not bus.full


def test_sinks_see_every_event(metrics: Metrics) -> None:
    bus = bus_with(metrics)
    seen: list[StampedEvent] = []
    bus.add_sink(seen.append)
    stamped = bus.publish(GLOBAL)
    assert seen == [stamped]


def test_replay_after_a_known_id_only(metrics: Metrics) -> None:
    bus = bus_with(metrics, replay=3)
    ids = [bus.publish(event).id for event in (STALE_A, LOCK_B, GLOBAL, STALE_A)]

    assert [e.id for e in bus.replay_after(ids[1], None)] == ids[2:]
    assert [e.id for e in bus.replay_after(ids[1], "a")] == ids[2:]  # global + a's
    assert [e.id for e in bus.replay_after(ids[1], "b")] == [ids[2]]
    assert bus.replay_after(None, None) == []
    assert bus.replay_after("0123abcd-1", None) == []  # another process's id
    with pytest.raises(InvalidEventId):  # answered with 400 by /events
        bus.replay_after("nonsense", None)


async def test_close_ends_every_stream_and_later_ones_at_once(metrics: Metrics) -> None:
    bus = bus_with(metrics)
    open_sub = bus.subscribe(None)
    bus.close()
    assert await open_sub.next(0.01) is None
    assert await bus.subscribe("a").next(0.01) is None


async def test_an_idle_subscription_times_out_with_false(metrics: Metrics) -> None:
    assert await bus_with(metrics).subscribe(None).next(0.01) is False


@pytest.mark.parametrize(
    "text", ["abcd-٣", "abcd-²", "abcd-" + "9" * 5000, "abcd-", "-12", "abcd-1.5", "a b-1"]
)
def test_a_malformed_last_event_id_is_refused_not_a_value_error(
    metrics: Metrics, text: str
) -> None:
    bus = bus_with(metrics)
    with pytest.raises(InvalidEventId):
        bus.replay_after(text, None)


def test_a_blank_or_foreign_last_event_id_replays_nothing(metrics: Metrics) -> None:
    bus = bus_with(metrics)
    bus.publish(STALE_A)
    assert bus.replay_after(None, None) == []
    assert bus.replay_after("  ", None) == []
    assert bus.replay_after("0123abcd-0", None) == []  # an id of an earlier run
    first = bus.publish(LOCK_B)
    assert parse_event_id(first.id) is not None
    assert [e.id for e in bus.replay_after(f"{first.id.split('-')[0]}-0", None)] != []
