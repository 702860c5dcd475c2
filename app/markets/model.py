"""What an exchange says about its markets, as immutable values (no I/O, no clock).

Filters follow Binance USDⓈ-M's ``exchangeInfo`` (binance-order-rules.md §2.2); a part of a
filter that the exchange disables (a 0) or does not send is ``None`` and its check does not
apply. Symbol status values are kept verbatim: only ``TRADING`` is tradable, every other value,
known or not, is not (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from app.domain import OpenOrder, RateLimit

#: The one symbol status that accepts new orders.
TRADING = "TRADING"


class OrderType(StrEnum):
    """Order types of Binance USDⓈ-M (binance-order-rules.md §2.1)."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP = "STOP"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    TRAILING_STOP_MARKET = "TRAILING_STOP_MARKET"


#: Types that carry a limit price.
PRICED_TYPES = frozenset({OrderType.LIMIT, OrderType.STOP, OrderType.TAKE_PROFIT})
#: Conditional (algo) types: they count against MAX_NUM_ALGO_ORDERS as well.
CONDITIONAL_TYPES = frozenset(
    {
        OrderType.STOP,
        OrderType.STOP_MARKET,
        OrderType.TAKE_PROFIT,
        OrderType.TAKE_PROFIT_MARKET,
        OrderType.TRAILING_STOP_MARKET,
    }
)
#: Types with a trigger price (``stop_price``).
STOP_TYPES = frozenset(
    {OrderType.STOP, OrderType.STOP_MARKET, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_MARKET}
)


@dataclass(frozen=True, slots=True)
class Bounds:
    """``min <= value <= max`` and ``(value - min) % step == 0``; ``None`` parts are disabled."""

    minimum: Decimal | None = None
    maximum: Decimal | None = None
    step: Decimal | None = None


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """One symbol's status, order types and filters."""

    symbol: str
    status: str
    #: Allowed order types as the exchange spells them; ``None`` when not reported.
    order_types: frozenset[str] | None = None
    price: Bounds = Bounds()  # PRICE_FILTER (price and stop price)
    lot: Bounds = Bounds()  # LOT_SIZE
    market_lot: Bounds | None = None  # MARKET_LOT_SIZE (market orders), when sent
    min_notional: Decimal | None = None  # MIN_NOTIONAL.notional
    #: PERCENT_PRICE multipliers against the mark price (BUY <= mark x up, SELL >= mark x down).
    multiplier_up: Decimal | None = None
    multiplier_down: Decimal | None = None
    max_orders: int | None = None  # MAX_NUM_ORDERS (normal + algo, per account and symbol)
    max_algo_orders: int | None = None  # MAX_NUM_ALGO_ORDERS
    #: Allowed time-in-force values; ``None`` when not reported.
    time_in_force: frozenset[str] | None = None
    #: Most decimals a price / quantity may be written with (Binance -1111 beyond them).
    price_precision: int | None = None
    quantity_precision: int | None = None

    @property
    def tradable(self) -> bool:
        return self.status == TRADING


@dataclass(frozen=True, slots=True)
class MarketRules:
    """Every symbol of one exchange host, and the exchange's per-account order limits."""

    symbols: Mapping[str, SymbolRules]
    #: ``ORDERS`` rate limits (per account), e.g. 300 per 10 s and 1200 per minute.
    order_limits: tuple[RateLimit, ...] = ()
    #: False when symbol rules come from configuration (generic v2): a symbol they do not list
    #: is then unchecked rather than unknown.
    complete: bool = True


@dataclass(frozen=True, slots=True)
class MarkPrices:
    """Mark price per symbol, from one all-symbols call."""

    prices: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccountMarket:
    """Per-account facts the order checks need beyond the snapshot.

    ``hedge_mode`` and ``multi_assets`` come from the account's configuration
    (``accountConfig``), ``max_notional`` is the maximum position notional at the current
    leverage per symbol (``symbolConfig.maxNotionalValue``), ``open_orders`` the resting orders
    (``openOrders``) for counts and resting closes.
    """

    hedge_mode: bool
    multi_assets: bool = False
    max_notional: Mapping[str, Decimal] = field(default_factory=dict)
    open_orders: tuple[OpenOrder, ...] = ()
