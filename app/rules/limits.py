"""Limits shared by every bot of an account: order notional, position, balance left, rate.

Risk-reducing orders are never trapped by a size limit: an order that really reduces
passes the notional, position and balance checks (an exit must stay possible however big
the position has grown). The order-rate limit is the exception: the exchange counts every
order, exits included, and a rate ban would block exits too.

The price of an order is its limit price, else the position's mark price. With neither,
the size checks stay silent because ``check_margin_sufficiency`` already denies that very
order with ``PRICE_UNAVAILABLE`` (same conditions: it names a symbol and a quantity and
does not reduce), so nothing passes unchecked.
"""

from __future__ import annotations

from decimal import Decimal

from app.domain import (
    OrderIntent,
    OrderRate,
    OrderSide,
    Policy,
    PositionSide,
    RateCount,
    RateLimit,
    Reason,
    ReasonCode,
)
from app.rules.facts import Facts
from app.rules.money import (
    add_up,
    order_notional,
    required_margin,
    show_down,
    show_up,
    subtract,
)
from app.rules.pricing import order_price

_NONE: tuple[Reason, ...] = ()
_ONE = Decimal(1)


def _sized_order(facts: Facts) -> tuple[str, Decimal, Decimal] | None:
    """``(symbol, quantity, price)`` of an order the size checks apply to, else ``None``."""
    intent = facts.intent
    if facts.reduces or intent.symbol is None or intent.quantity is None:
        return None
    price = order_price(facts)
    if price is None or price <= 0:
        return None  # denied with PRICE_UNAVAILABLE by the margin check
    return intent.symbol, intent.quantity, price


def check_order_notional(facts: Facts) -> tuple[Reason, ...]:
    """Deny an order whose notional (quantity × price) is above ``max_order_notional``."""
    limit = facts.policy.max_order_notional
    sized = None if limit is None else _sized_order(facts)
    if limit is None or sized is None:
        return _NONE
    symbol, quantity, price = sized
    notional = order_notional(quantity, price)
    if notional <= limit:
        return _NONE
    shown = show_up(notional)
    asset = facts.snapshot.asset
    return (
        Reason(
            ReasonCode.ORDER_NOTIONAL_LIMIT,
            f"order notional {shown} {asset} ({quantity} {symbol} × {price}) is above the "
            f"account's limit of {limit} {asset} per order",
            limit=str(limit),
            observed=shown,
        ),
    )


def check_position_limit(facts: Facts) -> tuple[Reason, ...]:
    """Deny an order after which the position on its side would exceed
    ``max_position_notional`` (position quantity + order quantity, × the order's price).

    A BUY grows the LONG side and a SELL the SHORT side. In one-way mode a BUY that is not
    reduce-only may instead shrink a SHORT; counting it as growth overstates the position,
    never understates it (fail closed). Exits should be sent reduce-only, and those pass.
    """
    limit = facts.policy.max_position_notional
    intent = facts.intent
    sized = None if limit is None or intent.side is None else _sized_order(facts)
    if limit is None or sized is None:
        return _NONE
    symbol, quantity, price = sized
    side = PositionSide.LONG if intent.side is OrderSide.BUY else PositionSide.SHORT
    held = facts.snapshot.position(symbol, side)
    after = quantity if held is None else add_up(quantity, held.quantity)
    notional = order_notional(after, price)
    if notional <= limit:
        return _NONE
    shown = show_up(notional)
    asset = facts.snapshot.asset
    return (
        Reason(
            ReasonCode.POSITION_LIMIT,
            f"{symbol} {side.value} position after the order would be {after} × {price} = "
            f"{shown} {asset}, above the account's limit of {limit} {asset} per symbol",
            limit=str(limit),
            observed=shown,
        ),
    )


def check_min_available(facts: Facts) -> tuple[Reason, ...]:
    """Deny an order that fits the available balance but leaves less than
    ``min_available_after_order`` (``INSUFFICIENT_MARGIN``).

    An order that does not fit at all is already denied by the margin check; this one
    stays silent then, so a decision carries one ``INSUFFICIENT_MARGIN`` at most.
    """
    minimum = facts.policy.min_available_after_order
    sized = None if minimum is None else _sized_order(facts)
    if minimum is None or sized is None:
        return _NONE
    symbol, quantity, price = sized
    snapshot = facts.snapshot
    leverage = max(snapshot.leverage_for(symbol) or facts.policy.default_leverage, _ONE)
    required = required_margin(quantity, price, leverage)
    available = snapshot.available_balance
    if required > available:
        return _NONE  # reported by check_margin_sufficiency
    left = subtract(available, required)
    if left >= minimum:
        return _NONE
    shown_left = show_down(left)
    return (
        Reason(
            ReasonCode.INSUFFICIENT_MARGIN,
            f"order needs {show_up(required)} {snapshot.asset} initial margin and would leave "
            f"{shown_left} available, below the account's minimum of {minimum}",
            limit=str(minimum),
            observed=shown_left,
        ),
    )


def _rate_reason(what: str, limit: RateLimit, count: RateCount) -> Reason:
    window = f"{limit.window_s:g} s"
    return Reason(
        ReasonCode.ORDER_RATE_LIMIT,
        f"{what} already had {count.observed} allowed orders in the last {window} "
        f"(limit {limit.max_orders} per {window}, shared by every bot of the account)",
        retry_after_ms=count.retry_after_ms,
        limit=str(limit.max_orders),
        observed=str(count.observed),
    )


def check_order_rate(facts: Facts) -> tuple[Reason, ...]:
    """Deny an order when the account's (or the symbol's) window of allowed orders is full.

    Counts come from the guard's shared counter (``facts.rate``); only allowed orders are
    counted, so a denied order costs nothing. Bare "may it trade" questions are not orders
    and are neither counted nor limited.
    """
    return order_rate_reasons(facts.intent, facts.policy, facts.rate)


def order_rate_reasons(
    intent: OrderIntent, policy: Policy, rate: OrderRate | None
) -> tuple[Reason, ...]:
    """``check_order_rate`` on its own inputs (the decider re-applies it to a cached
    evaluation: it is the last check, and the only one that reads the rate counts)."""
    if rate is None or intent.side is None:
        return _NONE
    reasons: list[Reason] = []
    if policy.order_rate and rate.account and rate.account.observed >= policy.order_rate.max_orders:
        reasons.append(_rate_reason(f"account {intent.account}", policy.order_rate, rate.account))
    symbol_limit = policy.symbol_order_rate
    if symbol_limit and rate.symbol and rate.symbol.observed >= symbol_limit.max_orders:
        reasons.append(_rate_reason(f"{intent.symbol} on this account", symbol_limit, rate.symbol))
    return tuple(reasons)


def exchange_rate_reasons(
    account: str, full: tuple[tuple[RateLimit, RateCount], ...]
) -> tuple[Reason, ...]:
    """``EXCHANGE_ORDER_RATE`` for each of the exchange's per-account order limits whose
    window of allowed orders is full (the exchange would answer -1015)."""
    return tuple(
        Reason(
            ReasonCode.EXCHANGE_ORDER_RATE,
            f"account {account} already had {count.observed} allowed orders in the last "
            f"{limit.window_s:g} s: the exchange's limit is {limit.max_orders} per "
            f"{limit.window_s:g} s per account (every bot of the account together)",
            retry_after_ms=count.retry_after_ms,
            limit=str(limit.max_orders),
            observed=str(count.observed),
        )
        for limit, count in full
    )
