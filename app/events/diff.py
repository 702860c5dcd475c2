"""``diff(old, new)``: the events between two states of one account (pure, no clock).

Only the account's *derived* state counts: trading status, ``canTrade``, the futures flag,
quantitative-rule locks per scope, and near-trigger warnings. Balances and positions change
on every snapshot and are not events; data turning stale or fresh is time-driven and comes
from ``app.events.watch``.

The first status of an account (after a start) is compared with a healthy baseline: NORMAL,
may trade, futures not disabled, no lock, no warning. So a restart announces only accounts
that are not healthy, instead of every account's status ("previous" is then ``null``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.domain import ACCOUNT_SCOPE, AccountState, AccountStatus, Instant, Policy, QuantIndicator
from app.events.model import Event, EventType


def _indicator(ind: QuantIndicator) -> dict[str, Any]:
    return {
        "indicator": ind.indicator,
        "value": str(ind.value),
        "trigger_value": str(ind.trigger_value),
        "planned_recover_time_ms": ind.planned_recover_time_ms,
    }


def _locks(status: AccountStatus | None) -> dict[str, list[QuantIndicator]]:
    locks: dict[str, list[QuantIndicator]] = {}
    for ind in status.indicators if status else ():
        if ind.is_locked:
            locks.setdefault(ind.scope, []).append(ind)
    return locks


def near_trigger(
    status: AccountStatus | None, fraction: Decimal
) -> dict[tuple[str, str], QuantIndicator]:
    """Unlocked indicators at or above ``fraction`` of their trigger, by (scope, indicator)."""
    found: dict[tuple[str, str], QuantIndicator] = {}
    for ind in status.indicators if status else ():
        trigger = ind.trigger_value
        if not ind.is_locked and trigger > 0 and ind.value >= trigger * fraction:
            found[(ind.scope, ind.indicator)] = ind
    return found


def _lock_event(account: str, scope: str, locked: list[QuantIndicator] | None) -> Event:
    is_account = scope == ACCOUNT_SCOPE
    if locked is None:
        kind = EventType.ACCOUNT_UNLOCKED if is_account else EventType.SYMBOL_UNLOCKED
        return Event(kind, account, None if is_account else scope, {})
    kind = EventType.ACCOUNT_LOCKED if is_account else EventType.SYMBOL_LOCKED
    planned = [i.planned_recover_time_ms for i in locked]
    recover = None if None in planned else max(p for p in planned if p is not None)
    data = {"indicators": [_indicator(i) for i in locked], "planned_recover_time_ms": recover}
    return Event(kind, account, None if is_account else scope, data)


def diff(old: AccountState, new: AccountState, *, warning_fraction: Decimal) -> list[Event]:
    """Events for what changed from ``old`` to ``new`` (same account), in a fixed order:
    status, canTrade, futures, locks, unlocks, warnings."""
    if new.status is None or (old.status is not None and old.status.value is new.status.value):
        return []
    before = old.status.value if old.status else None
    after = new.status.value
    account = new.account
    events: list[Event] = []

    if before is None:
        status_changed = not after.is_normal
    else:
        status_changed = before.trading_status != after.trading_status
    data: dict[str, Any]
    if status_changed:
        data = {
            "trading_status": after.trading_status,
            "previous": before.trading_status if before else None,
            "reason": after.reason,
        }
        events.append(Event(EventType.TRADING_STATUS_CHANGED, account, None, data))

    if (before.can_trade if before else True) != after.can_trade:
        data = {"can_trade": after.can_trade, "previous": before.can_trade if before else None}
        events.append(Event(EventType.CAN_TRADE_CHANGED, account, None, data))

    was_disabled = before is not None and before.futures_enabled is False
    if was_disabled != (after.futures_enabled is False):
        data = {
            "futures_enabled": after.futures_enabled,
            "previous": before.futures_enabled if before else None,
        }
        events.append(Event(EventType.FUTURES_ENABLED_CHANGED, account, None, data))

    old_locks, new_locks = _locks(before), _locks(after)
    for scope, locked in new_locks.items():
        if scope not in old_locks:
            events.append(_lock_event(account, scope, locked))
    for scope in old_locks:
        if scope not in new_locks:
            events.append(_lock_event(account, scope, None))

    old_warnings = near_trigger(before, warning_fraction)
    for (scope, _), ind in near_trigger(after, warning_fraction).items():
        if (scope, ind.indicator) in old_warnings:
            continue
        data = {"scope": scope, **_indicator(ind), "warning_fraction": str(warning_fraction)}
        del data["planned_recover_time_ms"]
        symbol = None if scope == ACCOUNT_SCOPE else scope
        events.append(Event(EventType.QUANT_RULE_NEAR_TRIGGER, account, symbol, data))
    return events


def is_fresh(state: AccountState, policy: Policy, now: Instant) -> bool:
    """Both status and snapshot present and within the policy's max ages."""
    status, snapshot = state.status, state.snapshot
    return (
        status is not None
        and snapshot is not None
        and now.mono - status.received_mono <= policy.max_status_age_s
        and now.mono - snapshot.received_mono <= policy.max_snapshot_age_s
    )


def freshness_data(state: AccountState, policy: Policy, now: Instant) -> dict[str, Any]:
    """Ages and limits for a ``DATA_STALE`` / ``DATA_FRESH`` event."""
    status, snapshot = state.status, state.snapshot
    return {
        "status_age_ms": None if status is None else int((now.mono - status.received_mono) * 1000),
        "snapshot_age_ms": (
            None if snapshot is None else int((now.mono - snapshot.received_mono) * 1000)
        ),
        "max_status_age_ms": round(policy.max_status_age_s * 1000),
        "max_snapshot_age_ms": round(policy.max_snapshot_age_s * 1000),
        "last_error": state.last_error,
        "trading_status": status.value.trading_status if status else None,
        "can_trade": status.value.can_trade if status else None,
    }
