"""Where events come from: state-store changes, kill-switch changes, and a periodic watcher.

``StateEvents`` listens to the state store (every refresh) and publishes what ``diff`` finds.
``kill_switch_event`` turns a committed kill-switch change into an event. ``Watcher`` runs
every ``interval_s`` in the lifespan for what time alone changes: an account's data turning
stale or fresh again, and kill switches reaching their expiry (ended, audited, announced).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import structlog

from app.domain import AccountState, Instant, Policy
from app.events.bus import EventBus
from app.events.diff import diff, freshness_data, is_fresh
from app.events.model import Event, EventType
from app.state.killswitch import KillSwitchChange, switch_dict
from app.state.ports import KillSwitches
from app.state.store import StateStore

log = structlog.get_logger("app.events")

PolicyFor = Callable[[str], Policy]


class Publisher(Protocol):
    """Where the watcher's events go: the bus (embedded), the fleet's stream (fleet mode)."""

    def publish(self, event: Event) -> object: ...


class StateEvents:
    """State-store listener: publishes the events between an account's old and new state."""

    def __init__(self, bus: EventBus, policy_for: PolicyFor) -> None:
        self._bus = bus
        self._policy_for = policy_for

    def __call__(self, old: AccountState, new: AccountState) -> None:
        # Store listeners run inside the pollers' success path, outside their error handling:
        # an exception here would end the poller. This is a boundary, so catch everything.
        try:
            fraction = self._policy_for(new.account).quant_warning_fraction
            for event in diff(old, new, warning_fraction=fraction):
                self._bus.publish(event)
        except Exception:
            log.exception("status event detection failed", account=new.account)


def kill_switch_event(change: KillSwitchChange) -> Event:
    """``KILL_SWITCH_ENGAGED`` / ``KILL_SWITCH_RELEASED`` (released or expired)."""
    switch = change.switch
    engaged = change.kind == "engaged"
    kind = EventType.KILL_SWITCH_ENGAGED if engaged else EventType.KILL_SWITCH_RELEASED
    data = {
        "kill_switch": switch_dict(switch),
        "change": change.kind,
        "actor": change.actor,
        "reason": change.reason,
    }
    return Event(kind, switch.account, switch.symbol, data)


class Watcher:
    """Periodic, time-driven events. ``run`` returns only when cancelled."""

    def __init__(
        self,
        store: StateStore,
        policy_for: PolicyFor,
        bus: Publisher,
        kill_switches: KillSwitches,
        *,
        interval_s: float = 0.5,
        clock: Callable[[], Instant] = Instant.now,
    ) -> None:
        self._store = store
        self._policy_for = policy_for
        self._bus = bus
        self._kill_switches = kill_switches
        self.interval_s = interval_s
        self._clock = clock
        #: Last announced freshness per account; absent until first known.
        self._fresh: dict[str, bool] = {}
        self._started_mono: float | None = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop boundary: the watcher must outlive a bug
                log.exception("event watcher tick failed")

    async def tick(self) -> None:
        now = self._clock()
        if self._started_mono is None:
            self._started_mono = now.mono
        for state in self._store.all():
            self._check_freshness(state, now)
        if self._kill_switches.due_for_expiry(now.wall_ms):
            await self._kill_switches.expire_due()

    def _check_freshness(self, state: AccountState, now: Instant) -> None:
        policy = self._policy_for(state.account)
        fresh = is_fresh(state, policy, now)
        previous = self._fresh.get(state.account)
        if previous is None and not fresh:
            # After a start, "not fresh yet" becomes "stale" only once the data could have
            # arrived: the longest max age has passed without it.
            grace = max(policy.max_status_age_s, policy.max_snapshot_age_s)
            if self._started_mono is not None and now.mono - self._started_mono < grace:
                return
        if previous == fresh:
            return
        self._fresh[state.account] = fresh
        kind = EventType.DATA_FRESH if fresh else EventType.DATA_STALE
        self._bus.publish(Event(kind, state.account, None, freshness_data(state, policy, now)))
