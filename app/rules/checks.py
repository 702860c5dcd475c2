"""Deny checks on account status, permissions, margin and reduce-only orders.

Every check has the same shape, ``(facts) -> tuple[Reason, ...]``: an empty tuple when it
has nothing to say, one reason otherwise. Checks never raise and never read a clock; the
engine runs them in a fixed order and collects every reason.
"""

from __future__ import annotations

from decimal import Decimal

from app.domain import OrderSide, PositionSide, Reason, ReasonCode
from app.rules.facts import Facts
from app.rules.money import required_margin, show_down, show_up
from app.rules.pricing import CONDITIONAL, margin_price, open_loss

_PASS: tuple[Reason, ...] = ()
_ONE = Decimal(1)


def check_trading_status(facts: Facts) -> tuple[Reason, ...]:
    """Deny unless the account's trading status is NORMAL.

    Any other status, including one this code does not know, is not normal (fail closed).
    The one exception is an order that really reduces, in a status the policy lists in
    ``reduce_only_statuses`` (e.g. RESTRICTED, where exits should stay possible).
    """
    status = facts.status
    if status.is_normal:
        return _PASS
    exit_allowed = status.trading_status in facts.policy.reduce_only_statuses
    if exit_allowed and facts.reduces:
        return _PASS
    message = f"account trading status is {status.trading_status}"
    if status.reason:
        message += f": {status.reason}"
    if exit_allowed:
        message += "; only reduce-only orders that shrink an open position are allowed"
    return (Reason(ReasonCode.ACCOUNT_NOT_NORMAL, message),)


def check_can_trade(facts: Facts) -> tuple[Reason, ...]:
    """Deny when the exchange says the account may not trade (reduce-only included)."""
    if facts.status.can_trade:
        return _PASS
    return (
        Reason(ReasonCode.TRADING_DISABLED, "the exchange reports trading disabled (canTrade)"),
    )


def check_futures_enabled(facts: Facts) -> tuple[Reason, ...]:
    """Deny when futures trading is explicitly disabled; ``None`` (not reported) passes."""
    if facts.status.futures_enabled is not False:
        return _PASS
    return (Reason(ReasonCode.FUTURES_DISABLED, "the exchange reports futures trading disabled"),)


def check_margin_trading(facts: Facts) -> tuple[Reason, ...]:
    """Deny orders that open or increase exposure when the exchange reports margin trading
    disabled; reduce-only orders that really reduce pass, ``None`` (not reported) passes."""
    if facts.status.margin_enabled is not False or facts.reduces:
        return _PASS
    return (
        Reason(
            ReasonCode.MARGIN_TRADING_DISABLED,
            "the exchange reports margin trading disabled on the account; only reduce-only "
            "orders that shrink an open position are allowed",
        ),
    )


def check_margin_ratio(facts: Facts) -> tuple[Reason, ...]:
    """Deny orders that do not reduce when the margin ratio is at or above the policy limit.

    The ratio is ``None`` when the margin balance is gone while positions are open: the
    account is at or past liquidation, which denies like an infinite ratio.
    """
    if facts.reduces:
        return _PASS
    ratio = facts.snapshot.margin_ratio
    limit = facts.policy.max_margin_ratio
    if ratio is None:
        return (
            Reason(
                ReasonCode.MARGIN_RATIO_HIGH,
                "margin balance is zero or negative with open positions (at or past liquidation)",
                limit=str(limit),
            ),
        )
    if ratio < limit:
        return _PASS
    shown = show_up(ratio)
    return (
        Reason(
            ReasonCode.MARGIN_RATIO_HIGH,
            f"margin ratio {shown} is at or above the limit {limit}",
            limit=str(limit),
            observed=shown,
        ),
    )


