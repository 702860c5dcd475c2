"""Quantitative-rule locks (deny) and near-trigger warnings (advice).

Binance locks a symbol, or the whole account (scope ``ACCOUNT``, e.g. TMV), when an
order-behaviour indicator reaches its trigger; while locked it still accepts orders that
only reduce a position (exchanges.md §1.6.7), so orders that really reduce pass here too.
"""

from __future__ import annotations

from app.domain import (
    ACCOUNT_SCOPE,
    Instant,
    QuantIndicator,
    Reason,
    ReasonCode,
    WarningCode,
)
from app.rules.facts import Facts

_NONE: tuple[Reason, ...] = ()


def _describe(indicator: QuantIndicator) -> str:
    return f"{indicator.indicator} (value {indicator.value}, trigger {indicator.trigger_value})"


def _lock_reason(code: ReasonCode, what: str, locks: list[QuantIndicator], now: Instant) -> Reason:
    """One reason for every lock on one scope: the scope is free only when all have lifted."""
    recover_ms: int | None = 0
    for lock in locks:
        planned = lock.planned_recover_time_ms
        # One lock without a planned recovery makes the whole scope's recovery unknown.
        recover_ms = None if planned is None or recover_ms is None else max(recover_ms, planned)
    names = ", ".join(_describe(lock) for lock in locks)
    message = f"{what} locked by quantitative trading rule {names}"
    if recover_ms is None:
        retry_after_ms = None
        message += "; no planned recovery time"
    else:
        # A planned recovery in the past does not unlock: the cached lock stands until the
        # next status refresh confirms it lifted (fail closed), so "retry now" is 0.
        retry_after_ms = max(0, recover_ms - now.wall_ms)
        message += f"; planned recovery at {recover_ms} (epoch ms)"
    single = locks[0] if len(locks) == 1 else None
    return Reason(
        code,
        message,
        retry_after_ms=retry_after_ms,
        limit=None if single is None else str(single.trigger_value),
        observed=None if single is None else str(single.value),
    )


def check_quant_locks(facts: Facts) -> tuple[Reason, ...]:
    """Deny while the account (``ACCOUNT_LOCKED``) or the order's symbol (``SYMBOL_LOCKED``)
    is locked by a quantitative rule; orders that really reduce pass.

    Limit and observed carry the indicator's trigger and value when a single indicator
    locks the scope; with several, the message lists them all.
    """
    indicators = facts.status.indicators
    if not indicators or facts.reduces:
        return _NONE
    symbol = facts.intent.symbol
    account_locks: list[QuantIndicator] = []
    symbol_locks: list[QuantIndicator] = []
    for indicator in indicators:
        if not indicator.is_locked:
            continue
        if indicator.scope == ACCOUNT_SCOPE:
            account_locks.append(indicator)
        elif indicator.scope == symbol:
            symbol_locks.append(indicator)
    reasons: list[Reason] = []
    if account_locks:
        reasons.append(_lock_reason(ReasonCode.ACCOUNT_LOCKED, "account", account_locks, facts.now))
    if symbol_locks:
        reasons.append(_lock_reason(ReasonCode.SYMBOL_LOCKED, f"{symbol}", symbol_locks, facts.now))
    return tuple(reasons)


def quant_warnings(facts: Facts) -> tuple[Reason, ...]:
    """Warn about unlocked indicators (account or the order's symbol) near their trigger.

    Near means ``value / trigger >= policy.quant_warning_fraction``; it is compared as
    ``value >= trigger × fraction`` to avoid a division. Advice only, never a deny.
    """
    indicators = facts.status.indicators
    if not indicators:
        return _NONE
    symbol = facts.intent.symbol
    fraction = facts.policy.quant_warning_fraction
    warnings: list[Reason] = []
    for indicator in indicators:
        if indicator.is_locked or (indicator.scope != ACCOUNT_SCOPE and indicator.scope != symbol):
            continue
        trigger = indicator.trigger_value
        if trigger > 0 and indicator.value >= trigger * fraction:
            scope = "account" if indicator.scope == ACCOUNT_SCOPE else indicator.scope
            warnings.append(
                Reason(
                    WarningCode.QUANT_RULE_NEAR_TRIGGER,
                    f"quantitative rule {indicator.indicator} on {scope} is at "
                    f"{indicator.value}, near its trigger {trigger}; the exchange locks "
                    "trading when it is reached",
                    limit=str(trigger),
                    observed=str(indicator.value),
                ),
            )
    return tuple(warnings)
