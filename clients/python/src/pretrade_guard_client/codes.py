"""The guard's reason codes: a stable public contract, kept in step with the server by a test.

A newer guard may answer with a code this client does not know yet; it is kept as the raw
string (see ``Reason.code``), never an error. ``ClientReasonCode`` values are produced by this
client, never by the guard.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Why the guard denies an order (the server's ``app.domain.ReasonCode``)."""

    NO_DATA = "NO_DATA"
    STALE_DATA = "STALE_DATA"
    ACCOUNT_NOT_NORMAL = "ACCOUNT_NOT_NORMAL"
    TRADING_DISABLED = "TRADING_DISABLED"
    FUTURES_DISABLED = "FUTURES_DISABLED"
    ACCOUNT_LOCKED = "ACCOUNT_LOCKED"
    SYMBOL_LOCKED = "SYMBOL_LOCKED"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    MARGIN_RATIO_HIGH = "MARGIN_RATIO_HIGH"
    PRICE_UNAVAILABLE = "PRICE_UNAVAILABLE"
    REDUCE_ONLY_WOULD_INCREASE = "REDUCE_ONLY_WOULD_INCREASE"
    KILL_SWITCH = "KILL_SWITCH"
    ORDER_NOTIONAL_LIMIT = "ORDER_NOTIONAL_LIMIT"
    POSITION_LIMIT = "POSITION_LIMIT"
    ORDER_RATE_LIMIT = "ORDER_RATE_LIMIT"
    MARGIN_TRADING_DISABLED = "MARGIN_TRADING_DISABLED"
    # Order fidelity: what the exchange would reject for the order itself.
    MARKET_RULES_UNAVAILABLE = "MARKET_RULES_UNAVAILABLE"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    SYMBOL_NOT_TRADING = "SYMBOL_NOT_TRADING"
    ORDER_TYPE_NOT_ALLOWED = "ORDER_TYPE_NOT_ALLOWED"
    POSITION_SIDE_REQUIRED = "POSITION_SIDE_REQUIRED"
    POSITION_SIDE_NOT_ALLOWED = "POSITION_SIDE_NOT_ALLOWED"
    REDUCE_ONLY_NOT_ALLOWED = "REDUCE_ONLY_NOT_ALLOWED"
    PRICE_OUT_OF_RANGE = "PRICE_OUT_OF_RANGE"
    PRICE_NOT_ON_TICK = "PRICE_NOT_ON_TICK"
    QUANTITY_OUT_OF_RANGE = "QUANTITY_OUT_OF_RANGE"
    QUANTITY_NOT_ON_STEP = "QUANTITY_NOT_ON_STEP"
    NOTIONAL_TOO_SMALL = "NOTIONAL_TOO_SMALL"
    PRICE_OUTSIDE_BAND = "PRICE_OUTSIDE_BAND"
    TOO_MANY_OPEN_ORDERS = "TOO_MANY_OPEN_ORDERS"
    POSITION_LIMIT_AT_LEVERAGE = "POSITION_LIMIT_AT_LEVERAGE"
    EXCHANGE_ORDER_RATE = "EXCHANGE_ORDER_RATE"


class WarningCode(StrEnum):
    """Advice attached to a decision; never a denial on its own (``app.domain.WarningCode``)."""

    QUANT_RULE_NEAR_TRIGGER = "QUANT_RULE_NEAR_TRIGGER"


class ClientReasonCode(StrEnum):
    """Reasons made up by this client, never sent by the guard."""

    #: The guard could not be asked (timeout, connection error, 5xx, unparseable answer) and
    #: the client was built with ``on_unavailable=OnUnavailable.DENY``.
    GUARD_UNAVAILABLE = "GUARD_UNAVAILABLE"


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    """Order types the guard judges (sent as ``type``; needs a guard that knows the field)."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP = "STOP"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    TRAILING_STOP_MARKET = "TRAILING_STOP_MARKET"


class PositionSide(StrEnum):
    """``BOTH`` in one-way mode; ``LONG``/``SHORT`` in hedge mode."""

    BOTH = "BOTH"
    LONG = "LONG"
    SHORT = "SHORT"


class OnUnavailable(StrEnum):
    """What the client does when the guard cannot be asked."""

    #: Raise ``GuardUnavailable`` (the default: fail closed, loudly).
    RAISE = "raise"
    #: Return a denial whose only reason is ``ClientReasonCode.GUARD_UNAVAILABLE``.
    DENY = "deny"
