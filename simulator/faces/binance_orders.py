"""Binance USD-M orders: test, place (accept and rest), query, list and cancel.

There is no matching engine. ``POST /fapi/v1/order/test`` and ``POST /fapi/v1/order`` run the
same checks (``simulator.orders.check_order``) on the account and the market as they are;
an accepted order then rests in the model's ``openOrders`` (MARKET orders are acknowledged and
never rest: nothing fills) and reserves its required margin (``availableBalance`` down,
``initialMargin`` up) until it is cancelled. New orders count against the account's ORDERS
limits (-1015, HTTP 429) and answer ``X-MBX-ORDER-COUNT-10S`` / ``-1M``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from simulator import errors
from simulator.accounts import AccountState
from simulator.endpoint import Answer, Call, Endpoint, Face
from simulator.errors import ApiError
from simulator.faces import binance_shapes as shapes
from simulator.faces.binance import symbols_of
from simulator.orders import Accepted, AccountView, OpenOrder, Rejected, check_order

ACCOUNT_SCOPE = "ACCOUNT"
#: Model field marking an order placed through the Algo Service (``binance_algo``).
ALGO_ID = "algoId"
TEN_SECONDS_MS = 10_000
ONE_MINUTE_MS = 60_000


def _decimal(value: Any) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
    return number if number.is_finite() else Decimal(0)


def _bool(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _open_order(order: Mapping[str, Any]) -> OpenOrder:
    return OpenOrder(
        side=str(order.get("side", "")),
        position_side=str(order.get("positionSide") or "BOTH"),
        type=str(order.get("type", "")),
        quantity=_decimal(order.get("quantity", "0")),
        reduce_only=_bool(order.get("reduceOnly")),
        close_position=_bool(order.get("closePosition")),
        client_order_id=str(order.get("clientOrderId", "")),
    )


def account_view(account: AccountState, symbol: str, now_ms: int) -> AccountView:
    """What ``check_order`` needs of ``account`` for ``symbol``."""
    status = account.status
    indicators = account.current_indicators(now_ms)
    locked = any(
        isinstance(entry, dict) and entry.get("isLocked") is True
        for scope in (symbol, ACCOUNT_SCOPE)
        for entry in indicators.get(scope, [])
    )
    long_qty = short_qty = Decimal(0)
    for position in shapes.positions(account):
        if position.get("symbol") != symbol:
            continue
        quantity = abs(_decimal(position.get("quantity", "0")))
        if position.get("side") == "SHORT":
            short_qty += quantity
        else:
            long_qty += quantity
    return AccountView(
        dual_side_position=account.dual_side_position,
        can_trade=status.get("canTrade") is True and status.get("isFuturesTradingEnabled") is True,
        normal=status.get("tradingStatus") == "NORMAL",
        locked=locked,
        leverage=shapes.leverage(account, symbol),
        available_balance=shapes.available_balance(account),
        long_qty=long_qty,
        short_qty=short_qty,
        open_orders=tuple(
            _open_order(order) for order in account.open_orders() if order.get("symbol") == symbol
        ),
    )


def run_checks(
    call: Call, account: AccountState, params: Mapping[str, str], *, algo_service: bool
) -> Accepted:
    """``check_order`` on the account and market as they are; a rejection raises."""
    symbol = params.get("symbol") or ""
    market = call.state.markets.get(symbol)
    if market is None and symbol and symbol in symbols_of(call, account):
        market = call.state.markets.rules(symbol)  # held or extra symbols: default rules
    result = check_order(
        params,
        market,
        account_view(account, symbol, call.server_time_ms),
        algo_service=algo_service,
        now_ms=call.server_time_ms,
    )
    if isinstance(result, Rejected):
        raise ApiError(result.status, result.code, result.msg)
    return result


def _check(call: Call) -> tuple[AccountState, Accepted]:
    account = call.signed_account()
    algo_service = call.state.scenario.algo_service
    return account, run_checks(call, account, call.params, algo_service=algo_service)


def _text(value: Decimal) -> str:
    return format(value, "f")


def _order_id_text(order: Mapping[str, Any]) -> int | str:
    raw = str(order.get("orderId", ""))
    return int(raw) if raw.isdigit() else raw


def order_row(order: Mapping[str, Any], status: str = "NEW") -> dict[str, Any]:
    """A model order in Binance's order shape."""
    order_type = str(order.get("type", ""))
    row: dict[str, Any] = {
        "orderId": _order_id_text(order),
        "symbol": str(order.get("symbol", "")),
        "status": status,
        "clientOrderId": str(order.get("clientOrderId") or f"sim-{order.get('orderId', '')}"),
        "price": str(order.get("price") or "0"),
        "avgPrice": "0",
        "origQty": str(order.get("quantity") or "0"),
        "executedQty": "0",
        "cumQty": "0",
        "cumQuote": "0",
        "timeInForce": str(order.get("timeInForce") or "GTC"),
        "type": order_type,
        "reduceOnly": _bool(order.get("reduceOnly")),
        "closePosition": _bool(order.get("closePosition")),
        "side": str(order.get("side", "")),
        "positionSide": str(order.get("positionSide") or "BOTH"),
        "stopPrice": str(order.get("stopPrice") or "0"),
        "workingType": str(order.get("workingType") or "CONTRACT_PRICE"),
        "priceProtect": _bool(order.get("priceProtect")),
        "origType": order_type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE",
        "goodTillDate": int(order.get("goodTillDate") or 0),
        "time": order.get("time", 0),
        "updateTime": order.get("updateTime", order.get("time", 0)),
    }
    if order_type == "TRAILING_STOP_MARKET":
        row["activatePrice"] = str(order.get("activationPrice") or "0")
        row["priceRate"] = str(order.get("callbackRate") or "0")
    return row


