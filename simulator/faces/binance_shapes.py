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
from simulator.markets import PERPETUAL_DELIVERY_DATE, MarketSpec, base_and_quote

DEFAULT_LEVERAGE = 20
ACCOUNT_SCOPE = "ACCOUNT"
ONE_WAY_SIDES = ("BOTH",)
HEDGE_SIDES = ("LONG", "SHORT")


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


def _leverage_value(value: Any) -> int | None:
    number = _decimal(value)
    if number is None or number != number.to_integral_value() or number < 1:
        return None
    return int(number)


def _leverage(value: Any) -> int:
    return _leverage_value(value) or DEFAULT_LEVERAGE


def leverage(account: AccountState, symbol: str) -> int:
    """The symbol's leverage: set for the account, else its position's, else 20."""
    if symbol in account.leverage:
        return account.leverage[symbol]
    for position in positions(account):
        if position.get("symbol") == symbol:
            value = _leverage_value(position.get("leverage"))
            if value is not None:
                return value
    return DEFAULT_LEVERAGE


def position_sides(account: AccountState) -> tuple[str, ...]:
    return HEDGE_SIDES if account.dual_side_position else ONE_WAY_SIDES


def position_for(account: AccountState, symbol: str, position_side: str) -> dict[str, Any]:
    """The model position shown in a ``positionSide`` row (empty when there is none).

    One-way mode shows the symbol's position, whichever its side; hedge mode shows the
    position whose ``side`` is the row's side.
    """
    for position in positions(account):
        if position.get("symbol") != symbol:
            continue
        if position_side == "BOTH" or position.get("side") == position_side:
            return position
    return {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def positions(account: AccountState) -> list[dict[str, Any]]:
    return _dicts(account.account.get("positions"))


def open_order_symbols(account: AccountState, *, algo: bool = True) -> list[str]:
    """Symbols of the account's open orders; ``algo=False`` leaves out algo orders (those
    placed through ``POST /fapi/v1/algoOrder``, marked with an ``algoId``)."""
    return [
        str(order["symbol"])
        for order in _dicts(account.account.get("openOrders"))
        if "symbol" in order and (algo or not order.get("algoId"))
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
        "dualSidePosition": account.dual_side_position,
        "updateTime": 0,  # "reserved, ignore" on Binance, which sends 0
        "multiAssetsMargin": account.multi_assets_margin,
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


def position_v3(
    position: dict[str, Any], update_time: int, position_side: str = "BOTH"
) -> dict[str, Any]:
    side = position.get("side")
    isolated_margin = (
        _text(position.get("initialMargin")) if position.get("marginType") == "ISOLATED" else "0"
    )
    return {
        "symbol": _text(position.get("symbol"), ""),
        "positionSide": position_side,
        "positionAmt": _signed(position.get("quantity"), side),
        "unrealizedProfit": _text(position.get("unrealizedPnl")),
        "isolatedMargin": isolated_margin,
        "notional": _signed(position.get("notional"), side),
        "isolatedWallet": isolated_margin,
        "initialMargin": _text(position.get("initialMargin")),
        "maintMargin": _text(position.get("maintenanceMargin")),
        "updateTime": update_time,
    }


def position_v2(
    symbol: str,
    position: dict[str, Any],
    update_time: int,
    *,
    position_side: str = "BOTH",
    lever: int = DEFAULT_LEVERAGE,
    max_notional: str = "0",
) -> dict[str, Any]:
    """A v2 row; ``position`` is empty for a symbol the account does not hold."""
    initial_margin = _text(position.get("initialMargin"))
    return {
        "symbol": symbol,
        "initialMargin": initial_margin,
        "maintMargin": _text(position.get("maintenanceMargin")),
        "unrealizedProfit": _text(position.get("unrealizedPnl")),
        "positionInitialMargin": initial_margin,
        "openOrderInitialMargin": "0",
        "leverage": str(lever),
        "isolated": position.get("marginType") == "ISOLATED",
        "entryPrice": _text(position.get("entryPrice"), "0.0"),
        "maxNotional": max_notional,
        "bidNotional": "0",
        "askNotional": "0",
        "positionSide": position_side,
        "positionAmt": _signed(position.get("quantity"), position.get("side")),
        "updateTime": update_time if position else 0,
    }


def symbol_config(
    symbol: str, position: dict[str, Any], lever: int, spec: MarketSpec
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "marginType": _text(position.get("marginType"), "CROSSED"),
        "isAutoAddMargin": "false",  # a string on Binance
        "leverage": lever,
        "maxNotionalValue": str(spec.max_notional_at(lever)),
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


def market(symbol: str, spec: MarketSpec) -> dict[str, Any]:
    """One ``exchangeInfo.symbols`` row: a USDⓈ-margined contract with all its filters."""
    base, quote = base_and_quote(symbol)
    market_min, market_max, market_step = spec.market_lot
    return {
        "symbol": symbol,
        "pair": symbol,
        "contractType": spec.contract_type,
        "deliveryDate": PERPETUAL_DELIVERY_DATE,
        "onboardDate": 1569398400000,
        "status": spec.status,
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": spec.price_precision,
        "quantityPrecision": spec.quantity_precision,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": str(spec.min_price),
                "maxPrice": str(spec.max_price),
                "tickSize": str(spec.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": str(spec.min_qty),
                "maxQty": str(spec.max_qty),
                "stepSize": str(spec.step_size),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": str(market_min),
                "maxQty": str(market_max),
                "stepSize": str(market_step),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": spec.max_num_orders},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": spec.max_num_algo_orders},
            {"filterType": "MIN_NOTIONAL", "notional": str(spec.min_notional)},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": str(spec.multiplier_up),
                "multiplierDown": str(spec.multiplier_down),
                "multiplierDecimal": str(spec.multiplier_decimal),
            },
        ],
        "orderTypes": list(spec.order_types),
        "timeInForce": list(spec.time_in_force),
        "permissionSets": ["GRID", "COPY"],
    }


def position_risk_v2(
    symbol: str,
    position: dict[str, Any],
    *,
    position_side: str,
    lever: int,
    spec: MarketSpec,
    update_time: int,
) -> dict[str, Any]:
    """A legacy ``/fapi/v2/positionRisk`` row (``leverage`` and ``marginType`` included)."""
    side = position.get("side")
    isolated = position.get("marginType") == "ISOLATED"
    isolated_margin = _text(position.get("initialMargin")) if isolated else "0"
    return {
        "symbol": symbol,
        "positionAmt": _signed(position.get("quantity"), side),
        "entryPrice": _text(position.get("entryPrice"), "0.0"),
        "breakEvenPrice": _text(position.get("entryPrice"), "0.0"),
        "markPrice": _text(position.get("markPrice"), str(spec.mark_price)),
        "unRealizedProfit": _text(position.get("unrealizedPnl")),
        "liquidationPrice": _text(position.get("liquidationPrice")),
        "leverage": str(lever),
        "maxNotionalValue": str(spec.max_notional_at(lever)),
        "marginType": "isolated" if isolated else "cross",
        "isolatedMargin": isolated_margin,
        "isAutoAddMargin": "false",
        "positionSide": position_side,
        "notional": _signed(position.get("notional"), side),
        "isolatedWallet": isolated_margin,
        "updateTime": update_time if position else 0,
    }


def position_risk_v3(
    symbol: str,
    position: dict[str, Any],
    *,
    position_side: str,
    spec: MarketSpec,
    update_time: int,
) -> dict[str, Any]:
    """A ``/fapi/v3/positionRisk`` row: no ``leverage``/``marginType``, ``adl`` an int."""
    side = position.get("side")
    isolated = position.get("marginType") == "ISOLATED"
    isolated_margin = _text(position.get("initialMargin")) if isolated else "0"
    _, quote = base_and_quote(symbol)
    return {
        "symbol": symbol,
        "positionSide": position_side,
        "positionAmt": _signed(position.get("quantity"), side),
        "entryPrice": _text(position.get("entryPrice"), "0.0"),
        "breakEvenPrice": _text(position.get("entryPrice"), "0.0"),
        "markPrice": _text(position.get("markPrice"), str(spec.mark_price)),
        "unRealizedProfit": _text(position.get("unrealizedPnl")),
        "liquidationPrice": _text(position.get("liquidationPrice")),
        "isolatedMargin": isolated_margin,
        "notional": _signed(position.get("notional"), side),
        "marginAsset": quote,
        "isolatedWallet": isolated_margin,
        "initialMargin": _text(position.get("initialMargin")),
        "maintMargin": _text(position.get("maintenanceMargin")),
        "positionInitialMargin": _text(position.get("initialMargin")),
        "openOrderInitialMargin": "0",
        "adl": 0,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": update_time if position else 0,
    }


def balance(account: AccountState) -> dict[str, Any]:
    """One ``/fapi/v2|v3/balance`` row (the model's single asset)."""
    model = account.account
    return {
        "accountAlias": f"Sim{account.id}"[:16],
        "asset": _text(model.get("asset"), "USDT"),
        "balance": _text(model.get("walletBalance")),
        "crossWalletBalance": _text(model.get("walletBalance")),
        "crossUnPnl": _text(model.get("unrealizedPnl")),
        "availableBalance": _text(model.get("availableBalance")),
        "maxWithdrawAmount": _text(model.get("availableBalance")),
        "marginAvailable": True,
        "updateTime": account.account_update_time,
    }


def available_balance(account: AccountState) -> Decimal:
    return _decimal(account.account.get("availableBalance")) or Decimal(0)


def adjust_margin(account: AccountState, amount: Decimal) -> None:
    """Reserve (``amount`` > 0) or release margin: ``availableBalance`` down,
    ``initialMargin`` up. Fields that are not decimals are left alone."""
    model = account.account
    amount = amount.normalize()  # 59.00000000 -> 59: the balance keeps its own decimals
    available = _decimal(model.get("availableBalance"))
    if available is not None:
        model["availableBalance"] = str(available - amount)
    initial = _decimal(model.get("initialMargin"))
    if initial is not None:
        model["initialMargin"] = str(initial + amount)
