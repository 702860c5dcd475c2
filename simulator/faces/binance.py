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
from simulator.faces.binance_market import listed_symbols


def symbols_of(call: Call, account: AccountState) -> list[str]:
    """The market's symbols plus any symbol this account holds, orders or is judged on."""
    return shapes.market_symbols(account, listed_symbols(call))


def _requested_symbol(call: Call, account: AccountState) -> str | None:
    symbol = call.params.get("symbol") or None
    if symbol is not None and symbol not in symbols_of(call, account):
        raise errors.invalid_symbol()
    return symbol


def account_config(call: Call) -> dict[str, Any]:
    return shapes.account_config(call.signed_account())


def account_v3(call: Call) -> dict[str, Any]:
    """Totals, assets, and only the symbols with a position or open orders."""
    account = call.signed_account()
    rows = [
        shapes.position_v3(
            {**shapes.position_for(account, symbol, side), "symbol": symbol},
            account.account_update_time,
            side,
        )
        for symbol in _active_symbols(call, account)
        for side in shapes.position_sides(account)
    ]
    return {
        **shapes.totals(account),
        "assets": [shapes.asset(account, legacy=False)],
        "positions": rows,
    }


def _active_symbols(call: Call, account: AccountState) -> list[str]:
    """Symbols with a position or open orders (what v3 account and positionRisk list); algo
    orders count unless the scenario's ``v3_lists_algo_symbols`` is false."""
    algo = call.state.scenario.v3_lists_algo_symbols
    symbols: list[str] = []
    for symbol in (
        *(str(p.get("symbol", "")) for p in shapes.positions(account)),
        *shapes.open_order_symbols(account, algo=algo),
    ):
        if symbol and symbol not in symbols:
            symbols.append(symbol)
    return symbols


def account_v2(call: Call) -> dict[str, Any]:
    """Legacy: account flags too, and a row for every market symbol (zero when not held)."""
    account = call.signed_account()
    markets = call.state.markets
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
            shapes.position_v2(
                symbol,
                shapes.position_for(account, symbol, side),
                account.account_update_time,
                position_side=side,
                lever=shapes.leverage(account, symbol),
                max_notional=str(
                    markets.rules(symbol).max_notional_at(shapes.leverage(account, symbol))
                ),
            )
            for symbol in symbols_of(call, account)
            for side in shapes.position_sides(account)
        ],
    }


def symbol_config(call: Call) -> list[dict[str, Any]]:
    account = call.signed_account()
    symbol = _requested_symbol(call, account)
    symbols = [symbol] if symbol is not None else symbols_of(call, account)
    return [
        shapes.symbol_config(
            name,
            shapes.position_for(account, name, "BOTH"),
            shapes.leverage(account, name),
            call.state.markets.rules(name),
        )
        for name in symbols
    ]


def position_risk_v2(call: Call) -> list[dict[str, Any]]:
    """Legacy: a row per market symbol (per side in hedge mode), zero when not held."""
    account = call.signed_account()
    symbol = _requested_symbol(call, account)
    symbols = [symbol] if symbol is not None else symbols_of(call, account)
    return [
        shapes.position_risk_v2(
            name,
            shapes.position_for(account, name, side),
            position_side=side,
            lever=shapes.leverage(account, name),
            spec=call.state.markets.rules(name),
            update_time=account.account_update_time,
        )
        for name in symbols
        for side in shapes.position_sides(account)
    ]


def position_risk_v3(call: Call) -> list[dict[str, Any]]:
    """Only symbols with a position or open orders (per side in hedge mode)."""
    account = call.signed_account()
    symbol = _requested_symbol(call, account)
    symbols = [name for name in _active_symbols(call, account) if symbol in (None, name)]
    return [
        shapes.position_risk_v3(
            name,
            shapes.position_for(account, name, side),
            position_side=side,
            spec=call.state.markets.rules(name),
            update_time=account.account_update_time,
        )
        for name in symbols
        for side in shapes.position_sides(account)
    ]


def balance(call: Call) -> list[dict[str, Any]]:
    return [shapes.balance(call.signed_account())]


def leverage_bracket(call: Call) -> dict[str, Any] | list[dict[str, Any]]:
    """An object with ``symbol``, an array of them without (as Binance)."""
    account = call.signed_account()
    symbol = _requested_symbol(call, account)
    markets = call.state.markets
    if symbol is not None:
        return {"symbol": symbol, "brackets": markets.rules(symbol).bracket_rows()}
    return [
        {"symbol": name, "brackets": markets.rules(name).bracket_rows()}
        for name in symbols_of(call, account)
    ]


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
    Endpoint("/fapi/v1/accountConfig", Face.BINANCE, signed=True, weight=5, handler=account_config),
    Endpoint("/fapi/v3/account", Face.BINANCE, signed=True, weight=5, handler=account_v3),
    Endpoint("/fapi/v2/account", Face.BINANCE, signed=True, weight=10, handler=account_v2),
    Endpoint("/fapi/v1/symbolConfig", Face.BINANCE, signed=True, weight=5, handler=symbol_config),
    Endpoint(
        "/fapi/v2/positionRisk", Face.BINANCE, signed=True, weight=10, handler=position_risk_v2
    ),
    Endpoint(
        "/fapi/v3/positionRisk", Face.BINANCE, signed=True, weight=5, handler=position_risk_v3
    ),
    Endpoint("/fapi/v2/balance", Face.BINANCE, signed=True, weight=10, handler=balance),
    Endpoint("/fapi/v3/balance", Face.BINANCE, signed=True, weight=5, handler=balance),
    Endpoint(
        "/fapi/v1/leverageBracket", Face.BINANCE, signed=True, weight=1, handler=leverage_bracket
    ),
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