def model_order(order: Accepted, order_id: int, now_ms: int) -> dict[str, Any]:
    model: dict[str, Any] = {
        "orderId": str(order_id),
        "symbol": order.symbol,
        "side": order.side,
        "type": order.type,
        "price": _text(order.price),
        "quantity": _text(order.quantity),
        "reduceOnly": order.reduce_only,
        "time": now_ms,
        "updateTime": now_ms,
        "positionSide": order.position_side,
        "timeInForce": order.time_in_force,
        "stopPrice": _text(order.stop_price),
        "clientOrderId": order.client_order_id or f"sim-{order_id}",
        "closePosition": order.close_position,
        "workingType": order.working_type,
        "priceProtect": order.price_protect,
        "goodTillDate": order.good_till_date,
        "initialMargin": _text(order.margin),
    }
    if order.callback_rate is not None:
        model["callbackRate"] = _text(order.callback_rate)
    if order.activation_price is not None:
        model["activationPrice"] = _text(order.activation_price)
    return model


def test_order(call: Call) -> dict[str, Any]:
    """The checks of a new order, nothing placed (``orderId`` 0)."""
    _, accepted = _check(call)
    return order_row(model_order(accepted, 0, call.server_time_ms))


def count_new_order(call: Call, account: AccountState) -> tuple[int, int]:
    """Count a new order against the account's ORDERS limits, or answer -1015 (429)."""
    limits = call.state.scenario.order_rate_limits
    now = int(time.monotonic() * 1000)
    stamps = account.order_times
    while stamps and stamps[0] <= now - ONE_MINUTE_MS:
        stamps.popleft()
    last_10s = sum(1 for stamp in stamps if stamp > now - TEN_SECONDS_MS)
    if last_10s >= limits.per_10s:
        raise ApiError(
            429,
            -1015,
            f"Too many new orders; current limit is {limits.per_10s} orders per 10 SECOND.",
        )
    if len(stamps) >= limits.per_minute:
        raise ApiError(
            429,
            -1015,
            f"Too many new orders; current limit is {limits.per_minute} orders per MINUTE.",
        )
    stamps.append(now)
    return last_10s + 1, len(stamps)


