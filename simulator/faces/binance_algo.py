"""Binance USD-M Algo Service: conditional orders since 2025-12-02 (``binance-order-rules.md``
§4.2): ``POST /fapi/v1/algoOrder`` (``algoType=CONDITIONAL``, ``triggerPrice`` instead of
``stopPrice``, ``activatePrice``, ``clientAlgoId``), ``GET /fapi/v1/openAlgoOrders``,
``DELETE /fapi/v1/algoOrder`` and ``DELETE /fapi/v1/algoOpenOrders``.

An algo order runs the same checks as ``/fapi/v1/order`` (``simulator.orders``); only the
conditional types are accepted (-1116 otherwise), no margin is checked or reserved before a
trigger, and nothing ever triggers. It rests in the model's ``openOrders`` marked with its
``algoId``: it counts toward MAX_NUM_ORDERS and MAX_NUM_ALGO_ORDERS, and is listed by
``openAlgoOrders`` only (not by ``openOrders``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator import errors
from simulator.accounts import AccountState
from simulator.endpoint import Answer, Call, Endpoint, Face
from simulator.errors import ApiError
from simulator.faces.binance import symbols_of
from simulator.faces.binance_orders import (
    ALGO_ID,
    count_new_order,
    model_order,
    release,
    run_checks,
)
from simulator.markets import CONDITIONAL_TYPES

CONDITIONAL = "CONDITIONAL"
#: Algo parameter -> the ``/fapi/v1/order`` parameter the checks know.
_RENAMED = {"triggerPrice": "stopPrice", "activatePrice": "activationPrice"}
_DROPPED = frozenset({"algoType", "clientAlgoId", "stopPrice", "activationPrice"})


def _order_params(params: Mapping[str, str]) -> dict[str, str]:
    translated = {name: value for name, value in params.items() if name not in _DROPPED}
    for algo_name, order_name in _RENAMED.items():
        if algo_name in translated:
            translated[order_name] = translated.pop(algo_name)
    if "clientAlgoId" in params:
        translated["newClientOrderId"] = params["clientAlgoId"]
    return translated


def algo_row(order: Mapping[str, Any], status: str = "NEW") -> dict[str, Any]:
    """A resting algo order in Binance's algo shape."""
    order_type = str(order.get("type", ""))
    row: dict[str, Any] = {
        "algoId": int(order.get(ALGO_ID) or 0),
        "clientAlgoId": str(order.get("clientOrderId", "")),
        "algoType": CONDITIONAL,
        "orderType": order_type,
        "symbol": str(order.get("symbol", "")),
        "side": str(order.get("side", "")),
        "positionSide": str(order.get("positionSide") or "BOTH"),
        "timeInForce": str(order.get("timeInForce") or "GTC"),
        "quantity": str(order.get("quantity") or "0"),
        "algoStatus": status,
        "triggerPrice": str(order.get("stopPrice") or "0"),
        "price": str(order.get("price") or "0"),
        "icebergQuantity": None,
        "selfTradePreventionMode": "NONE",
        "workingType": str(order.get("workingType") or "CONTRACT_PRICE"),
        "priceMatch": "NONE",
        "closePosition": order.get("closePosition") is True,
        "priceProtect": order.get("priceProtect") is True,
        "reduceOnly": order.get("reduceOnly") is True,
        "createTime": order.get("time", 0),
        "updateTime": order.get("updateTime", order.get("time", 0)),
        "triggerTime": 0,
        "goodTillDate": int(order.get("goodTillDate") or 0),
    }
    if order_type == "TRAILING_STOP_MARKET":
        row["activatePrice"] = str(order.get("activationPrice") or "")
        row["callbackRate"] = str(order.get("callbackRate") or "")
    return row


def new_algo_order(call: Call) -> Answer:
    account = call.signed_account()
    count_10s, count_1m = count_new_order(call, account)
    algo_type = call.params.get("algoType")
    if not algo_type:
        raise errors.mandatory_param("algoType")
    if algo_type != CONDITIONAL:
        raise ApiError(400, -1130, "Data sent for parameter 'algoType' is not valid.")
    if call.params.get("type") and call.params["type"] not in CONDITIONAL_TYPES:
        raise ApiError(400, -1116, "Invalid orderType.")
    params = _order_params(call.params)
    accepted = run_checks(call, account, params, algo_service=False)
    algo_id = next(call.state.accounts.order_ids)
    model = model_order(accepted, algo_id, call.server_time_ms)
    model[ALGO_ID] = str(algo_id)
    model["initialMargin"] = "0"  # nothing reserved before a trigger
    account.replace_open_orders([*account.open_orders(), model], call.server_time_ms)
    headers = {"X-MBX-ORDER-COUNT-10S": str(count_10s), "X-MBX-ORDER-COUNT-1M": str(count_1m)}
    return Answer(algo_row(model), headers)


def _algo_orders(account: AccountState, symbol: str | None) -> list[dict[str, Any]]:
    return [
        order
        for order in account.open_orders()
        if order.get(ALGO_ID) and (symbol is None or order.get("symbol") == symbol)
    ]


def _known_symbol(call: Call, account: AccountState, *, required: bool) -> str | None:
    symbol = call.params.get("symbol") or None
    if symbol is None:
        if required:
            raise errors.mandatory_param("symbol")
        return None
    if symbol not in symbols_of(call, account):
        raise errors.invalid_symbol()
    return symbol


def open_algo_orders(call: Call) -> list[dict[str, Any]]:
    account = call.signed_account()
    symbol = _known_symbol(call, account, required=False)
    return [algo_row(order) for order in _algo_orders(account, symbol)]


def cancel_algo_order(call: Call) -> dict[str, Any]:
    account = call.signed_account()
    algo_id = call.params.get("algoId") or ""
    client_id = call.params.get("clientAlgoId") or ""
    if not algo_id and not client_id:
        raise errors.malformed_param(
            "Param 'algoId' or 'clientAlgoId' must be sent, but both were empty/null!"
        )
    for order in _algo_orders(account, None):
        if (algo_id and order.get(ALGO_ID) == algo_id) or (
            not algo_id and order.get("clientOrderId") == client_id
        ):
            release(call, account, [order])
            return {
                "algoId": int(order[ALGO_ID]),
                "clientAlgoId": str(order.get("clientOrderId", "")),
                "code": "200",
                "msg": "success",
            }
    raise ApiError(400, -2011, "Unknown order sent.")


def cancel_all_algo(call: Call) -> dict[str, Any]:
    account = call.signed_account()
    symbol = _known_symbol(call, account, required=True)
    release(call, account, _algo_orders(account, symbol))
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


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
    _signed("/fapi/v1/algoOrder", "POST", 0, new_algo_order),
    _signed("/fapi/v1/algoOrder", "DELETE", 1, cancel_algo_order),
    _signed("/fapi/v1/openAlgoOrders", "GET", 1, open_algo_orders, 40),
    _signed("/fapi/v1/algoOpenOrders", "DELETE", 1, cancel_all_algo),
)
