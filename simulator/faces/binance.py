"""Face 2: Binance USD-M futures (``/fapi``) plus the SAPI key-permissions endpoint.

Same account model as the generic face, in Binance's field names and types
(``simulator.faces.binance_shapes``). The weight budget is per client IP, shared by every key;
weights follow ``exchanges.md`` §1.6 (v2 account at the post-2024-09 weight of 10).
"""

from __future__ import annotations

from typing import Any

from simulator import errors
from simulator.accounts import AccountState
from simulator.endpoint import Call, Endpoint, Face
from simulator.faces import binance_shapes as shapes


def _requested_symbol(call: Call, account: AccountState) -> str | None:
    symbol = call.params.get("symbol") or None
    if symbol is not None and symbol not in shapes.market_symbols(
        account, call.state.scenario.symbols
    ):
        raise errors.invalid_symbol()
    return symbol


def _held(account: AccountState) -> dict[str, dict[str, Any]]:
    return {str(position.get("symbol", "")): position for position in shapes.positions(account)}


def server_time(call: Call) -> dict[str, Any]:
    return {"serverTime": call.server_time_ms}


def exchange_info(call: Call) -> dict[str, Any]:
    """A minimal market list, so off-the-shelf clients (ccxt ``load_markets``) can start.

    Lists the scenario's symbols plus every symbol an account holds, orders or is judged on.
    """
    scenario = call.state.scenario
    symbols = list(scenario.symbols)
    for account in call.state.accounts:
        for symbol in shapes.market_symbols(account, ()):
            if symbol not in symbols:
                symbols.append(symbol)
    return {
        "timezone": "UTC",
        "serverTime": call.server_time_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            shapes.weight_rate_limit(
                scenario.binance_weight_limit_per_minute, scenario.weight_window_s
            )
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [shapes.market(symbol) for symbol in symbols],
    }


def account_config(call: Call) -> dict[str, Any]:
    return shapes.account_config(call.signed_account())


def account_v3(call: Call) -> dict[str, Any]:
    """Totals, assets, and only the symbols with a position or open orders."""
    account = call.signed_account()
    rows = [
        shapes.position_v3(position, account.account_update_time)
        for position in shapes.positions(account)
    ]
    listed = {row["symbol"] for row in rows}
    for symbol in shapes.open_order_symbols(account):
        if symbol not in listed:
            listed.add(symbol)
            rows.append(shapes.position_v3({"symbol": symbol}, account.account_update_time))
    return {
        **shapes.totals(account),
        "assets": [shapes.asset(account, legacy=False)],
        "positions": rows,
    }


def account_v2(call: Call) -> dict[str, Any]:
    """Legacy: account flags too, and a row for every market symbol (zero when not held)."""
    account = call.signed_account()
    held = _held(account)
    config = shapes.account_config(account)
    return {
        "feeTier": config["feeTier"],
        "feeBurn": False,
        "canTrade": config["canTrade"],
        "canDeposit": config["canDeposit"],
        "canWithdraw": config["canWithdraw"],
        "updateTime": 0,
        "multiAssetsMargin": config["multiAssetsMargin"],
        "tradeGroupId": config["tradeGroupId"],
        **shapes.totals(account),
        "assets": [shapes.asset(account, legacy=True)],
        "positions": [
            shapes.position_v2(symbol, held.get(symbol, {}), account.account_update_time)
            for symbol in shapes.market_symbols(account, call.state.scenario.symbols)
        ],
    }


def symbol_config(call: Call) -> list[dict[str, Any]]:
    account = call.signed_account()
    symbol = _requested_symbol(call, account)
    held = _held(account)
    symbols = (
        [symbol]
        if symbol is not None
        else shapes.market_symbols(account, call.state.scenario.symbols)
    )
    return [shapes.symbol_config(name, held.get(name, {})) for name in symbols]


def api_trading_status(call: Call) -> dict[str, Any]:
    """Quantitative-rule indicators; with ``symbol``, only that symbol's entry.

    Healthy accounts answer ``{"indicators": {}, "updateTime": ...}``. Locks whose
    ``plannedRecoverTime`` has passed are cleared before answering.
    """
    account = call.signed_account()
    symbol = _requested_symbol(call, account)
    indicators = account.current_indicators(call.server_time_ms)
    if symbol is not None:
        indicators = {symbol: indicators[symbol]} if symbol in indicators else {}
    return {"indicators": indicators, "updateTime": account.indicators_update_time}


def api_restrictions(call: Call) -> dict[str, Any]:
    return dict(call.signed_account().key_permissions)


ENDPOINTS = (
    Endpoint("/fapi/v1/time", Face.BINANCE, signed=False, weight=1, handler=server_time),
    Endpoint("/fapi/v1/exchangeInfo", Face.BINANCE, signed=False, weight=1, handler=exchange_info),
    Endpoint("/fapi/v1/accountConfig", Face.BINANCE, signed=True, weight=5, handler=account_config),
    Endpoint("/fapi/v3/account", Face.BINANCE, signed=True, weight=5, handler=account_v3),
    Endpoint("/fapi/v2/account", Face.BINANCE, signed=True, weight=10, handler=account_v2),
    Endpoint("/fapi/v1/symbolConfig", Face.BINANCE, signed=True, weight=5, handler=symbol_config),
    Endpoint(
        "/fapi/v1/apiTradingStatus",
        Face.BINANCE,
        signed=True,
        weight=1,
        weight_without_symbol=10,
        handler=api_trading_status,
    ),
    Endpoint(
        "/sapi/v1/account/apiRestrictions",
        Face.BINANCE,
        signed=True,
        weight=1,
        handler=api_restrictions,
    ),
)
