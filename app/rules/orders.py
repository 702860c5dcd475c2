"""Order-level checks against the exchange's symbol rules: what it would reject for the order
itself, before the bot sends it (binance-order-rules.md §2.2, §6).

They run only for orders (a symbol and a side) of accounts with market rules. Missing or stale
rules deny with ``MARKET_RULES_UNAVAILABLE`` (never a silent skip); with that reason present
the other checks here stay silent. Where a valid order is near, the reason carries a
``suggestion`` the bot can resend: a price rounded to the tick away from the aggressive side
(BUY down, SELL up), a quantity truncated to the step, the smallest quantity meeting the
minimum notional.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Context, Decimal

from app.domain import OpenOrder, OrderSide, PositionSide, Reason, ReasonCode, Suggestion
from app.markets.model import Bounds, SymbolRules
from app.rules.facts import Facts
from app.rules.pricing import CONDITIONAL, TRIGGERED_MARKET, mark_price, order_price
from app.rules.steps import on_step, show, to_step

_NONE: tuple[Reason, ...] = ()
_CTX = Context(prec=60, traps=[])
_ZERO = Decimal(0)
#: Types judged at the mark price: the exchange has no order price to use.
_AT_MARK = frozenset({"MARKET", "TRAILING_STOP_MARKET"})


def _rules(facts: Facts) -> SymbolRules | None:
    """The symbol rules when the market rules are usable and list the symbol."""
    if facts.market_problem is not None:
        return None
    return facts.symbol_rules


def _needs_mark(facts: Facts, rules: SymbolRules) -> bool:
    intent = facts.intent
    kind = intent.effective_type
    if kind in _AT_MARK:
        return True
    if kind in TRIGGERED_MARKET and intent.stop_price is None:
        return True
    return kind == "LIMIT" and rules.multiplier_up is not None


def check_market_data(facts: Facts) -> tuple[Reason, ...]:
    """Deny when the market rules the order checks need are missing or stale: the symbol
    rules, or the mark price a market order, or a price band, is judged against."""
    market = facts.market
    if market is None:
        return _NONE
    symbol = facts.intent.symbol
    if facts.market_problem is not None:
        return (
            Reason(
                ReasonCode.MARKET_RULES_UNAVAILABLE,
                f"cannot check the order against {symbol}'s rules: {facts.market_problem}",
            ),
        )
    rules = facts.symbol_rules
    if rules is None or market.static or facts.mark is not None or not _needs_mark(facts, rules):
        return _NONE
    message = f"no fresh mark price for {symbol}"
    if market.marks_error:
        message += f"; last error: {market.marks_error}"
    return (Reason(ReasonCode.MARKET_RULES_UNAVAILABLE, message),)


def check_symbol(facts: Facts) -> tuple[Reason, ...]:
    """``UNKNOWN_SYMBOL`` (not listed), ``SYMBOL_NOT_TRADING`` (any status but TRADING, known
    or not), ``ORDER_TYPE_NOT_ALLOWED`` (type not among the symbol's order types)."""
    market = facts.market
    intent = facts.intent
    if (
        market is None
        or facts.market_problem is not None
        or market.rules is None
        or intent.symbol is None
        or intent.side is None
    ):
        return _NONE
    symbol = intent.symbol
    rules = facts.symbol_rules
    if rules is None:
        if not market.rules.value.complete:
            return _NONE  # configured rules list only some symbols: the others are unchecked
        return (
            Reason(
                ReasonCode.UNKNOWN_SYMBOL,
                f"{symbol} is not listed by the exchange",
                observed=symbol,
            ),
        )
    if not rules.tradable:
        return (
            Reason(
                ReasonCode.SYMBOL_NOT_TRADING,
                f"{symbol} has status {rules.status}; only TRADING accepts new orders",
                limit="TRADING",
                observed=rules.status,
            ),
        )
    kind = facts.intent.effective_type
    tif = facts.intent.time_in_force
    if tif is not None and rules.time_in_force is not None and tif not in rules.time_in_force:
        allowed = ", ".join(sorted(rules.time_in_force))
        return (
            Reason(
                ReasonCode.ORDER_TYPE_NOT_ALLOWED,
                f"{symbol} does not take time in force {tif} (allowed: {allowed})",
                limit=allowed,
                observed=tif,
            ),
        )
    if rules.order_types is not None and kind not in rules.order_types:
        allowed = ", ".join(sorted(rules.order_types))
        return (
            Reason(
                ReasonCode.ORDER_TYPE_NOT_ALLOWED,
                f"{symbol} does not take {kind} orders (allowed: {allowed})",
                limit=allowed,
                observed=kind,
            ),
        )
    return _NONE


def _passive(value: Decimal, bounds: Bounds, side: OrderSide | None) -> Decimal:
    """``value`` on the tick, rounded away from the aggressive side (BUY down, SELL up)."""
    step = bounds.step
    if step is None:
        return value
    return to_step(value, bounds.minimum, step, up=side is OrderSide.SELL)


def _suggest(key: str, price: Decimal) -> Suggestion:
    if key == "stop_price":
        return Suggestion(stop_price=show(price))
    return Suggestion(price=show(price))


def decimals(value: Decimal) -> int:
    """Digits after the point, trailing zeros not counted (as the exchange counts them)."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def too_precise(value: Decimal, precision: int | None) -> bool:
    """More decimals than ``precision`` (Binance -1111); cheap when written with fewer."""
    if precision is None:
        return False
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or -exponent <= precision:
        return False  # trailing zeros can only lower the count
    return decimals(value) > precision


def _price_reasons(
    field: str, value: Decimal, bounds: Bounds, side: OrderSide | None, precision: int | None
) -> tuple[Reason, ...]:
    key = "stop_price" if field == "stop price" else "price"
    low, high = bounds.minimum, bounds.maximum
    if low is not None and value < low:
        shown = show(value)
        return (
            Reason(
                ReasonCode.PRICE_OUT_OF_RANGE,
                f"{field} {shown} is below the minimum {show(low)}",
                limit=show(low),
                observed=shown,
                suggestion=_suggest(key, low),
            ),
        )
    if high is not None and value > high:
        shown = show(value)
        top = high if bounds.step is None else to_step(high, low, bounds.step, up=False)
        return (
            Reason(
                ReasonCode.PRICE_OUT_OF_RANGE,
                f"{field} {shown} is above the maximum {show(high)}",
                limit=show(high),
                observed=shown,
                suggestion=_suggest(key, top),
            ),
        )
    if not on_step(value, low, bounds.step) or too_precise(value, precision):
        shown = show(value)
        near = _passive(value, bounds, side)
        if low is not None and near < low:
            near = low
        return (
            Reason(
                ReasonCode.PRICE_NOT_ON_TICK,
                f"{field} {shown} is not a multiple of the tick size "
                f"{show(bounds.step) if bounds.step is not None else '-'} (or has more than "
                f"{precision} decimals)",
                limit=None if bounds.step is None else show(bounds.step),
                observed=shown,
                suggestion=_suggest(key, near),
            ),
        )
    return _NONE


def check_price_filter(facts: Facts) -> tuple[Reason, ...]:
    """PRICE_FILTER on the price and on the stop price: ``PRICE_OUT_OF_RANGE``,
    ``PRICE_NOT_ON_TICK``."""
    rules = _rules(facts)
    if rules is None:
        return _NONE
    intent = facts.intent
    reasons: tuple[Reason, ...] = ()
    if intent.price is not None:
        reasons += _price_reasons(
            "price", intent.price, rules.price, intent.side, rules.price_precision
        )
    if intent.stop_price is not None:
        reasons += _price_reasons(
            "stop price", intent.stop_price, rules.price, intent.side, rules.price_precision
        )
    return reasons


def quantity_bounds(facts: Facts, rules: SymbolRules) -> tuple[Bounds, str]:
    """MARKET_LOT_SIZE for market orders when the symbol has one, else LOT_SIZE."""
    if facts.intent.effective_type == "MARKET" and rules.market_lot is not None:
        return rules.market_lot, "MARKET_LOT_SIZE"
    return rules.lot, "LOT_SIZE"


def check_quantity(facts: Facts) -> tuple[Reason, ...]:
    """LOT_SIZE (MARKET_LOT_SIZE for market orders): ``QUANTITY_OUT_OF_RANGE``,
    ``QUANTITY_NOT_ON_STEP``."""
    rules = _rules(facts)
    quantity = facts.intent.quantity
    if rules is None or quantity is None:
        return _NONE
    bounds, name = quantity_bounds(facts, rules)
    low, high, step = bounds.minimum, bounds.maximum, bounds.step
    if low is not None and quantity < low:
        shown = show(quantity)
        return (
            Reason(
                ReasonCode.QUANTITY_OUT_OF_RANGE,
                f"quantity {shown} is below the {name} minimum {show(low)}",
                limit=show(low),
                observed=shown,
                suggestion=Suggestion(quantity=show(low)),
            ),
        )
    if high is not None and quantity > high:
        shown = show(quantity)
        top = high if step is None else to_step(high, low, step, up=False)
        return (
            Reason(
                ReasonCode.QUANTITY_OUT_OF_RANGE,
                f"quantity {shown} is above the {name} maximum {show(high)}",
                limit=show(high),
                observed=shown,
                suggestion=Suggestion(quantity=show(top)),
            ),
        )
    precision = rules.quantity_precision
    if (step is not None and not on_step(quantity, low, step)) or too_precise(quantity, precision):
        shown = show(quantity)
        near = quantity if step is None else to_step(quantity, low, step, up=False)
        return (
            Reason(
                ReasonCode.QUANTITY_NOT_ON_STEP,
                f"quantity {shown} is not a multiple of the {name} step size "
                f"{show(step) if step is not None else '-'} (or has more than {precision} "
                "decimals)",
                limit=None if step is None else show(step),
                observed=shown,
                suggestion=Suggestion(quantity=show(near)),
            ),
        )
    return _NONE


def check_min_notional(facts: Facts) -> tuple[Reason, ...]:
    """MIN_NOTIONAL: ``quantity × price`` (the mark price for market orders) below the
    symbol's minimum. Reduce-only orders, hedge-mode closes and close-position orders are
    exempt, as on the exchange."""
    rules = _rules(facts)
    intent = facts.intent
    quantity = intent.quantity
    if (
        rules is None
        or rules.min_notional is None
        or quantity is None
        or intent.reduce_only
        or intent.close_position
        or intent.hedge_close is not None
    ):
        return _NONE
    price = order_price(facts)
    if price is None or price <= 0:
        return _NONE  # no mark price: check_market_data denies
    notional = _CTX.multiply(quantity, price)
    minimum = rules.min_notional
    if notional >= minimum:
        return _NONE
    bounds, _name = quantity_bounds(facts, rules)
    needed = _CTX.divide(minimum, price)
    if bounds.step is not None:
        needed = to_step(needed, bounds.minimum, bounds.step, up=True)
    else:
        needed = needed.quantize(Decimal(1).scaleb(needed.adjusted() - 7), rounding=ROUND_CEILING)
    if bounds.minimum is not None and needed < bounds.minimum:
        needed = bounds.minimum
    fits = bounds.maximum is None or needed <= bounds.maximum
    return (
        Reason(
            ReasonCode.NOTIONAL_TOO_SMALL,
            f"order notional {show(notional)} ({show(quantity)} × {show(price)}) is below the "
            f"minimum {show(minimum)}; reduce-only orders and closes are exempt",
            limit=show(minimum),
            observed=show(notional),
            suggestion=Suggestion(quantity=show(needed)) if fits else None,
        ),
    )


def check_price_band(facts: Facts) -> tuple[Reason, ...]:
    """PERCENT_PRICE against the mark price: a LIMIT BUY above ``mark × multiplierUp`` or a
    LIMIT SELL below ``mark × multiplierDown`` (``PRICE_OUTSIDE_BAND``; Binance -4016/-4024).

    Market orders are judged by the exchange against the best bid/ask (-4131), which the
    guard does not read: not checked."""
    rules = _rules(facts)
    intent = facts.intent
    price, mark = intent.price, facts.mark
    if (
        rules is None
        or price is None
        or mark is None
        or intent.effective_type != "LIMIT"
        or rules.multiplier_up is None
        or rules.multiplier_down is None
    ):
        return _NONE
    if intent.side is OrderSide.BUY:
        cap = _CTX.multiply(mark, rules.multiplier_up)
        if price <= cap:
            return _NONE
        edge, word = _edge(cap, rules.price, up=False), "above the cap"
    else:
        floor = _CTX.multiply(mark, rules.multiplier_down)
        if price >= floor:
            return _NONE
        edge, word = _edge(floor, rules.price, up=True), "below the floor"
    return (
        Reason(
            ReasonCode.PRICE_OUTSIDE_BAND,
            f"price {show(price)} is {word} {show(edge)} of the band around the mark price "
            f"{show(mark)} (PERCENT_PRICE {show(rules.multiplier_down)}-"
            f"{show(rules.multiplier_up)})",
            limit=show(edge),
            observed=show(price),
            suggestion=Suggestion(price=show(edge)),
        ),
    )


def _edge(value: Decimal, bounds: Bounds, *, up: bool) -> Decimal:
    """A band edge on the tick, inside the band."""
    if bounds.step is None:
        return value
    return to_step(value, bounds.minimum, bounds.step, up=up)


def check_open_orders(facts: Facts) -> tuple[Reason, ...]:
    """MAX_NUM_ORDERS (every open order of the symbol) and MAX_NUM_ALGO_ORDERS (conditional
    ones, for a conditional order): ``TOO_MANY_OPEN_ORDERS``."""
    rules = _rules(facts)
    if rules is None or (rules.max_orders is None and rules.max_algo_orders is None):
        return _NONE
    symbol = facts.intent.symbol
    mine = [o for o in facts.snapshot.open_orders if o.symbol == symbol]
    if rules.max_orders is not None and len(mine) >= rules.max_orders:
        algo_note = ""
        if any(o.algo for o in mine):
            algo_note = f" ({sum(1 for o in mine if o.algo)} of them algo orders)"
        return (
            Reason(
                ReasonCode.TOO_MANY_OPEN_ORDERS,
                f"{len(mine)} orders are open on {symbol}{algo_note}, the exchange's maximum "
                f"(MAX_NUM_ORDERS {rules.max_orders}); cancel one first",
                limit=str(rules.max_orders),
                observed=str(len(mine)),
            ),
        )
    if rules.max_algo_orders is not None and facts.intent.effective_type in CONDITIONAL:
        # Algo-service orders count whatever their type; classic conditional ones by type.
        algo = sum(1 for o in mine if o.algo or o.type in CONDITIONAL)
        if algo >= rules.max_algo_orders:
            return (
                Reason(
                    ReasonCode.TOO_MANY_OPEN_ORDERS,
                    f"{algo} conditional orders are open on {symbol}, the exchange's maximum "
                    f"(MAX_NUM_ALGO_ORDERS {rules.max_algo_orders}); cancel one first",
                    limit=str(rules.max_algo_orders),
                    observed=str(algo),
                ),
            )
    return _NONE


def _adds(order: OpenOrder, side: OrderSide, position_side: str) -> bool:
    """A resting order that adds exposure on the same side (not a close, not conditional)."""
    return (
        order.side is side
        and (order.position_side or "BOTH") == position_side
        and not order.reduce_only
        and not order.close_position
        and not order.algo
        and order.type not in CONDITIONAL
    )


def check_leverage_limit(facts: Facts) -> tuple[Reason, ...]:
    """``POSITION_LIMIT_AT_LEVERAGE``: the position after the order, plus the resting orders
    that add to it, times the mark price, above the maximum notional at the account's
    current leverage (``maxNotionalValue``; Binance -2027).

    Orders that really reduce pass. In hedge mode the position is the one the order's
    ``position_side`` names; in one-way mode the net position in the order's direction
    (nothing to check when the order leaves it flat or reversed to nothing).
    """
    intent = facts.intent
    symbol, quantity, side = intent.symbol, intent.quantity, intent.side
    if facts.reduces or symbol is None or quantity is None or side is None:
        return _NONE
    if intent.reduce_only or intent.close_position or intent.hedge_close is not None:
        return _NONE  # a close that does not fit is denied by the reduce-only check
    limit = facts.snapshot.max_notional_by_symbol.get(symbol)
    if limit is None:
        return _NONE
    price = mark_price(facts) or order_price(facts)
    if price is None or price <= 0:
        return _NONE  # denied for the missing price elsewhere
    snapshot = facts.snapshot
    long = snapshot.position(symbol, PositionSide.LONG)
    short = snapshot.position(symbol, PositionSide.SHORT)
    held_long = long.quantity if long is not None else _ZERO
    held_short = short.quantity if short is not None else _ZERO
    position_side = intent.position_side.value if intent.position_side is not None else "BOTH"
    pending = sum(
        (
            o.quantity
            for o in snapshot.open_orders
            if o.symbol == symbol and _adds(o, side, position_side)
        ),
        _ZERO,
    )
    if position_side == "LONG":
        held = held_long + pending
    elif position_side == "SHORT":
        held = held_short + pending
    else:
        net = held_long - held_short
        held = (net if side is OrderSide.BUY else -net) + pending
    after = held + quantity
    if after <= 0:
        return _NONE
    notional = _CTX.multiply(after, price)
    if notional <= limit:
        return _NONE
    room = _CTX.subtract(_CTX.divide(limit, price), held)
    suggestion = None
    rules = _rules(facts)
    if rules is not None and room > 0:
        bounds, _name = quantity_bounds(facts, rules)
        if bounds.step is not None:
            room = to_step(room, bounds.minimum, bounds.step, up=False)
        if room > 0 and (bounds.minimum is None or room >= bounds.minimum):
            suggestion = Suggestion(quantity=show(room))
    return (
        Reason(
            ReasonCode.POSITION_LIMIT_AT_LEVERAGE,
            f"{symbol} position after the order (with resting orders that add to it) would be "
            f"{show(after)} × mark {show(price)} = {show(notional)}, above the maximum "
            f"{show(limit)} at the current leverage",
            limit=show(limit),
            observed=show(notional),
            suggestion=suggestion,
        ),
    )
