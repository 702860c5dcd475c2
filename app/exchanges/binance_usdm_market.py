"""Binance USDⓈ-M market rules: ``exchangeInfo``, ``premiumIndex`` and ``openOrders``, parsed
into ``app.markets.model`` values (binance-order-rules.md §1-§2).

=========================================  ======  ===========================================
``GET /fapi/v1/exchangeInfo``              1       symbols, status, order types, filters,
                                                   ``rateLimits`` (public; per host)
``GET /fapi/v1/premiumIndex``              10      every symbol's mark price in one call
                                                   (public; per host)
``GET /fapi/v1/openOrders?symbol=``        1       resting orders of one symbol (per account)
``GET /fapi/v1/openOrders``                40      every symbol at once
``GET /fapi/v1/openAlgoOrders?symbol=``    1       resting conditional orders of the Algo
                                                   Service (since 2025-12-02), one symbol
``GET /fapi/v1/openAlgoOrders``            40      every symbol at once
=========================================  ======  ===========================================

A symbol status this code does not know is kept verbatim and means "not tradable"
(JKorf/Binance.Net#498: a new status must never drop the symbol table). A filter part sent as
``0`` is disabled. Anything malformed fails the whole refresh: never half an answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from app.domain import OpenOrder, OrderSide, RateLimit
from app.exchanges.jsonfields import Fields
from app.markets.model import Bounds, MarketRules, MarkPrices, SymbolRules

if TYPE_CHECKING:
    from app.exchanges.mbx import MbxClient

EXCHANGE_INFO_PATH = "/fapi/v1/exchangeInfo"
PREMIUM_INDEX_PATH = "/fapi/v1/premiumIndex"
OPEN_ORDERS_PATH = "/fapi/v1/openOrders"
EXCHANGE_INFO_WEIGHT = 1
PREMIUM_INDEX_WEIGHT = 10  # 1 with a symbol, 10 without: one call serves every account
OPEN_ORDERS_SYMBOL_WEIGHT = 1
OPEN_ORDERS_ALL_WEIGHT = 40
OPEN_ALGO_ORDERS_PATH = "/fapi/v1/openAlgoOrders"
#: 1 with a symbol, 40 without (ccxt's cost table; Binance's page gives the same split).
OPEN_ALGO_ORDERS_SYMBOL_WEIGHT = 1
OPEN_ALGO_ORDERS_ALL_WEIGHT = 40
#: Above this many symbols one all-symbols call (40) is cheaper than one call per symbol.
OPEN_ORDERS_PER_SYMBOL_MAX = 10
_ZERO = Decimal(0)
#: ``rateLimits`` intervals a per-account order window is kept for (DAY limits are not).
_INTERVAL_S = {"SECOND": 1, "MINUTE": 60}


def _enabled(row: Fields, key: str) -> Decimal | None:
    # Within the plausible amounts (app.exchanges.bounds): a filter of 1E+30 would let any
    # order pass the range checks.
    value = row.opt_non_negative_amount(key)
    return value if value else None  # 0 disables that part of the filter


def _side(row: Fields) -> OrderSide:
    side = row.text("side")
    if side not in OrderSide.__members__:
        raise row.error("side", "must be BUY or SELL")
    return OrderSide(side)


def _bounds(row: Fields, low: str, high: str, step: str) -> Bounds:
    return Bounds(_enabled(row, low), _enabled(row, high), _enabled(row, step))


def _limit(row: Fields) -> int:
    value = row.integer("limit")
    if value < 0:
        raise row.error("limit", f"must not be negative, got {value}")
    return value


def parse_symbol(row: Fields) -> SymbolRules:
    """One ``exchangeInfo.symbols`` row."""
    fields: dict[str, Any] = {}
    for item in row.objects("filters", required=False):
        kind = item.text("filterType")
        if kind == "PRICE_FILTER":
            fields["price"] = _bounds(item, "minPrice", "maxPrice", "tickSize")
        elif kind == "LOT_SIZE":
            fields["lot"] = _bounds(item, "minQty", "maxQty", "stepSize")
        elif kind == "MARKET_LOT_SIZE":
            fields["market_lot"] = _bounds(item, "minQty", "maxQty", "stepSize")
        elif kind == "MIN_NOTIONAL":
            # Futures send ``notional``; Spot's name is ``minNotional`` (go-binance PR #505).
            key = "notional" if item.opt_decimal("notional") is not None else "minNotional"
            fields["min_notional"] = _enabled(item, key)
        elif kind == "PERCENT_PRICE":
            fields["multiplier_up"] = _enabled(item, "multiplierUp")
            fields["multiplier_down"] = _enabled(item, "multiplierDown")
        elif kind == "MAX_NUM_ORDERS":
            fields["max_orders"] = _limit(item)
        elif kind == "MAX_NUM_ALGO_ORDERS":
            fields["max_algo_orders"] = _limit(item)
    # The doc example prints the key as ``OrderType``; live answers use ``orderTypes``.
    key = "orderTypes" if "orderTypes" in row else "OrderType"
    types = row.array(key) if key in row else None
    order_types = None
    if types is not None:
        if not all(isinstance(t, str) for t in types):
            raise row.error(key, "must be an array of strings")
        order_types = frozenset(types)
    tifs = row.array("timeInForce") if "timeInForce" in row else None
    if tifs is not None and not all(isinstance(t, str) for t in tifs):
        raise row.error("timeInForce", "must be an array of strings")
    return SymbolRules(
        symbol=row.text("symbol"),
        status=row.text("status"),
        order_types=order_types,
        time_in_force=None if tifs is None else frozenset(tifs),
        price_precision=row.opt_integer("pricePrecision"),
        quantity_precision=row.opt_integer("quantityPrecision"),
        **fields,
    )


def parse_rate_limits(body: Fields) -> tuple[RateLimit, ...]:
    """The per-account ``ORDERS`` limits of ``rateLimits`` (SECOND and MINUTE intervals)."""
    limits = []
    for row in body.objects("rateLimits", required=False):
        if row.text("rateLimitType") != "ORDERS":
            continue
        unit = _INTERVAL_S.get(row.text("interval"))
        if unit is None:
            continue
        count = row.integer("intervalNum")
        if count <= 0:
            raise row.error("intervalNum", "must be positive")
        limit = _limit(row)
        if limit > 0:
            limits.append(RateLimit(max_orders=limit, window_s=float(unit * count)))
    return tuple(limits)


def parse_exchange_info(body: Fields) -> MarketRules:
    """``GET /fapi/v1/exchangeInfo``: every symbol's rules and the order limits."""
    symbols = {}
    for row in body.objects("symbols"):
        rules = parse_symbol(row)
        symbols[rules.symbol] = rules
    return MarketRules(symbols=symbols, order_limits=parse_rate_limits(body))


