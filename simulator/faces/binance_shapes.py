"""The account model in Binance USD-M's own shapes (``exchanges.md`` §1.6, §2.3).

Binance sends amounts as decimal strings, ``positionAmt`` and ``notional`` signed (negative for
a short, one-way mode ``positionSide: BOTH``), and computes a few totals the generic model does
not carry. Model values are copied as text where Binance has the same field; a value that is
not a decimal is passed through as text rather than failing, so tests can send garbage on
purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from simulator.accounts import AccountState

DEFAULT_LEVERAGE = 20
MAX_NOTIONAL = "1000000"
ACCOUNT_SCOPE = "ACCOUNT"
#: Quote assets recognised at the end of a symbol name (``BTCUSDT`` = BTC / USDT).
QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "BUSD")
#: ``deliveryDate`` of a perpetual on Binance (year 2100).
PERPETUAL_DELIVERY_DATE = 4133404800000


def _text(value: Any, default: str = "0") -> str:
    if value is None:
        return default
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _signed(value: Any, side: Any) -> str:
    number = _decimal(value)
    if side == "SHORT" and number is not None and number > 0:
        return str(-number)
    return _text(value)


def _leverage(value: Any) -> int:
    number = _decimal(value)
    if number is None or number != number.to_integral_value() or number < 1:
        return DEFAULT_LEVERAGE
    return int(number)


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def positions(account: AccountState) -> list[dict[str, Any]]:
    return _dicts(account.account.get("positions"))


def open_order_symbols(account: AccountState) -> list[str]:
    return [
        str(order["symbol"])
        for order in _dicts(account.account.get("openOrders"))
        if "symbol" in order
    ]


def market_symbols(account: AccountState, listed: Iterable[str]) -> list[str]:
    """The scenario's symbols plus any symbol the account holds, orders or is judged on."""
    symbols = list(listed)
    held = [str(position.get("symbol", "")) for position in positions(account)]
    judged = [key for key in account.indicators if key != ACCOUNT_SCOPE]
    for symbol in (*held, *open_order_symbols(account), *judged):
        if symbol and symbol not in symbols:
            symbols.append(symbol)
    return symbols


def trading_allowed(account: AccountState) -> bool:
    """Binance has no ``tradingStatus``: a not-NORMAL account shows as ``canTrade: false``."""
    status = account.status
    return (
        status.get("canTrade") is True
        and status.get("isFuturesTradingEnabled") is True
        and status.get("tradingStatus") == "NORMAL"
    )


def account_config(account: AccountState) -> dict[str, Any]:
    return {
        "feeTier": 0,
        "canTrade": trading_allowed(account),
        "canDeposit": account.status.get("canDeposit") is True,
        "canWithdraw": account.status.get("canWithdraw") is True,
        "dualSidePosition": False,
        "updateTime": 0,  # "reserved, ignore" on Binance, which sends 0
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
    }


def _margins(account: AccountState) -> tuple[str, str]:
    """Position and open-order initial margin: the model carries only their total."""
    position_margin = sum(
        (_decimal(position.get("initialMargin")) or Decimal(0) for position in positions(account)),
        Decimal(0),
    )
    total = _decimal(account.account.get("initialMargin")) or Decimal(0)
    return str(position_margin), str(max(total - position_margin, Decimal(0)))


def totals(account: AccountState) -> dict[str, str]:
    model = account.account
    position_margin, order_margin = _margins(account)
    return {
        "totalInitialMargin": _text(model.get("initialMargin")),
        "totalMaintMargin": _text(model.get("maintenanceMargin")),
        "totalWalletBalance": _text(model.get("walletBalance")),
        "totalUnrealizedProfit": _text(model.get("unrealizedPnl")),
        "totalMarginBalance": _text(model.get("marginBalance")),
        "totalPositionInitialMargin": position_margin,
        "totalOpenOrderInitialMargin": order_margin,
        "totalCrossWalletBalance": _text(model.get("walletBalance")),
        "totalCrossUnPnl": _text(model.get("unrealizedPnl")),
        "availableBalance": _text(model.get("availableBalance")),
        "maxWithdrawAmount": _text(model.get("availableBalance")),
    }


