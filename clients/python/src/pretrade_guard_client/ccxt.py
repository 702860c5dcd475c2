"""Guard a ccxt exchange: ``create_order`` asks the guard first and raises ``OrderDenied``
instead of sending a denied order; an allowed order goes to ccxt unchanged.

    exchange = GuardedExchange(ccxt.binanceusdm({...}), guard, account="alpha")
    exchange.load_markets()
    exchange.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, 60000)   # or OrderDenied

``AsyncGuardedExchange`` does the same for ``ccxt.async_support`` exchanges. ccxt itself is
not imported here: any object with ccxt's ``create_order`` works.

Every other attribute reads through to the exchange, except the ones that would place an
order behind the guard's back (``create_limit_buy_order``, ``edit_order``, the raw
``fapiPrivatePostOrder``...): they raise ``AttributeError``; use ``.unguarded`` on purpose.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from pretrade_guard_client.aio import AsyncGuardClient
from pretrade_guard_client.client import GuardClient
from pretrade_guard_client.codes import OrderSide, OrderType, PositionSide
from pretrade_guard_client.models import Decision, Order

#: Maps a ccxt unified symbol to the guard's symbol; overrides the built-in mapping.
SymbolMapper = Callable[[Any, str], str]

_SIDES = {"buy": OrderSide.BUY, "sell": OrderSide.SELL}
# Order-placing entry points that would skip the guard (snake and camel case, ccxt's
# implicit REST methods included), matched on the lower-cased name without underscores.
_BYPASS_PREFIXES = ("create", "edit")
_BYPASS_PARTS = ("postorder", "putorder", "postbatchorders", "putbatchorders")


def guard_symbol(exchange: Any, symbol: str) -> str:
    """The exchange's market id of a ccxt unified symbol (``BTC/USDT:USDT`` -> ``BTCUSDT``).

    With markets loaded (``exchange.load_markets()``) the market's ``id`` is used: exact for
    every market the exchange lists. Without them, or for a symbol not listed, the fallback
    joins base and quote (``BTC/USDT:USDT`` -> ``BTCUSDT``) and refuses what it cannot map
    (dated futures, options): load the markets, or pass ``symbol_mapper``.
    """
    markets = getattr(exchange, "markets", None)
    if isinstance(markets, Mapping) and symbol in markets:
        market_id = markets[symbol].get("id")
        if isinstance(market_id, str) and market_id:
            return market_id
    if "/" not in symbol:
        return symbol.upper()  # already an exchange id, e.g. "BTCUSDT"
    pair, _, settle = symbol.partition(":")
    base, _, quote = pair.partition("/")
    if "-" in settle or not base or not quote:
        raise ValueError(
            f"cannot map {symbol!r} to the exchange's symbol without its market: "
            "call exchange.load_markets() first, or pass symbol_mapper"
        )
    return (base + quote).upper()


@dataclass(frozen=True, slots=True)
class OrderMapping:
    """How ccxt's ``create_order`` arguments become the guard's ``Order``.

    By default (``order_details=True``) the order's ``type``, ``positionSide``,
    ``stopPrice``, ``timeInForce`` and ``closePosition`` are sent too, so the guard judges
    the order the exchange will see (position mode, tick, step, allowed types...).
    ``order_details=False`` is for a guard older than those fields (0.1): only symbol,
    side, quantity, price and ``reduce_only`` are sent, and a hedge-mode close
    (``positionSide`` ``LONG`` with a sell, ``SHORT`` with a buy) is sent as
    ``reduce_only``, which is what it means.
    """

    account: str
    order_details: bool = True
    symbol_mapper: SymbolMapper = guard_symbol

    def order(
        self,
        exchange: Any,
        symbol: str,
        type: str,
        side: str,
        amount: object,
        price: object = None,
        params: Mapping[str, Any] | None = None,
    ) -> Order:
        params = params or {}
        order_side = _SIDES.get(str(side).lower())
        if order_side is None:
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        reduce_only = _flag(params, "reduceOnly", "reduce_only")
        position_side = _text(params, "positionSide", "position_side")
        order_type = str(type).upper()
        if order_type == "MARKET":
            price = None  # a price given with a market order is not the order's limit price
        if not self.order_details:
            closes = (position_side, order_side) in (
                (PositionSide.LONG, OrderSide.SELL),
                (PositionSide.SHORT, OrderSide.BUY),
            )
            return Order(
                account=self.account,
                symbol=self.symbol_mapper(exchange, symbol),
                side=order_side,
                quantity=_amount("amount", amount),
                price=_amount("price", price),
                reduce_only=reduce_only or closes,
            )
        close_position = _flag(params, "closePosition", "close_position")
        return Order(
            account=self.account,
            symbol=self.symbol_mapper(exchange, symbol),
            side=order_side,
            quantity=_amount("amount", amount),
            price=_amount("price", price),
            reduce_only=reduce_only,
            type=_order_type(order_type),
            position_side=position_side,
            stop_price=_amount("stopPrice", _first(params, "stopPrice", "stop_price")),
            time_in_force=_text(params, "timeInForce", "time_in_force"),
            close_position=close_position or None,
        )


class GuardedExchange:
    """A synchronous ccxt exchange whose orders are checked by the guard first."""

    def __init__(
        self,
        exchange: Any,
        guard: GuardClient,
        account: str,
        *,
        order_details: bool = True,
        symbol_mapper: SymbolMapper = guard_symbol,
    ) -> None:
        if inspect.iscoroutinefunction(getattr(exchange, "create_order", None)):
            raise TypeError("an async ccxt exchange needs AsyncGuardedExchange")
        self.unguarded = exchange
        self.guard = guard
        self.mapping = OrderMapping(account, order_details, symbol_mapper)

    def check_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: object,
        price: object = None,
        params: Mapping[str, Any] | None = None,
    ) -> Decision:
        """The guard's decision on this order, without sending it."""
        order = self.mapping.order(self.unguarded, symbol, type, side, amount, price, params)
        return self.guard.check(order)

    def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: object,
        price: object = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """ccxt's ``create_order``, sent only when the guard allows it (else ``OrderDenied``;
        ``GuardUnavailable``/``GuardRequestError`` when it cannot say)."""
        self.check_order(symbol, type, side, amount, price, params).raise_for_denial()
        return self.unguarded.create_order(
            symbol, type, side, amount, price, {} if params is None else params
        )

    createOrder = create_order  # noqa: N815 (ccxt's camel-case alias)

    def create_orders(
        self, orders: Sequence[Mapping[str, Any]], params: Mapping[str, Any] | None = None
    ) -> Any:
        """ccxt's ``create_orders``: all checked in one batch; sent only if all are allowed."""
        batch = [_batch_order(self.mapping, self.unguarded, o) for o in orders]
        for decision in self.guard.check_batch(batch):
            decision.raise_for_denial()
        return self.unguarded.create_orders(orders, {} if params is None else params)

    createOrders = create_orders  # noqa: N815

    def __getattr__(self, name: str) -> Any:
        _refuse_bypass(name)
        return getattr(self.unguarded, name)