def check_reduce_only(facts: Facts) -> tuple[Reason, ...]:
    """Deny a closing order that would not only shrink its position: a reduce-only order, or
    a hedge-mode close (SELL+LONG, BUY+SHORT), with no position to close or a quantity above
    the position net of the resting orders that already close it (Binance -2022).

    The API rejects reduce-only without symbol and side earlier; if one arrives anyway it
    gets this reason too, since nothing shows that it reduces.
    """
    intent = facts.intent
    hedge_close = intent.hedge_close
    if facts.reduces or not (intent.reduce_only or hedge_close is not None):
        return _PASS
    target = facts.target
    closable = facts.closable
    observed = None if intent.quantity is None else str(intent.quantity)
    kind = "reduce-only" if hedge_close is None else f"hedge-mode close of the {hedge_close}"
    if intent.symbol is None or intent.side is None:
        message = "a reduce-only order needs a symbol and a side to be checked against a position"
    elif target is None or target.quantity <= 0:
        what = "opposite position" if hedge_close is None else "position"
        message = f"{kind} {intent.side} {intent.symbol} has no {what} to reduce"
    elif closable is not None and closable < target.quantity:
        message = (
            f"{kind} {intent.side} {intent.quantity} {intent.symbol} exceeds what is left of "
            f"the {target.side} position of {target.quantity} after resting closing orders "
            f"({closable})"
        )
    else:
        message = (
            f"{kind} {intent.side} {intent.quantity} {intent.symbol} exceeds the "
            f"{target.side} position of {target.quantity}"
        )
    limit = "0" if closable is None else str(closable)
    return (Reason(ReasonCode.REDUCE_ONLY_WOULD_INCREASE, message, limit=limit, observed=observed),)


def opening_quantity(facts: Facts, quantity: Decimal) -> Decimal:
    """The part of an order that opens exposure: in one-way mode, what goes beyond closing
    the opposite position (that part needs no margin); otherwise all of it."""
    intent = facts.intent
    if facts.status.hedge_mode is not False or intent.symbol is None:
        return quantity
    opposite = PositionSide.SHORT if intent.side is OrderSide.BUY else PositionSide.LONG
    held = facts.snapshot.position(intent.symbol, opposite)
    if held is None:
        return quantity
    return max(Decimal(0), quantity - held.quantity)


def check_margin_sufficiency(facts: Facts) -> tuple[Reason, ...]:
    """Deny an order whose cost exceeds the available balance.

    Runs only for orders that do not reduce and name a symbol and a quantity (a close that
    does not fit its position is treated like any order opening exposure). The cost is
    Binance's: initial margin ``quantity × price / leverage`` plus the open loss (a BUY above
    the mark price, a SELL below it); the price is the order's limit price, else the mark
    price (+0.05 % for a market BUY, see ``rules.pricing``); with no price at all the check
    cannot be made, and that is a deny (never a silent skip). Leverage is the symbol's, else
    the policy default, and never below 1 (which would understate the margin). Conditional
    orders (stops, take-profits, trailing stops) reserve no margin until they trigger, on
    the exchange as here.
    """
    intent = facts.intent
    symbol = intent.symbol
    quantity = intent.quantity
    if facts.reduces or symbol is None or quantity is None:
        return _PASS
    snapshot = facts.snapshot
    price = margin_price(facts)
    if price is None or price <= 0:
        return (
            Reason(
                ReasonCode.PRICE_UNAVAILABLE,
                f"no order price and no mark price known for {symbol}: cannot check margin",
            ),
        )
    if intent.order_type is not None and intent.order_type in CONDITIONAL:
        return _PASS
    leverage = snapshot.leverage_for(symbol) or facts.policy.default_leverage
    leverage = max(leverage, _ONE)
    quantity = opening_quantity(facts, quantity)
    if quantity <= 0:
        return _PASS  # a one-way order that only closes the opposite position
    required = required_margin(quantity, price, leverage)
    loss = open_loss(facts, quantity, price)
    if loss:
        required += loss
    available = snapshot.available_balance
    if required <= available:
        return _PASS
    shown_required = show_up(required)
    shown_available = show_down(available)
    extra = f" + open loss {show_up(loss)}" if loss else ""
    return (
        Reason(
            ReasonCode.INSUFFICIENT_MARGIN,
            f"order needs {shown_required} {snapshot.asset} initial margin "
            f"({quantity} × {price} / leverage {leverage}{extra}) but {shown_available} is "
            "available",
            limit=shown_available,
            observed=shown_required,
        ),
    )
