"""``evaluate()``: gates, then an ordered sequence of checks, then advice.

Adding a check means writing a ``(Facts) -> tuple[Reason, ...]`` function and placing it in
``CHECKS``; the order of ``CHECKS`` is the order of reasons in every decision.

Precedence, from the top:

1. ``HALT`` kill switches: reported first in every answer, even when the data gates deny,
   because they hold whatever the exchange says.
2. The data gates (``NO_DATA``, ``STALE_DATA``): without fresh data no other check runs.
3. ``CHECKS`` in order: operator switches (``REDUCE_ONLY`` judged against the position),
   then what the exchange says about the account, then what it would say about the order
   itself (market rules, position mode, filters), then margin, then the account's own
   limits and the position limit at leverage, then the order rate (last, as it is the only
   check that may clear by itself within seconds).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import localcontext

from app.domain import (
    AccountState,
    Decision,
    Instant,
    KillSwitch,
    OrderIntent,
    OrderRate,
    Policy,
    Reason,
)
from app.markets.store import MarketView
from app.rules.checks import (
    check_can_trade,
    check_futures_enabled,
    check_margin_ratio,
    check_margin_sufficiency,
    check_margin_trading,
    check_reduce_only,
    check_trading_status,
)
from app.rules.facts import Facts, build_facts
from app.rules.freshness import missing_data, stale_data
from app.rules.killswitch import check_kill_switch, kill_switch_reasons
from app.rules.limits import (
    check_min_available,
    check_order_notional,
    check_order_rate,
    check_position_limit,
)
from app.rules.modes import check_position_mode
from app.rules.money import RULES
from app.rules.orders import (
    check_leverage_limit,
    check_market_data,
    check_min_notional,
    check_open_orders,
    check_price_band,
    check_price_filter,
    check_quantity,
    check_symbol,
)
from app.rules.quant import check_quant_locks, quant_warnings

#: A deny check: the reasons it finds, or an empty tuple.
Check = Callable[[Facts], tuple[Reason, ...]]

#: Deny checks in reporting order. Every applicable reason is collected, not just the first.
CHECKS: tuple[Check, ...] = (
    check_kill_switch,
    check_trading_status,
    check_can_trade,
    check_futures_enabled,
    check_margin_trading,
    check_quant_locks,
    check_market_data,
    check_symbol,
    check_position_mode,
    check_price_filter,
    check_quantity,
    check_min_notional,
    check_price_band,
    check_open_orders,
    check_margin_ratio,
    check_reduce_only,
    check_margin_sufficiency,
    check_min_available,
    check_order_notional,
    check_position_limit,
    check_leverage_limit,
    check_order_rate,
)

#: Advice producers: their reasons go to ``Decision.warnings`` and never affect ``allowed``.
ADVISORS: tuple[Check, ...] = (quant_warnings,)


def evaluate(
    intent: OrderIntent,
    state: AccountState | None,
    policy: Policy,
    now: Instant,
    *,
    switches: tuple[KillSwitch, ...] = (),
    rate: OrderRate | None = None,
    market: MarketView | None = None,
) -> Decision:
    """Decide whether ``intent`` may be placed now, and why not.

    Pure and fast: reads only its arguments (``now`` is the caller's clock reading).
    ``switches`` are the kill switches that may concern the account and ``rate`` the
    allowed orders already counted in the rate windows (both supplied by the caller);
    ``market`` the account's market rules and mark prices (``None``: none apply).
    Missing data denies with ``NO_DATA`` and stale data with ``STALE_DATA``, preceded only
    by ``HALT`` kill switches; otherwise every reason from ``CHECKS`` is collected in order,
    and ``allowed`` is true exactly when there is none. Warnings are advice and never
    change ``allowed``. No input makes it raise: the checks run in ``money.RULES``, where an
    amount that is not finite fails the comparison that would let the order through.
    """
    with localcontext(RULES):
        return _evaluate(intent, state, policy, now, switches, rate, market)


def _evaluate(
    intent: OrderIntent,
    state: AccountState | None,
    policy: Policy,
    now: Instant,
    switches: tuple[KillSwitch, ...],
    rate: OrderRate | None,
    market: MarketView | None,
) -> Decision:
    if state is None or state.status is None or state.snapshot is None:
        halts = kill_switch_reasons(intent, switches, now, reduces=False, halts_only=True)
        return Decision(allowed=False, reasons=(*halts, missing_data(state, intent.account)))
    status, snapshot = state.status, state.snapshot
    stale = stale_data(status, snapshot, state, policy, now)
    if stale:
        halts = kill_switch_reasons(intent, switches, now, reduces=False, halts_only=True)
        return Decision(allowed=False, reasons=(*halts, *stale))

    facts = build_facts(intent, status.value, snapshot.value, policy, now, switches, rate, market)
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