class AsyncGuardedExchange:
    """An asyncio ccxt exchange (``ccxt.async_support``) checked by the guard first."""

    def __init__(
        self,
        exchange: Any,
        guard: AsyncGuardClient,
        account: str,
        *,
        order_details: bool = True,
        symbol_mapper: SymbolMapper = guard_symbol,
    ) -> None:
        if not inspect.iscoroutinefunction(getattr(exchange, "create_order", None)):
            raise TypeError("a synchronous ccxt exchange needs GuardedExchange")
        self.unguarded = exchange
        self.guard = guard
        self.mapping = OrderMapping(account, order_details, symbol_mapper)

    async def check_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: object,
        price: object = None,
        params: Mapping[str, Any] | None = None,
    ) -> Decision:
        order = self.mapping.order(self.unguarded, symbol, type, side, amount, price, params)
        return await self.guard.check(order)

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: object,
        price: object = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        decision = await self.check_order(symbol, type, side, amount, price, params)
        decision.raise_for_denial()
        return await self.unguarded.create_order(
            symbol, type, side, amount, price, {} if params is None else params
        )

    createOrder = create_order  # noqa: N815

    async def create_orders(
        self, orders: Sequence[Mapping[str, Any]], params: Mapping[str, Any] | None = None
    ) -> Any:
        batch = [_batch_order(self.mapping, self.unguarded, o) for o in orders]
        for decision in await self.guard.check_batch(batch):
            decision.raise_for_denial()
        return await self.unguarded.create_orders(orders, {} if params is None else params)

    createOrders = create_orders  # noqa: N815

    def __getattr__(self, name: str) -> Any:
        _refuse_bypass(name)
        return getattr(self.unguarded, name)


def _refuse_bypass(name: str) -> None:
    flat = name.lower().replace("_", "")
    if flat.startswith(_BYPASS_PREFIXES) or any(part in flat for part in _BYPASS_PARTS):
        raise AttributeError(
            f"{name} would place an order without asking the guard; use create_order, "
            f"or .unguarded.{name} on purpose"
        )


def _batch_order(mapping: OrderMapping, exchange: Any, order: Mapping[str, Any]) -> Order:
    return mapping.order(
        exchange,
        order["symbol"],
        order["type"],
        order["side"],
        order["amount"],
        order.get("price"),
        order.get("params"),
    )


def _first(params: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if params.get(name) is not None:
            return params[name]
    return None


def _flag(params: Mapping[str, Any], *names: str) -> bool:
    value = _first(params, *names)
    if value is None or isinstance(value, bool):
        return bool(value)
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ValueError(f"{names[0]} must be a boolean, got {value!r}")


def _text(params: Mapping[str, Any], *names: str) -> str | None:
    value = _first(params, *names)
    return None if value is None else str(value).upper()


def _order_type(order_type: str) -> OrderType | str:
    try:
        return OrderType(order_type)
    except ValueError:
        return order_type  # the guard judges types this client does not list


def _amount(name: str, value: object) -> Decimal | None:
    """ccxt amounts are floats or strings: read floats through ``str`` (``0.1`` stays 0.1)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name} is not a number: {value!r}") from None