def asset(account: AccountState, *, legacy: bool) -> dict[str, Any]:
    model = account.account
    position_margin, order_margin = _margins(account)
    row: dict[str, Any] = {
        "asset": _text(model.get("asset"), "USDT"),
        "walletBalance": _text(model.get("walletBalance")),
        "unrealizedProfit": _text(model.get("unrealizedPnl")),
        "marginBalance": _text(model.get("marginBalance")),
        "maintMargin": _text(model.get("maintenanceMargin")),
        "initialMargin": _text(model.get("initialMargin")),
        "positionInitialMargin": position_margin,
        "openOrderInitialMargin": order_margin,
        "crossWalletBalance": _text(model.get("walletBalance")),
        "crossUnPnl": _text(model.get("unrealizedPnl")),
        "availableBalance": _text(model.get("availableBalance")),
        "maxWithdrawAmount": _text(model.get("availableBalance")),
    }
    if legacy:
        row["marginAvailable"] = True
    row["updateTime"] = account.account_update_time
    return row


def position_v3(position: dict[str, Any], update_time: int) -> dict[str, Any]:
    side = position.get("side")
    isolated_margin = (
        _text(position.get("initialMargin")) if position.get("marginType") == "ISOLATED" else "0"
    )
    return {
        "symbol": _text(position.get("symbol"), ""),
        "positionSide": "BOTH",
        "positionAmt": _signed(position.get("quantity"), side),
        "unrealizedProfit": _text(position.get("unrealizedPnl")),
        "isolatedMargin": isolated_margin,
        "notional": _signed(position.get("notional"), side),
        "isolatedWallet": isolated_margin,
        "initialMargin": _text(position.get("initialMargin")),
        "maintMargin": _text(position.get("maintenanceMargin")),
        "updateTime": update_time,
    }


def position_v2(symbol: str, position: dict[str, Any], update_time: int) -> dict[str, Any]:
    """A v2 row; ``position`` is empty for a symbol the account does not hold."""
    initial_margin = _text(position.get("initialMargin"))
    return {
        "symbol": symbol,
        "initialMargin": initial_margin,
        "maintMargin": _text(position.get("maintenanceMargin")),
        "unrealizedProfit": _text(position.get("unrealizedPnl")),
        "positionInitialMargin": initial_margin,
        "openOrderInitialMargin": "0",
        "leverage": str(_leverage(position.get("leverage"))),
        "isolated": position.get("marginType") == "ISOLATED",
        "entryPrice": _text(position.get("entryPrice"), "0.0"),
        "maxNotional": MAX_NOTIONAL,
        "bidNotional": "0",
        "askNotional": "0",
        "positionSide": "BOTH",
        "positionAmt": _signed(position.get("quantity"), position.get("side")),
        "updateTime": update_time if position else 0,
    }


def symbol_config(symbol: str, position: dict[str, Any]) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "marginType": _text(position.get("marginType"), "CROSSED"),
        "isAutoAddMargin": "false",  # a string on Binance
        "leverage": _leverage(position.get("leverage")),
        "maxNotionalValue": MAX_NOTIONAL,
    }


def weight_rate_limit(limit: int, window_s: float) -> dict[str, Any]:
    """The ``REQUEST_WEIGHT`` entry of ``exchangeInfo.rateLimits`` for the IP budget."""
    if window_s % 60 == 0:
        return {
            "rateLimitType": "REQUEST_WEIGHT",
            "interval": "MINUTE",
            "intervalNum": int(window_s // 60),
            "limit": limit,
        }
    return {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "SECOND",
        "intervalNum": max(1, round(window_s)),
        "limit": limit,
    }


def market(symbol: str) -> dict[str, Any]:
    """One ``exchangeInfo.symbols`` row: a USDⓈ-margined perpetual, trading."""
    quote = next((q for q in QUOTE_ASSETS if symbol.endswith(q) and len(symbol) > len(q)), "USDT")
    base = symbol[: -len(quote)] if symbol.endswith(quote) else symbol
    return {
        "symbol": symbol,
        "pair": symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_DATE,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": 2,
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01",
                "maxPrice": "1000000",
                "tickSize": "0.01",
            },
            {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
            {"filterType": "MIN_NOTIONAL", "notional": "5"},
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }
