"""The Binance USD-M face over real HTTP: Binance's field names and types from the same model."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.signing import now_ms, signed_get
from tests.support.sim_control import SimControl
from tests.support.sim_scenarios import HEALTHY, QUANT_LOCKED, RESTRICTED, THIN_MARGIN, SimAccount

pytestmark = pytest.mark.integration

WEIGHT = "X-MBX-USED-WEIGHT-1M"


def get(
    exchange: httpx.Client, path: str, who: SimAccount, params: dict[str, str | int] | None = None
) -> httpx.Response:
    return signed_get(exchange, path, who.api_key, who.api_secret, params)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def assert_decimal_strings(row: dict[str, Any], names: set[str]) -> None:
    for name in names:
        assert isinstance(row[name], str), name
        float(row[name])


def test_time(exchange: httpx.Client) -> None:
    server_time = ok(exchange.get("/fapi/v1/time"))["serverTime"]
    assert abs(server_time - now_ms()) < 1000


def test_exchange_info_lists_perpetuals_and_the_ip_weight_limit(exchange: httpx.Client) -> None:
    response = exchange.get("/fapi/v1/exchangeInfo")
    body = ok(response)
    assert response.headers[WEIGHT] == "1"
    assert body["rateLimits"] == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
    ]
    rows = {row["symbol"]: row for row in body["symbols"]}
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT"} <= rows.keys()
    btc = rows["BTCUSDT"]
    assert (btc["baseAsset"], btc["quoteAsset"], btc["marginAsset"]) == ("BTC", "USDT", "USDT")
    assert (btc["contractType"], btc["status"]) == ("PERPETUAL", "TRADING")
    assert {f["filterType"] for f in btc["filters"]} >= {"PRICE_FILTER", "LOT_SIZE"}


def test_account_config(exchange: httpx.Client) -> None:
    assert ok(get(exchange, "/fapi/v1/accountConfig", HEALTHY)) == {
        "feeTier": 0,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "dualSidePosition": False,
        "updateTime": 0,
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
    }
    # Binance has no tradingStatus: a RESTRICTED account cannot trade.
    assert ok(get(exchange, "/fapi/v1/accountConfig", RESTRICTED))["canTrade"] is False


def test_v3_account_lists_only_held_or_ordered_symbols(exchange: httpx.Client) -> None:
    body = ok(get(exchange, "/fapi/v3/account", HEALTHY))
    totals = {
        "totalInitialMargin",
        "totalMaintMargin",
        "totalWalletBalance",
        "totalUnrealizedProfit",
        "totalMarginBalance",
        "totalPositionInitialMargin",
        "totalOpenOrderInitialMargin",
        "totalCrossWalletBalance",
        "totalCrossUnPnl",
        "availableBalance",
        "maxWithdrawAmount",
    }
    assert totals <= body.keys()
    assert_decimal_strings(body, totals)
    assert "canTrade" not in body
    assert body["totalMaintMargin"] == "301.50"
    assert body["totalMarginBalance"] == "10150.00"
    asset = body["assets"][0]
    assert (asset["asset"], asset["walletBalance"], asset["unrealizedProfit"]) == (
        "USDT",
        "10000.00",
        "150.00",
    )
    assert "marginAvailable" not in asset
    rows = {row["symbol"]: row for row in body["positions"]}
    assert set(rows) == {"BTCUSDT", "ETHUSDT"}  # position + open order
    btc = rows["BTCUSDT"]
    assert (btc["positionSide"], btc["positionAmt"], btc["notional"]) == ("BOTH", "0.5", "30150.0")
    assert btc["maintMargin"] == "301.50"
    assert "leverage" not in btc
    assert rows["ETHUSDT"]["positionAmt"] == "0"


def test_v3_short_position_is_signed(exchange: httpx.Client) -> None:
    row = ok(get(exchange, "/fapi/v3/account", THIN_MARGIN))["positions"][0]
    assert (row["positionAmt"], row["notional"]) == ("-2.0", "-6680.0")
    assert row["isolatedMargin"] == "116.50"
    assert row["unrealizedProfit"] == "-880.00"


def test_v2_account_is_legacy_and_lists_every_symbol(exchange: httpx.Client) -> None:
    response = get(exchange, "/fapi/v2/account", HEALTHY)
    body = ok(response)
    assert response.headers[WEIGHT] == "10"
    assert body["canTrade"] is True
    assert body["assets"][0]["marginAvailable"] is True
    rows = {row["symbol"]: row for row in body["positions"]}
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT"} <= rows.keys()
    btc = rows["BTCUSDT"]
    assert (btc["leverage"], btc["isolated"], btc["entryPrice"]) == ("10", False, "60000.0")
    assert rows["SOLUSDT"]["positionAmt"] == "0"
    assert rows["SOLUSDT"]["leverage"] == "20"


def test_symbol_config(exchange: httpx.Client) -> None:
    rows = ok(get(exchange, "/fapi/v1/symbolConfig", THIN_MARGIN, {"symbol": "ETHUSDT"}))
    assert rows == [
        {
            "symbol": "ETHUSDT",
            "marginType": "ISOLATED",
            "isAutoAddMargin": "false",
            "leverage": 50,
            # ETHUSDT's brackets: 12,000,000 is the largest cap with initialLeverage >= 50.
            "maxNotionalValue": "12000000",
        }
    ]
    everything = ok(get(exchange, "/fapi/v1/symbolConfig", THIN_MARGIN))
    assert len(everything) >= 5
    unknown = get(exchange, "/fapi/v1/symbolConfig", THIN_MARGIN, {"symbol": "NOPEUSDT"})
    assert (unknown.status_code, unknown.json()["code"]) == (400, -1121)


def test_api_trading_status_weights_and_empty_answer(exchange: httpx.Client) -> None:
    everything = get(exchange, "/fapi/v1/apiTradingStatus", HEALTHY)
    assert everything.headers[WEIGHT] == "10"
    body = ok(everything)
    assert body["indicators"] == {}
    assert isinstance(body["updateTime"], int)
    one = get(exchange, "/fapi/v1/apiTradingStatus", HEALTHY, {"symbol": "BTCUSDT"})
    assert one.headers[WEIGHT] == "11"


def test_api_trading_status_reports_locks(exchange: httpx.Client) -> None:
    indicators = ok(get(exchange, "/fapi/v1/apiTradingStatus", QUANT_LOCKED))["indicators"]
    assert set(indicators) == {"BTCUSDT", "SOLUSDT"}
    lock = indicators["BTCUSDT"][0]
    assert lock == {
        "indicator": "DR",
        "value": 0.95,
        "triggerValue": 0.9,
        "isLocked": True,
        "plannedRecoverTime": 4102444800000,
    }
    only_sol = ok(get(exchange, "/fapi/v1/apiTradingStatus", QUANT_LOCKED, {"symbol": "SOLUSDT"}))
    assert set(only_sol["indicators"]) == {"SOLUSDT"}


def test_a_passed_planned_recover_time_clears_the_lock(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    recover_at = now_ms() + 2_000
    sim_control.set_indicators(
        HEALTHY.id,
        {
            "ACCOUNT": [
                {
                    "indicator": "TMV",
                    "value": 10,
                    "triggerValue": 1,
                    "isLocked": True,
                    "plannedRecoverTime": recover_at,
                }
            ]
        },
    )
    locked = ok(get(exchange, "/fapi/v1/apiTradingStatus", HEALTHY))
    assert locked["indicators"]["ACCOUNT"][0]["isLocked"] is True

    sim_control.set_clock(5_000)  # the exchange's clock passes plannedRecoverTime
    synced = signed_get(
        exchange,
        "/fapi/v1/apiTradingStatus",
        HEALTHY.api_key,
        HEALTHY.api_secret,
        timestamp_ms=now_ms() + 5_000,
    )
    entry = ok(synced)["indicators"]["ACCOUNT"][0]
    assert (entry["isLocked"], entry["plannedRecoverTime"]) == (False, 0)
    assert ok(synced)["updateTime"] >= recover_at
    assert sim_control.account(HEALTHY.id)["indicators"]["ACCOUNT"][0]["isLocked"] is False


def test_api_restrictions_come_from_key_permissions(exchange: httpx.Client) -> None:
    body = ok(get(exchange, "/sapi/v1/account/apiRestrictions", QUANT_LOCKED))
    assert body["enableFutures"] is False
    assert body["enableReading"] is True
    assert body["enableWithdrawals"] is False
    assert isinstance(body["createTime"], int)
    assert ok(get(exchange, "/sapi/v1/account/apiRestrictions", HEALTHY))["enableFutures"] is True


def test_signing_errors_are_the_same_as_generic(exchange: httpx.Client) -> None:
    response = signed_get(exchange, "/fapi/v3/account", HEALTHY.api_key, "wrong")
    assert (response.status_code, response.json()["code"]) == (401, -1022)
    late = signed_get(
        exchange,
        "/fapi/v3/account",
        HEALTHY.api_key,
        HEALTHY.api_secret,
        timestamp_ms=now_ms() - 10_000,
    )
    assert (late.status_code, late.json()["code"]) == (400, -1021)


def test_model_changes_show_on_the_binance_face(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    sim_control.patch_account(HEALTHY.id, {"positions": [], "openOrders": []})
    sim_control.patch_status(HEALTHY.id, {"canTrade": False})
    assert ok(get(exchange, "/fapi/v3/account", HEALTHY))["positions"] == []
    assert ok(get(exchange, "/fapi/v1/accountConfig", HEALTHY))["canTrade"] is False