def parse_premium_index(rows: Sequence[Any], *, endpoint: str = PREMIUM_INDEX_PATH) -> MarkPrices:
    """``GET /fapi/v1/premiumIndex`` without a symbol: an array with every mark price."""
    prices = {}
    for i, item in enumerate(rows):
        row = Fields.of(item, endpoint=endpoint, path=f"[{i}]")
        if row.decimal("markPrice") <= 0:
            continue  # a symbol without a mark yet (e.g. just listed): as if absent
        mark = row.opt_price("markPrice")  # a decision input: within the plausible prices
        if mark is not None:
            prices[row.text("symbol")] = mark
    return MarkPrices(prices)


def parse_open_orders(rows: Sequence[Any], *, endpoint: str = OPEN_ORDERS_PATH) -> list[OpenOrder]:
    """``GET /fapi/v1/openOrders``: resting orders, with what they have left to fill."""
    orders = []
    for i, item in enumerate(rows):
        row = Fields.of(item, endpoint=endpoint, path=f"[{i}]")
        quantity = row.non_negative_amount("origQty") - (
            row.opt_non_negative_amount("executedQty") or _ZERO
        )
        price = row.opt_price_or_zero("price")
        orders.append(
            OpenOrder(
                order_id=row.ident("orderId"),
                symbol=row.text("symbol"),
                side=_side(row),
                type=row.opt_text("origType") or row.text("type"),
                quantity=quantity if quantity > 0 else _ZERO,
                price=price if price else None,
                reduce_only=row.opt_flag("reduceOnly") or False,
                time_ms=row.opt_integer("time"),
                position_side=row.opt_text("positionSide"),
                close_position=row.opt_flag("closePosition") or False,
            )
        )
    return orders


