"""Binance USD-M public market data: time, ping, exchangeInfo, mark prices and tickers.

Everything comes from the market book (``simulator.markets``): a symbol's rules, status, mark
price and best bid/ask. Public endpoints take no key; weights follow
``binance-order-rules.md`` §1 (premiumIndex 1 with ``symbol``, 10 without).
"""

from __future__ import annotations

from typing import Any

from simulator import errors
from simulator.endpoint import Call, Endpoint, Face
from simulator.faces import binance_shapes as shapes
from simulator.markets import MarketSpec

FUNDING_INTERVAL_MS = 8 * 3600 * 1000
INTEREST_RATE = "0.00010000"


def listed_symbols(call: Call) -> list[str]:
    """The market table's symbols, then the scenario's extra ``symbols``."""
    symbols = list(call.state.markets)
    for symbol in call.state.scenario.symbols:
        if symbol not in symbols:
            symbols.append(symbol)
    return symbols


def all_symbols(call: Call) -> list[str]:
    """Listed symbols plus every symbol an account holds, orders or is judged on."""
    symbols = listed_symbols(call)
    for account in call.state.accounts:
        for symbol in shapes.market_symbols(account, ()):
            if symbol not in symbols:
                symbols.append(symbol)
    return symbols


def _symbols(call: Call) -> list[str] | None:
    """``[symbol]`` when the request names a known one, None for all; -1121 for unknown."""
    symbol = call.params.get("symbol") or None
    if symbol is None:
        return None
    if symbol not in all_symbols(call):
        raise errors.invalid_symbol()
    return [symbol]


def _one_or_all(call: Call, row: Any) -> Any:
    chosen = _symbols(call)
    if chosen is not None:
        return row(chosen[0], call.state.markets.rules(chosen[0]))
    return [row(symbol, call.state.markets.rules(symbol)) for symbol in all_symbols(call)]


def server_time(call: Call) -> dict[str, Any]:
    return {"serverTime": call.server_time_ms}


def ping(call: Call) -> dict[str, Any]:
    return {}


def rate_limits(call: Call) -> list[dict[str, Any]]:
    """The IP weight budget (as configured) and the per-account ORDERS limits."""
    scenario = call.state.scenario
    orders = scenario.order_rate_limits
    return [
        shapes.weight_rate_limit(
            scenario.binance_weight_limit_per_minute, scenario.weight_window_s
        ),
        {
            "rateLimitType": "ORDERS",
            "interval": "MINUTE",
            "intervalNum": 1,
            "limit": orders.per_minute,
        },
        {
            "rateLimitType": "ORDERS",
            "interval": "SECOND",
            "intervalNum": 10,
            "limit": orders.per_10s,
        },
    ]


def order_rate_limits(call: Call) -> list[dict[str, Any]]:
    """``GET /fapi/v1/rateLimit/order``: the account's ORDERS limits (signed)."""
    call.signed_account()
    return [limit for limit in rate_limits(call) if limit["rateLimitType"] == "ORDERS"]


def exchange_info(call: Call) -> dict[str, Any]:
    """Rate limits, assets and every symbol with its status, filters and order types."""
    markets = call.state.markets
    return {
        "timezone": "UTC",
        "serverTime": call.server_time_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": rate_limits(call),
        "exchangeFilters": [],
        "assets": [
            {"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"},
            {"asset": "USDC", "marginAvailable": True, "autoAssetExchange": "-10000"},
            {"asset": "BTC", "marginAvailable": True, "autoAssetExchange": "0"},
        ],
        "symbols": [shapes.market(symbol, markets.rules(symbol)) for symbol in all_symbols(call)],
    }


def _next_funding(now_ms: int) -> int:
    return (now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS


def premium_index(call: Call) -> Any:
    def row(symbol: str, spec: MarketSpec) -> dict[str, Any]:
        mark = str(spec.mark_price)
        return {
            "symbol": symbol,
            "markPrice": mark,
            "indexPrice": mark,
            "estimatedSettlePrice": mark,
            "lastFundingRate": str(spec.last_funding_rate),
            "interestRate": INTEREST_RATE,
            "nextFundingTime": _next_funding(call.server_time_ms),
            "time": call.server_time_ms,
        }

    return _one_or_all(call, row)


def ticker_price(call: Call) -> Any:
    """Last price: the mark price (the simulator has no trades)."""

    def row(symbol: str, spec: MarketSpec) -> dict[str, Any]:
        return {"symbol": symbol, "price": str(spec.mark_price), "time": call.server_time_ms}

    return _one_or_all(call, row)


def book_ticker(call: Call) -> Any:
    def row(symbol: str, spec: MarketSpec) -> dict[str, Any]:
        return {
            "symbol": symbol,
            "bidPrice": str(spec.bid),
            "bidQty": "10",
            "askPrice": str(spec.ask),
            "askQty": "10",
            "time": call.server_time_ms,
            "lastUpdateId": call.server_time_ms,
        }

    return _one_or_all(call, row)


def _public(path: str, weight: int, handler: Any, without_symbol: int | None = None) -> Endpoint:
    return Endpoint(
        path,
        Face.BINANCE,
        signed=False,
        weight=weight,
        handler=handler,
        weight_without_symbol=without_symbol,
    )


ENDPOINTS = (
    _public("/fapi/v1/time", 1, server_time),
    _public("/fapi/v1/ping", 1, ping),
    _public("/fapi/v1/exchangeInfo", 1, exchange_info),
    _public("/fapi/v1/premiumIndex", 1, premium_index, 10),
    _public("/fapi/v1/ticker/price", 1, ticker_price, 2),
    _public("/fapi/v2/ticker/price", 1, ticker_price, 2),
    _public("/fapi/v1/ticker/bookTicker", 2, book_ticker, 5),
    Endpoint(
        "/fapi/v1/rateLimit/order", Face.BINANCE, signed=True, weight=1, handler=order_rate_limits
    ),
)
