"""The facts every check reads: one order, the fresh state behind it, and whether it reduces."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from app.domain import (
    AccountSnapshot,
    AccountStatus,
    Instant,
    KillSwitch,
    OrderIntent,
    OrderRate,
    OrderSide,
    Policy,
    Position,
    PositionSide,
)
from app.markets.model import SymbolRules
from app.markets.store import MarketView

_ZERO = Decimal(0)


class Facts(NamedTuple):
    """Inputs of the checks, resolved once per decision.

    A NamedTuple rather than a frozen dataclass: it is built on every request and
    tuple construction is several times cheaper than a frozen dataclass ``__init__``.
    """

    intent: OrderIntent
    status: AccountStatus
    snapshot: AccountSnapshot
    policy: Policy
    now: Instant
    #: The position a reduce-only order or a hedge-mode close would shrink, if any.
    target: Position | None
    #: True when the order only shrinks ``target``: reduce-only, or a hedge-mode close, with a
    #: quantity within the position net of resting closing orders.
    reduces: bool
    #: Kill switches that may concern the account (the check filters scope and expiry).
    switches: tuple[KillSwitch, ...] = ()
    #: Allowed orders already counted in the rate windows; ``None`` when nothing is counted.
    rate: OrderRate | None = None
    #: The account's market rules and mark prices; ``None`` when none apply to it.
    market: MarketView | None = None
    #: The order's symbol rules, when the market rules are fresh and list the symbol.
    symbol_rules: SymbolRules | None = None
    #: The symbol's mark price, when fresh.
    mark: Decimal | None = None
    #: Why the market rules cannot be used (missing or stale), else ``None``.
    market_problem: str | None = None
    #: What is left of ``target`` after resting orders that close it.
    closable: Decimal | None = None


def target_position(intent: OrderIntent, snapshot: AccountSnapshot) -> Position | None:
    """The position a reduce-only ``intent`` or a hedge-mode close would shrink, or ``None``.

    A reduce-only SELL reduces the LONG position of the symbol and a BUY the SHORT one; a
    hedge-mode close (SELL+LONG, BUY+SHORT) reduces the position it names. Looking the
    position up by (symbol, side) works in both one-way and hedge mode.
    """
    if intent.symbol is None or intent.side is None:
        return None
    side = intent.hedge_close
    if side is None:
        if not (intent.reduce_only or intent.close_position):
            return None
        side = PositionSide.LONG if intent.side is OrderSide.SELL else PositionSide.SHORT
    return snapshot.position(intent.symbol, side)


def closable_quantity(target: Position | None, snapshot: AccountSnapshot) -> Decimal | None:
    """``target``'s quantity net of the resting orders that close it (never below 0).

    The exchange counts resting reduce-only orders and hedge-mode closes against the
    position: a new close beyond what is left is rejected (binance-order-rules.md §4.3).
    """
    if target is None:
        return None
    left = target.quantity
    for order in snapshot.open_orders:
        if order.symbol == target.symbol and order.closes is target.side:
            left -= order.quantity
    return left if left > _ZERO else _ZERO


def really_reduces(intent: OrderIntent, closable: Decimal | None) -> bool:
    """Whether a closing order can only shrink its position, never open or grow exposure.

    A close-position order (``close_position``: close whatever is held when it triggers)
    always does. An order without a quantity (close what is there) reduces as long as
    something is left to close; one with a quantity must not exceed it.
    """
    if intent.close_position and intent.side is not None:
        return True
    if closable is None or closable <= 0:
        return False
    return intent.quantity is None or intent.quantity <= closable


def _market_facts(
    intent: OrderIntent, market: MarketView | None, policy: Policy, now: Instant
) -> tuple[SymbolRules | None, Decimal | None, str | None]:
    """``(symbol rules, mark price, problem)`` for an order on a symbol."""
    symbol = intent.symbol
    if market is None or symbol is None or intent.side is None:
        return None, None, None
    rules, marks = market.rules, market.marks
    problem = None
    symbol_rules = None
    if rules is None:
        problem = "no symbol rules received from the exchange yet"
    elif not market.static and now.mono - rules.received_mono > policy.max_market_rules_age_s:
        age = now.mono - rules.received_mono
        problem = f"symbol rules are {age:.0f} s old (max {policy.max_market_rules_age_s:g} s)"
    else:
        symbol_rules = rules.value.symbols.get(symbol)
    mark = None
    if marks is not None and now.mono - marks.received_mono <= policy.max_mark_price_age_s:
        mark = marks.value.prices.get(symbol)
    if problem is not None and market.rules_error:
        problem += f"; last error: {market.rules_error}"
    return symbol_rules, mark, problem


def build_facts(
    intent: OrderIntent,
    status: AccountStatus,
    snapshot: AccountSnapshot,
    policy: Policy,
    now: Instant,
    switches: tuple[KillSwitch, ...] = (),
    rate: OrderRate | None = None,
    market: MarketView | None = None,
) -> Facts:
    """Resolve the facts for one decision (the target position is looked up once)."""
    target = target_position(intent, snapshot)
    closable = closable_quantity(target, snapshot)
    reduces = really_reduces(intent, closable)
    if market is None:
        return Facts(
            intent, status, snapshot, policy, now, target, reduces, switches, rate,
            closable=closable,
        )  # fmt: skip
    symbol_rules, mark, problem = _market_facts(intent, market, policy, now)
    return Facts(
        intent, status, snapshot, policy, now, target, reduces, switches, rate,
        market, symbol_rules, mark, problem, closable,
    )  # fmt: skip