def parse_open_algo_orders(
    rows: Sequence[Any], *, endpoint: str = OPEN_ALGO_ORDERS_PATH
) -> list[OpenOrder]:
    """``GET /fapi/v1/openAlgoOrders``: conditional orders resting in the Algo Service.

    Every row counts toward MAX_NUM_ORDERS and MAX_NUM_ALGO_ORDERS (``OpenOrder.algo``), so
    a row is kept whatever its ``orderType`` or ``algoStatus`` (a new value must not drop an
    order from the count). Quantities and prices are within the plausible bounds
    (``app.exchanges.bounds``) like ``openOrders``; a ``closePosition`` order carries no
    quantity (``0``).
    """
    orders = []
    for i, item in enumerate(rows):
        row = Fields.of(item, endpoint=endpoint, path=f"[{i}]")
        quantity = row.opt_non_negative_amount("quantity") or _ZERO
        row.opt_price_or_zero("triggerPrice")  # validated: an absurd trigger is malformed
        price = row.opt_price_or_zero("price")
        orders.append(
            OpenOrder(
                order_id=row.ident("algoId"),
                symbol=row.text("symbol"),
                side=_side(row),
                type=row.text("orderType"),
                quantity=quantity,
                price=price if price else None,
                reduce_only=row.opt_flag("reduceOnly") or False,
                time_ms=row.opt_integer("createTime"),
                position_side=row.opt_text("positionSide"),
                close_position=row.opt_flag("closePosition") or False,
                algo=True,
            )
        )
    return orders


def parse_max_notional(rows: Sequence[Any], *, endpoint: str) -> dict[str, Decimal]:
    """``maxNotionalValue`` per symbol from ``symbolConfig`` rows (the maximum position
    notional at the symbol's current leverage; Binance -2027 above it)."""
    found = {}
    for i, item in enumerate(rows):
        row = Fields.of(item, endpoint=endpoint, path=f"[{i}]")
        value = row.opt_non_negative_amount("maxNotionalValue")
        if value is not None and value > 0:
            found[row.text("symbol")] = value
    return found


def account_symbols(body: Fields) -> list[str]:
    """Symbols of a v3 account's rows: those with a position or open orders."""
    return sorted({row.text("symbol") for row in body.objects("positions")})


def per_symbol(symbols: Sequence[str] | None) -> bool:
    """Whether reading ``symbols`` one call each (weight 1) is cheaper than one all-symbols
    call (weight 40): at most ``OPEN_ORDERS_PER_SYMBOL_MAX`` of them."""
    return symbols is not None and len(symbols) <= OPEN_ORDERS_PER_SYMBOL_MAX


async def fetch_open_orders(client: MbxClient, symbols: Sequence[str] | None) -> list[OpenOrder]:
    """Open orders of ``symbols`` (one call of weight 1 each), or of every symbol (``None``,
    or more than ``OPEN_ORDERS_PER_SYMBOL_MAX``: one call of weight 40)."""
    if symbols is not None and per_symbol(symbols):
        orders: list[OpenOrder] = []
        for symbol in symbols:
            rows = await client.get_array(
                OPEN_ORDERS_PATH, weight=OPEN_ORDERS_SYMBOL_WEIGHT, params=(("symbol", symbol),)
            )
            orders.extend(parse_open_orders(rows))
        return orders
    rows = await client.get_array(OPEN_ORDERS_PATH, weight=OPEN_ORDERS_ALL_WEIGHT)
    return parse_open_orders(rows)


async def fetch_open_algo_orders(
    client: MbxClient, symbols: Sequence[str] | None
) -> list[OpenOrder]:
    """Open algo (conditional) orders of ``symbols`` (weight 1 each), or of every symbol
    (``None``, or too many symbols: one call of weight 40)."""
    if symbols is not None and per_symbol(symbols):
        orders: list[OpenOrder] = []
        for symbol in symbols:
            rows = await client.get_array(
                OPEN_ALGO_ORDERS_PATH,
                weight=OPEN_ALGO_ORDERS_SYMBOL_WEIGHT,
                params=(("symbol", symbol),),
            )
            orders.extend(parse_open_algo_orders(rows))
        return orders
    rows = await client.get_array(OPEN_ALGO_ORDERS_PATH, weight=OPEN_ALGO_ORDERS_ALL_WEIGHT)
    return parse_open_algo_orders(rows)


class BinanceUsdmMarket:
    """The market rules of one Binance USDⓈ-M host, read through one account's client (public
    endpoints: no signature, the host's shared weight budget)."""

    rules_weight = EXCHANGE_INFO_WEIGHT
    marks_weight = PREMIUM_INDEX_WEIGHT

    def __init__(self, client: MbxClient) -> None:
        self._client = client

    async def fetch_rules(self) -> MarketRules:
        reply = await self._client._send(
            EXCHANGE_INFO_PATH, weight=EXCHANGE_INFO_WEIGHT, signed=False
        )
        return parse_exchange_info(Fields.of(reply.body, endpoint=EXCHANGE_INFO_PATH))

    async def fetch_marks(self) -> MarkPrices:
        reply = await self._client._send(
            PREMIUM_INDEX_PATH, weight=PREMIUM_INDEX_WEIGHT, signed=False, shape="array"
        )
        body = reply.body
        return parse_premium_index(body if isinstance(body, list) else [])