def new_order(call: Call) -> Answer:
    account = call.signed_account()
    count_10s, count_1m = count_new_order(call, account)
    account, accepted = _check(call)
    order_id = next(call.state.accounts.order_ids)
    model = model_order(accepted, order_id, call.server_time_ms)
    if accepted.type != "MARKET":
        account.replace_open_orders([*account.open_orders(), model], call.server_time_ms)
        shapes.adjust_margin(account, accepted.margin)
    headers = {"X-MBX-ORDER-COUNT-10S": str(count_10s), "X-MBX-ORDER-COUNT-1M": str(count_1m)}
    return Answer(order_row(model), headers)


def _find(call: Call, account: AccountState) -> dict[str, Any]:
    symbol = call.params.get("symbol") or ""
    if not symbol:
        raise errors.mandatory_param("symbol")
    order_id = call.params.get("orderId") or ""
    client_id = call.params.get("origClientOrderId") or ""
    if not order_id and not client_id:
        raise errors.malformed_param(
            "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!"
        )
    for order in account.open_orders():
        if order.get("symbol") != symbol or order.get(ALGO_ID):
            continue
        if (order_id and str(order.get("orderId")) == order_id) or (
            not order_id and client_id and order.get("clientOrderId") == client_id
        ):
            return order
    raise ApiError(400, -2013, "Order does not exist.")


def query_order(call: Call) -> dict[str, Any]:
    return order_row(_find(call, call.signed_account()))


def release(call: Call, account: AccountState, doomed: list[dict[str, Any]]) -> None:
    """Remove ``doomed`` from the open orders and give back the margin they reserved."""
    ids = {id(order) for order in doomed}
    kept = [order for order in account.open_orders() if id(order) not in ids]
    account.replace_open_orders(kept, call.server_time_ms)
    for order in doomed:
        shapes.adjust_margin(account, -_decimal(order.get("initialMargin", "0")))


def cancel_order(call: Call) -> dict[str, Any]:
    account = call.signed_account()
    try:
        order = _find(call, account)
    except ApiError as exc:
        if exc.code == -2013:
            raise ApiError(400, -2011, "Unknown order sent.") from exc
        raise
    release(call, account, [order])
    return {**order_row(order, "CANCELED"), "updateTime": call.server_time_ms}


def cancel_all(call: Call) -> dict[str, Any]:
    account = call.signed_account()
    symbol = call.params.get("symbol") or ""
    if not symbol:
        raise errors.mandatory_param("symbol")
    if symbol not in symbols_of(call, account):
        raise errors.invalid_symbol()
    doomed = [o for o in account.open_orders() if o.get("symbol") == symbol and not o.get(ALGO_ID)]
    release(call, account, doomed)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def open_orders(call: Call) -> list[dict[str, Any]]:
    account = call.signed_account()
    symbol = call.params.get("symbol") or None
    if symbol is not None and symbol not in symbols_of(call, account):
        raise errors.invalid_symbol()
    return [
        order_row(order)
        for order in account.open_orders()
        if (symbol is None or order.get("symbol") == symbol) and not order.get(ALGO_ID)
    ]


def _signed(
    path: str, method: str, weight: int, handler: Any, without_symbol: int | None = None
) -> Endpoint:
    return Endpoint(
        path,
        Face.BINANCE,
        signed=True,
        weight=weight,
        handler=handler,
        weight_without_symbol=without_symbol,
        method=method,
    )


ENDPOINTS = (
    _signed("/fapi/v1/order/test", "POST", 1, test_order),
    _signed("/fapi/v1/order", "POST", 0, new_order),
    _signed("/fapi/v1/order", "GET", 1, query_order),
    _signed("/fapi/v1/order", "DELETE", 1, cancel_order),
    _signed("/fapi/v1/allOpenOrders", "DELETE", 1, cancel_all),
    _signed("/fapi/v1/openOrders", "GET", 1, open_orders, 40),
)
