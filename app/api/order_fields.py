"""The order fields a bot may send beside side, quantity and price, and how they combine.

Shared by ``OrderQuery`` (the FastAPI routes) and the fast path, so both refuse exactly the
same combinations, with the same message. The rules are Binance's parameter rules for a new
order (binance-order-rules.md §4.2): what the exchange would refuse for the parameters alone
is bad input here (422), not a decision.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from app.markets.model import OrderType

#: Types that take a limit ``price``.
PRICED = frozenset({OrderType.LIMIT, OrderType.STOP, OrderType.TAKE_PROFIT})
#: Types that take a trigger ``stop_price``.
STOPPED = frozenset(
    {OrderType.STOP, OrderType.TAKE_PROFIT, OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET}
)
#: Types that may close the whole position (``close_position``).
CLOSING = frozenset({OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET})


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTX = "GTX"
    GTD = "GTD"
    RPI = "RPI"


def order_fields_problem(
    *,
    has_side: bool,
    quantity: Decimal | None,
    price: Decimal | None,
    reduce_only: bool,
    order_type: OrderType | None,
    stop_price: Decimal | None,
    time_in_force: TimeInForce | None,
    close_position: bool,
    has_position_side: bool,
) -> str | None:
    """Why these fields cannot form one order (a 422 message), or ``None``."""
    named = (
        order_type is not None
        or stop_price is not None
        or time_in_force is not None
        or close_position
        or has_position_side
    )
    if named and not has_side:
        return "type, position_side, stop_price, time_in_force and close_position need side"
    kind = order_type or (OrderType.LIMIT if price is not None else OrderType.MARKET)
    if kind in PRICED and price is None and order_type is not None:
        return f"price is required for {kind} orders"
    if kind not in PRICED and price is not None:
        return f"price is not sent with {kind} orders"
    if kind in STOPPED and stop_price is None:
        return f"stop_price is required for {kind} orders"
    if kind not in STOPPED and stop_price is not None:
        return f"stop_price is not sent with {kind} orders"
    if kind is OrderType.MARKET and time_in_force is not None:
        return "time_in_force is not sent with MARKET orders"
    if close_position:
        if kind not in CLOSING:
            return "close_position is only for STOP_MARKET and TAKE_PROFIT_MARKET orders"
        if quantity is not None:
            return "close_position is sent without quantity"
        if reduce_only:
            return "close_position is sent without reduce_only"
    return None
