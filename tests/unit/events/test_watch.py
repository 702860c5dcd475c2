"""Event sources: store changes, kill-switch changes, and the time-driven watcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from app.domain import (
    AccountSnapshot,
    AccountStatus,
    Instant,
    KillSwitchMode,
    KillSwitchScope,
    Policy,
)
from app.events.bus import EventBus
from app.events.model import StampedEvent
from app.events.watch import StateEvents, Watcher, kill_switch_event
from app.metrics import Metrics
from app.state.killswitch import KillSwitchChange, KillSwitchStore
from app.state.store import StateStore
from tests.unit.rules.builders import snapshot, status

POLICY = Policy(max_status_age_s=2.0, max_snapshot_age_s=3.0)
START = Instant(wall_ms=1_763_712_000_000, mono=100.0)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> Instant:
        return self.now

    def wall_ms(self) -> int:
        return self.now.wall_ms

    def advance(self, seconds: float) -> None:
        self.now = Instant(
            wall_ms=self.now.wall_ms + round(seconds * 1000), mono=self.now.mono + seconds
        )


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.store = StateStore([("a", "generic-v2")])
        self.bus = EventBus(Metrics(CollectorRegistry(), "test"))
        self.seen: list[StampedEvent] = []
        self.bus.add_sink(self.seen.append)
        self.kill_switches = KillSwitchStore(tmp_path, clock=self.clock.wall_ms)
        self.kill_switches.subscribe(self.announce)
        self.store.subscribe(StateEvents(self.bus, lambda _: POLICY))
        self.watcher = Watcher(
            self.store, lambda _: POLICY, self.bus, self.kill_switches, clock=self.clock
        )

    def announce(self, change: KillSwitchChange) -> None:
        self.bus.publish(kill_switch_event(change))

    def types(self) -> list[str]:
        return [e.event.type.value for e in self.seen]

    def refresh(self, account_status: AccountStatus | None = None) -> None:
        self.store.put_status("a", account_status or status(), self.clock())
        self.store.put_snapshot("a", snapshot(), self.clock())

    def refresh_snapshot(self, account_snapshot: AccountSnapshot | None = None) -> None:
        self.store.put_snapshot("a", account_snapshot or snapshot(), self.clock())


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    made = Rig(tmp_path)
    await made.kill_switches.open()
    yield made
    await made.kill_switches.close()


async def test_data_fresh_then_stale_then_fresh_again(rig: Rig) -> None:
    rig.refresh()
    await rig.watcher.tick()
    assert rig.types() == ["DATA_FRESH"]

    rig.clock.advance(1.0)
    await rig.watcher.tick()
    assert rig.types() == ["DATA_FRESH"]  # no repeat while nothing changes

    rig.clock.advance(1.5)  # status now 2.5 s old, over its 2 s max
    await rig.watcher.tick()
    assert rig.types() == ["DATA_FRESH", "DATA_STALE"]
    assert rig.seen[-1].event.data["status_age_ms"] == 2500
    assert rig.seen[-1].event.data["max_status_age_ms"] == 2000

    rig.refresh()
    await rig.watcher.tick()
    assert rig.types() == ["DATA_FRESH", "DATA_STALE", "DATA_FRESH"]


async def test_an_account_that_never_gets_data_turns_stale_after_the_grace(rig: Rig) -> None:
    await rig.watcher.tick()
    rig.clock.advance(2.9)
    await rig.watcher.tick()
    assert rig.types() == []  # the longest max age (3 s) has not passed yet
    rig.clock.advance(0.2)
    await rig.watcher.tick()
    assert rig.types() == ["DATA_STALE"]
    assert rig.seen[0].event.data["status_age_ms"] is None


async def test_store_changes_become_events(rig: Rig) -> None:
    rig.refresh()
    rig.refresh(status("RESTRICTED"))
    rig.refresh_snapshot()
    assert rig.types() == ["TRADING_STATUS_CHANGED"]


async def test_expired_switches_are_ended_and_announced(rig: Rig) -> None:
    switch = await rig.kill_switches.engage(
        scope=KillSwitchScope.ACCOUNT,
        mode=KillSwitchMode.REDUCE_ONLY,
        actor="alice",
        reason="cool-down",
        account="a",
        expires_at_ms=START.wall_ms + 1_000,
    )
    rig.clock.advance(0.5)
    await rig.watcher.tick()
    assert rig.kill_switches.active() == (switch,)

    rig.clock.advance(0.5)
    await rig.watcher.tick()
    assert rig.kill_switches.active() == ()
    assert rig.types() == ["KILL_SWITCH_ENGAGED", "KILL_SWITCH_RELEASED"]
    released = rig.seen[-1].event
    assert (released.account, released.data["change"]) == ("a", "expired")
    assert released.data["kill_switch"]["id"] == switch.id


async def test_a_failing_event_source_never_breaks_a_refresh(rig: Rig) -> None:
    def broken_policy(_: str) -> Policy:
        raise LookupError("boom")

    rig.store.subscribe(StateEvents(rig.bus, broken_policy))
    rig.refresh(status("RESTRICTED"))  # must not raise into the poller
    state = rig.store.get("a")
    assert state is not None
    assert state.status is not None
