"""Binance USD-M account modes: position mode, multi-assets mode and leverage per symbol.

``GET`` answers the account's current setting (weight 30 each, ``binance-order-rules.md``
§4.1); ``POST`` changes it with Binance's refusals: position mode -4059 (no change), -4067
(open orders), -4068 (a position); multi-assets mode -4171 (no change), -4170 (open orders),
-4167 (an isolated position when turning it on); leverage -4028 (above the symbol's first
bracket, or not an integer in 1..125). The same settings are in ``accountConfig`` and
``symbolConfig``; the control API can set them without these refusals.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from simulator import errors
from simulator.accounts import AccountState
from simulator.endpoint import Call, Endpoint, Face
from simulator.errors import ApiError
from simulator.faces import binance_shapes as shapes
from simulator.faces.binance import symbols_of

SUCCESS = {"code": 200, "msg": "success"}
MAX_LEVERAGE = 125


def _flag(call: Call, name: str) -> bool:
    raw = call.params.get(name, "").lower()
    if raw not in ("true", "false"):
        raise errors.mandatory_param(name)
    return raw == "true"


def _has_positions(account: AccountState) -> bool:
    for position in shapes.positions(account):
        try:
            if Decimal(str(position.get("quantity", "0"))) != 0:
                return True
        except InvalidOperation:
            return True  # not a number: assume something is held
    return False


def get_position_mode(call: Call) -> dict[str, Any]:
    return {"dualSidePosition": call.signed_account().dual_side_position}


def set_position_mode(call: Call) -> dict[str, Any]:
    account = call.signed_account()
    wanted = _flag(call, "dualSidePosition")
    if wanted == account.dual_side_position:
        raise ApiError(400, -4059, "No need to change position side.")
    if account.open_orders():
        raise ApiError(400, -4067, "Position side cannot be changed if there exists open orders.")
    if _has_positions(account):
        raise ApiError(400, -4068, "Position side cannot be changed if there exists position.")
    account.dual_side_position = wanted
    return dict(SUCCESS)


def get_multi_assets(call: Call) -> dict[str, Any]:
    return {"multiAssetsMargin": call.signed_account().multi_assets_margin}


def set_multi_assets(call: Call) -> dict[str, Any]:
    account = call.signed_account()
    wanted = _flag(call, "multiAssetsMargin")
    if wanted == account.multi_assets_margin:
        raise ApiError(
            400,
            -4171,
            "Adjusted asset mode is currently set and does not need to be adjusted repeatedly.",
        )
    if account.open_orders():
        raise ApiError(
            400, -4170, "Unable to adjust Multi-Assets Mode with open orders in USDⓈ-M Futures."
        )
    if wanted and any(p.get("marginType") == "ISOLATED" for p in shapes.positions(account)):
        raise ApiError(
            400,
            -4167,
            "Unable to adjust to Multi-Assets mode with symbols of USDⓈ-M Futures under "
            "isolated-margin mode.",
        )
    account.multi_assets_margin = wanted
    return dict(SUCCESS)


def set_leverage(call: Call) -> dict[str, Any]:
    account = call.signed_account()
    symbol = call.params.get("symbol") or ""
    if not symbol:
        raise errors.mandatory_param("symbol")
    if symbol not in symbols_of(call, account):
        raise errors.invalid_symbol()
    raw = call.params.get("leverage", "")
    if not raw.isdigit():
        raise errors.mandatory_param("leverage")
    spec = call.state.markets.rules(symbol)
    wanted = int(raw)
    if not 1 <= wanted <= min(MAX_LEVERAGE, spec.max_leverage):
        raise ApiError(400, -4028, f"Leverage {wanted} is not valid")
    account.leverage[symbol] = wanted
    return {
        "leverage": wanted,
        "maxNotionalValue": str(spec.max_notional_at(wanted)),
        "symbol": symbol,
    }


def _signed(path: str, method: str, weight: int, handler: Any) -> Endpoint:
    return Endpoint(path, Face.BINANCE, signed=True, weight=weight, handler=handler, method=method)


ENDPOINTS = (
    _signed("/fapi/v1/positionSide/dual", "GET", 30, get_position_mode),
    _signed("/fapi/v1/positionSide/dual", "POST", 1, set_position_mode),
    _signed("/fapi/v1/multiAssetsMargin", "GET", 30, get_multi_assets),
    _signed("/fapi/v1/multiAssetsMargin", "POST", 1, set_multi_assets),
    _signed("/fapi/v1/leverage", "POST", 1, set_leverage),
)
