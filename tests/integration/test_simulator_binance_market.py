"""The Binance face's market rules, mark prices, modes and hedge-mode rows, over real HTTP.

These are what a bot (and the guard) read to know whether an order would be accepted:
``exchangeInfo`` filters, ``leverageBracket``, ``premiumIndex``, the position and multi-assets
modes, and the per-side rows of a hedge-mode account.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.signing import signed_get, signed_send
from tests.support.sim_control import SimControl
from tests.support.sim_scenarios import HEALTHY, THIN_MARGIN, SimAccount

pytestmark = pytest.mark.integration

WEIGHT = "X-MBX-USED-WEIGHT-1M"


def get(
    exchange: httpx.Client, path: str, who: SimAccount, params: dict[str, str | int] | None = None
) -> httpx.Response:
    return signed_get(exchange, path, who.api_key, who.api_secret, params)


def post(
    exchange: httpx.Client, path: str, who: SimAccount, params: dict[str, str | int]
) -> httpx.Response:
    return signed_send(exchange, "POST", path, who.api_key, who.api_secret, params)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error(response: httpx.Response) -> tuple[int, int]:
    body = response.json()
    assert set(body) == {"code", "msg"}, body
    assert isinstance(body["msg"], str)
    return response.status_code, body["code"]


def filters(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["filterType"]: f for f in row["filters"]}


def test_exchange_info_has_a_realistic_variety_of_symbols(exchange: httpx.Client) -> None:
    body = ok(exchange.get("/fapi/v1/exchangeInfo"))
    rows = {row["symbol"]: row for row in body["symbols"]}
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT", "MATICUSDT"} <= rows.keys()
    btc = filters(rows["BTCUSDT"])
    assert set(btc) == {
        "PRICE_FILTER",
        "LOT_SIZE",
        "MARKET_LOT_SIZE",
        "MAX_NUM_ORDERS",
        "MAX_NUM_ALGO_ORDERS",
        "MIN_NOTIONAL",
        "PERCENT_PRICE",
    }
    # Decimals are strings, counts are numbers, as on Binance.
    assert btc["PRICE_FILTER"]["tickSize"] == "0.10"
    assert btc["MIN_NOTIONAL"] == {"filterType": "MIN_NOTIONAL", "notional": "100"}
    assert btc["MAX_NUM_ORDERS"]["limit"] == 200
    assert btc["PERCENT_PRICE"]["multiplierUp"] == "1.0500"
    ticks = {symbol: filters(row)["PRICE_FILTER"]["tickSize"] for symbol, row in rows.items()}
    steps = {symbol: filters(row)["LOT_SIZE"]["stepSize"] for symbol, row in rows.items()}
    notionals = {symbol: filters(row)["MIN_NOTIONAL"]["notional"] for symbol, row in rows.items()}
    assert len(set(ticks.values())) >= 4
    assert len(set(steps.values())) >= 3
    assert {"100", "20", "5"} <= set(notionals.values())
    doge = filters(rows["DOGEUSDT"])
    assert doge["MARKET_LOT_SIZE"]["maxQty"] == "30000"
    assert doge["LOT_SIZE"]["maxQty"] == "50000000"
    assert "TAKE_PROFIT" not in rows["DOGEUSDT"]["orderTypes"]
    assert rows["MATICUSDT"]["status"] == "SETTLING"
    assert all(row["status"] == "TRADING" for s, row in rows.items() if s != "MATICUSDT")
    assert rows["BTCUSDT"]["timeInForce"] == ["GTC", "IOC", "FOK", "GTX", "GTD"]


def test_premium_index_and_ticker_follow_the_control_api(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    one = exchange.get("/fapi/v1/premiumIndex", params={"symbol": "BTCUSDT"})
    assert one.headers[WEIGHT] == "1"
    assert ok(one)["markPrice"] == "60000.00"
    assert isinstance(ok(one)["nextFundingTime"], int)
    everything = exchange.get("/fapi/v1/premiumIndex")
    assert everything.headers[WEIGHT] == "11"  # 10 without a symbol
    assert {row["symbol"] for row in ok(everything)} >= {"BTCUSDT", "DOGEUSDT", "MATICUSDT"}

    sim_control.patch_market("BTCUSDT", {"markPrice": "61234.5"})
    assert (
        ok(exchange.get("/fapi/v1/premiumIndex", params={"symbol": "BTCUSDT"}))["markPrice"]
        == "61234.5"
    )
    for path in ("/fapi/v1/ticker/price", "/fapi/v2/ticker/price"):
        price = ok(exchange.get(path, params={"symbol": "BTCUSDT"}))
        assert (price["symbol"], price["price"]) == ("BTCUSDT", "61234.5")
        assert isinstance(ok(exchange.get(path)), list)
    unknown = exchange.get("/fapi/v1/premiumIndex", params={"symbol": "NOPEUSDT"})
    assert error(unknown) == (400, -1121)
    assert ok(exchange.get("/fapi/v1/ping")) == {}


def test_control_api_changes_rules_and_refuses_bad_ones(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    sim_control.patch_market("SOLUSDT", {"status": "PENDING_TRADING", "tickSize": "0.05"})
    rows = {row["symbol"]: row for row in ok(exchange.get("/fapi/v1/exchangeInfo"))["symbols"]}
    assert rows["SOLUSDT"]["status"] == "PENDING_TRADING"
    assert filters(rows["SOLUSDT"])["PRICE_FILTER"]["tickSize"] == "0.05"
    bad = httpx.patch(
        f"{exchange.base_url}/_sim/markets/SOLUSDT", json={"markPrice": "-1"}, timeout=5
    )
    assert bad.status_code == 422
    typo = httpx.patch(f"{exchange.base_url}/_sim/markets/SOLUSDT", json={"tick": "1"}, timeout=5)
    assert typo.status_code == 422
    sim_control.reset()
    rows = {row["symbol"]: row for row in ok(exchange.get("/fapi/v1/exchangeInfo"))["symbols"]}
    assert rows["SOLUSDT"]["status"] == "TRADING"


def test_leverage_bracket_object_with_symbol_array_without(exchange: httpx.Client) -> None:
    one = ok(get(exchange, "/fapi/v1/leverageBracket", HEALTHY, {"symbol": "BTCUSDT"}))
    assert one["symbol"] == "BTCUSDT"
    first, second = one["brackets"][:2]
    assert first == {
        "bracket": 1,
        "initialLeverage": 125,
        "notionalCap": 50000,
        "notionalFloor": 0,
        "maintMarginRatio": 0.004,
        "cum": 0,
    }
    assert second["notionalFloor"] == 50000
    assert second["cum"] == 50  # 50000 * (0.005 - 0.004)
    everything = ok(get(exchange, "/fapi/v1/leverageBracket", HEALTHY))
    assert isinstance(everything, list)
    assert {row["symbol"] for row in everything} >= {"BTCUSDT", "ETHUSDT", "DOGEUSDT"}


def test_leverage_sets_the_max_notional_everywhere(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    # HEALTHY's BTCUSDT position is at 10x: 230,000,000 is the cap of the 10x bracket.
    config = ok(get(exchange, "/fapi/v1/symbolConfig", HEALTHY, {"symbol": "BTCUSDT"}))[0]
    assert (config["leverage"], config["maxNotionalValue"]) == (10, "230000000")
    sim_control.patch_binance(HEALTHY.id, {"leverage": {"BTCUSDT": 125}})
    config = ok(get(exchange, "/fapi/v1/symbolConfig", HEALTHY, {"symbol": "BTCUSDT"}))[0]
    assert (config["leverage"], config["maxNotionalValue"]) == (125, "50000")
    risk = ok(get(exchange, "/fapi/v2/positionRisk", HEALTHY, {"symbol": "BTCUSDT"}))[0]
    assert (risk["leverage"], risk["maxNotionalValue"]) == ("125", "50000")
    # The exchange's own endpoint: valid, then above the symbol's maximum (-4028).
    changed = ok(
        post(exchange, "/fapi/v1/leverage", HEALTHY, {"symbol": "ETHUSDT", "leverage": 20})
    )
    assert changed == {"leverage": 20, "maxNotionalValue": "100000000", "symbol": "ETHUSDT"}
    too_high = post(exchange, "/fapi/v1/leverage", HEALTHY, {"symbol": "DOGEUSDT", "leverage": 100})
    assert error(too_high) == (400, -4028)


def test_position_mode_and_multi_assets_mode(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    dual = get(exchange, "/fapi/v1/positionSide/dual", HEALTHY)
    assert dual.headers[WEIGHT] == "30"
    assert ok(dual) == {"dualSidePosition": False}
    # HEALTHY has an open order and a position: Binance refuses the switch, in that order.
    refused = post(exchange, "/fapi/v1/positionSide/dual", HEALTHY, {"dualSidePosition": "true"})
    assert error(refused) == (400, -4067)
    sim_control.patch_account(HEALTHY.id, {"openOrders": []})
    refused = post(exchange, "/fapi/v1/positionSide/dual", HEALTHY, {"dualSidePosition": "true"})
    assert error(refused) == (400, -4068)
    sim_control.patch_account(HEALTHY.id, {"positions": []})
    switched = post(exchange, "/fapi/v1/positionSide/dual", HEALTHY, {"dualSidePosition": "true"})
    assert ok(switched) == {"code": 200, "msg": "success"}
    again = post(exchange, "/fapi/v1/positionSide/dual", HEALTHY, {"dualSidePosition": "true"})
    assert error(again) == (400, -4059)
    assert ok(get(exchange, "/fapi/v1/positionSide/dual", HEALTHY)) == {"dualSidePosition": True}
    assert ok(get(exchange, "/fapi/v1/accountConfig", HEALTHY))["dualSidePosition"] is True

    assert ok(get(exchange, "/fapi/v1/multiAssetsMargin", HEALTHY)) == {"multiAssetsMargin": False}
    on = post(exchange, "/fapi/v1/multiAssetsMargin", HEALTHY, {"multiAssetsMargin": "true"})
    assert ok(on) == {"code": 200, "msg": "success"}
    assert ok(get(exchange, "/fapi/v1/accountConfig", HEALTHY))["multiAssetsMargin"] is True
    again = post(exchange, "/fapi/v1/multiAssetsMargin", HEALTHY, {"multiAssetsMargin": "true"})
    assert error(again) == (400, -4171)
    # THIN_MARGIN holds an isolated position: no multi-assets mode.
    isolated = post(
        exchange, "/fapi/v1/multiAssetsMargin", THIN_MARGIN, {"multiAssetsMargin": "true"}
    )
    assert error(isolated) == (400, -4167)
    malformed = post(
        exchange, "/fapi/v1/multiAssetsMargin", THIN_MARGIN, {"multiAssetsMargin": "1"}
    )
    assert error(malformed) == (400, -1102)


def test_hedge_mode_rows_come_per_side(exchange: httpx.Client, sim_control: SimControl) -> None:
    sim_control.patch_binance(HEALTHY.id, {"dualSidePosition": True})
    btc_long = {
        "symbol": "BTCUSDT",
        "side": "LONG",
        "quantity": "0.5",
        "entryPrice": "60000.0",
        "leverage": 10,
        "notional": "30000.0",
        "marginType": "CROSSED",
    }
    btc_short = {**btc_long, "side": "SHORT", "quantity": "0.2", "notional": "12000.0"}
    sim_control.patch_account(HEALTHY.id, {"positions": [btc_long, btc_short], "openOrders": []})
    assert ok(get(exchange, "/fapi/v1/accountConfig", HEALTHY))["dualSidePosition"] is True
    for path in ("/fapi/v2/positionRisk", "/fapi/v3/positionRisk"):
        rows = ok(get(exchange, path, HEALTHY, {"symbol": "BTCUSDT"}))
        assert [(r["positionSide"], r["positionAmt"]) for r in rows] == [
            ("LONG", "0.5"),
            ("SHORT", "-0.2"),
        ], path
    v3 = ok(get(exchange, "/fapi/v3/account", HEALTHY))["positions"]
    assert [(r["symbol"], r["positionSide"]) for r in v3] == [
        ("BTCUSDT", "LONG"),
        ("BTCUSDT", "SHORT"),
    ]
    v2 = ok(get(exchange, "/fapi/v2/account", HEALTHY))["positions"]
    eth = [(r["positionSide"], r["positionAmt"]) for r in v2 if r["symbol"] == "ETHUSDT"]
    assert eth == [("LONG", "0"), ("SHORT", "0")]
    # One-way again: one BOTH row per symbol.
    sim_control.patch_binance(HEALTHY.id, {"dualSidePosition": False})
    rows = ok(get(exchange, "/fapi/v2/positionRisk", HEALTHY, {"symbol": "ETHUSDT"}))
    assert [r["positionSide"] for r in rows] == ["BOTH"]


def test_position_risk_v3_lists_only_active_symbols(exchange: httpx.Client) -> None:
    rows = ok(get(exchange, "/fapi/v3/positionRisk", HEALTHY))
    assert [(r["symbol"], r["positionSide"]) for r in rows] == [
        ("BTCUSDT", "BOTH"),
        ("ETHUSDT", "BOTH"),  # an open order, no position
    ]
    btc = rows[0]
    assert (btc["positionAmt"], btc["markPrice"], btc["adl"]) == ("0.5", "60300.0", 0)
    assert "leverage" not in btc
    legacy = ok(get(exchange, "/fapi/v2/positionRisk", HEALTHY))
    assert len(legacy) >= 7  # every market symbol
    sol = next(r for r in legacy if r["symbol"] == "SOLUSDT")
    assert (sol["positionAmt"], sol["markPrice"], sol["marginType"]) == ("0", "150.0000", "cross")


def test_balance_v2_and_v3(exchange: httpx.Client) -> None:
    for path, weight in (("/fapi/v2/balance", 10), ("/fapi/v3/balance", 5)):
        response = get(exchange, path, HEALTHY)
        (row,) = ok(response)
        assert row["asset"] == "USDT"
        assert (row["balance"], row["availableBalance"]) == ("10000.00", "7485.00")
        assert row["marginAvailable"] is True
        assert isinstance(row["updateTime"], int)
        assert int(response.headers[WEIGHT]) >= weight


def test_control_refuses_bad_binance_settings(exchange: httpx.Client) -> None:
    base = f"{exchange.base_url}/_sim/accounts/{HEALTHY.id}/binance"
    for body in ({"dualSidePosition": "yes"}, {"leverage": {"BTCUSDT": 0}}, {"hedge": True}):
        assert httpx.patch(base, json=body, timeout=5).status_code == 422, body


def test_order_rate_limits_per_account(exchange: httpx.Client) -> None:
    response = get(exchange, "/fapi/v1/rateLimit/order", HEALTHY)
    assert ok(response) == [
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
    ]
    assert error(exchange.get("/fapi/v1/rateLimit/order")) == (401, -2014)
