"""``evaluate()``: gates, then an ordered sequence of checks, then advice.

Adding a check (kill switch, notional, position or rate limits) means writing a
``(Facts) -> tuple[Reason, ...]`` function and placing it in ``CHECKS``; the order of
``CHECKS`` is the order of reasons in every decision.
"""

from __future__ import annotations

from collections.abc import Callable

from app.domain import AccountState, Decision, Instant, OrderIntent, Policy, Reason
from app.rules.checks import (
    check_can_trade,
    check_futures_enabled,
    check_margin_ratio,
    check_margin_sufficiency,
    check_reduce_only,
    check_trading_status,
)
from app.rules.facts import Facts, build_facts
from app.rules.freshness import missing_data, stale_data
from app.rules.quant import check_quant_locks, quant_warnings

#: A deny check: the reasons it finds, or an empty tuple.
Check = Callable[[Facts], tuple[Reason, ...]]

#: Deny checks in reporting order. Every applicable reason is collected, not just the first.
CHECKS: tuple[Check, ...] = (
    check_trading_status,
    check_can_trade,
    check_futures_enabled,
    check_quant_locks,
    check_margin_ratio,
    check_reduce_only,
    check_margin_sufficiency,
)

#: Advice producers: their reasons go to ``Decision.warnings`` and never affect ``allowed``.
ADVISORS: tuple[Check, ...] = (quant_warnings,)


def evaluate(
    intent: OrderIntent, state: AccountState | None, policy: Policy, now: Instant
) -> Decision:
    """Decide whether ``intent`` may be placed now, and why not.

    Pure and fast: reads only its arguments (``now`` is the caller's clock reading).
    Missing data denies with ``NO_DATA`` alone and stale data with ``STALE_DATA`` alone;
    otherwise every reason from ``CHECKS`` is collected in order, and ``allowed`` is true
    exactly when there is none. Warnings are advice and never change ``allowed``.
    """
    if state is None or state.status is None or state.snapshot is None:
        return Decision(allowed=False, reasons=(missing_data(state, intent.account),))
    status, snapshot = state.status, state.snapshot
    stale = stale_data(status, snapshot, state.last_error, policy, now)
    if stale:
        return Decision(allowed=False, reasons=stale)

    facts = build_facts(intent, status.value, snapshot.value, policy, now)
    reasons: list[Reason] = []
    for check in CHECKS:
        found = check(facts)
        if found:
            reasons.extend(found)
    warnings: tuple[Reason, ...] = ()
    for advise in ADVISORS:
        advice = advise(facts)
        if advice:
            warnings += advice
    return Decision(allowed=not reasons, reasons=tuple(reasons), warnings=warnings)
