"""Proof that the simulator speaks Binance USDⓈ-M: ccxt, a client nobody here wrote, uses it.

ccxt's ``binanceusdm`` is pointed at the simulator by rewriting every ``urls['api']`` entry to
the simulator's address (keeping each entry's path, e.g. ``/fapi/v3``), and its ``fetch`` is
wrapped so a request to anywhere but the simulator fails the test before it is sent. What ccxt
needs beyond the endpoints the guard uses:

* ``fetch_balance()`` calls ``load_markets()`` first, which reads ``GET /fapi/v1/exchangeInfo``
  (options ``fetchMarkets.types == ['linear']`` for binanceusdm); the simulator serves a
  minimal one;
* ``load_markets()`` also calls ``fetch_currencies()``, i.e. the SAPI
  ``/sapi/v1/capital/config/getall`` when keys are set; the option ``fetchCurrencies: False``
  skips it (ccxt then derives currencies from the markets), as the simulator has no wallet API;
* ccxt signs with its own ``recvWindow`` (10000) and parameter order, so this also checks the
  simulator's signature check against an independent implementation.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.processes import SimulatorProcess
from tests.support.sim_scenarios import HEALTHY, QUANT_LOCKED, SimAccount

ccxt = pytest.importorskip("ccxt")

pytestmark = pytest.mark.integration

LOOPBACK = "http://127.0.0.1:"


class LoopbackBinance:
    """A ccxt ``binanceusdm`` client bound to the simulator, and the URLs it fetched."""

    def __init__(self, simulator: SimulatorProcess, account: SimAccount) -> None:
        base = simulator.base_url
        self.fetched: list[str] = []
        self.exchange: Any = ccxt.binanceusdm(
            {
                "apiKey": account.api_key,
                "secret": account.api_secret,
                "timeout": 5000,
                "options": {"fetchCurrencies": False},
            }
        )
        # No proxy from the environment either (requests would honour HTTPS_PROXY & co).
        self.exchange.session.trust_env = False
        api_urls: dict[str, str] = self.exchange.urls["api"]
        for name, url in api_urls.items():
            api_urls[name] = base + urlsplit(url).path
        # Nothing may leave the machine: every API group now points at the simulator.
        assert base.startswith(LOOPBACK)
        for name in ("fapiPublic", "fapiPrivate", "fapiPrivateV2", "fapiPrivateV3", "sapi"):
            assert api_urls[name].startswith(LOOPBACK), name
        assert all(url.startswith(base + "/") for url in api_urls.values())
        assert api_urls["fapiPrivateV3"] == base + "/fapi/v3"
        send = self.exchange.fetch

        def loopback_only(
            url: str, method: str = "GET", headers: Any = None, body: Any = None
        ) -> Any:
            if not url.startswith(base + "/"):
                raise AssertionError(f"ccxt tried to reach {url.split('?')[0]}")
            self.fetched.append(url.split("?")[0])
            return send(url, method, headers, body)

        self.exchange.fetch = loopback_only


@pytest.fixture
def binanceusdm(shared_simulator: SimulatorProcess) -> LoopbackBinance:
    """ccxt on basic.yaml's healthy account (A-1001)."""
    return LoopbackBinance(shared_simulator, HEALTHY)


def test_fetch_balance_reads_the_scenario_usdt_totals(
    binanceusdm: LoopbackBinance, shared_simulator: SimulatorProcess
) -> None:
    exchange, fetched = binanceusdm.exchange, binanceusdm.fetched
    balance = exchange.fetch_balance()
    # basic.yaml A-1001: availableBalance 7485.00, initialMargin 2665.00, marginBalance 10150.00
    # (ccxt: free = availableBalance, used = initialMargin, total = marginBalance).
    assert balance["USDT"] == {"free": 7485.0, "used": 2665.0, "total": 10150.0}
    assert balance["total"]["USDT"] == 10150.0
    info = balance["info"]
    assert info["totalWalletBalance"] == "10000.00"
    assert info["availableBalance"] == "7485.00"
    assert [row["symbol"] for row in info["positions"]] == ["BTCUSDT", "ETHUSDT"]
    # ccxt loaded the markets from the simulator, then read the v3 account (signed, 200).
    assert fetched == [
        shared_simulator.base_url + "/fapi/v1/exchangeInfo",
        shared_simulator.base_url + "/fapi/v3/account",
    ]
    assert "BTC/USDT:USDT" in exchange.markets
    log = shared_simulator.control.requests(path="/fapi/v3/account")
    assert log["by_status"] == {"200": 1}
    assert log["recent"][-1]["api_key"] == HEALTHY.api_key


def test_v2_account_through_ccxt_option(binanceusdm: LoopbackBinance) -> None:
    exchange, fetched = binanceusdm.exchange, binanceusdm.fetched
    balance = exchange.fetch_balance({"useV2": True})
    assert balance["USDT"]["total"] == 10150.0
    assert fetched[-1].endswith("/fapi/v2/account")
    assert balance["info"]["canTrade"] is True


def test_raw_api_trading_status_returns_the_indicators_set_via_control(
    binanceusdm: LoopbackBinance, shared_simulator: SimulatorProcess
) -> None:
    exchange = binanceusdm.exchange
    assert exchange.fapiPrivateGetApiTradingStatus()["indicators"] == {}
    indicators = {
        "ETHUSDT": [
            {
                "indicator": "UFR",
                "value": 0.92,
                "triggerValue": 0.99,
                "isLocked": False,
                "plannedRecoverTime": 0,
            }
        ],
        "ACCOUNT": [
            {
                "indicator": "TMV",
                "value": 10,
                "triggerValue": 1,
                "isLocked": True,
                "plannedRecoverTime": 4102444800000,
            }
        ],
    }
    shared_simulator.control.set_indicators(HEALTHY.id, indicators)
    answer = exchange.fapiPrivateGetApiTradingStatus()
    assert answer["indicators"] == indicators
    assert isinstance(answer["updateTime"], int)
    # With a symbol (weight 1) only that symbol's entry comes back.
    per_symbol = exchange.fapiPrivateGetApiTradingStatus({"symbol": "ETHUSDT"})
    assert per_symbol["indicators"] == {"ETHUSDT": indicators["ETHUSDT"]}


def test_scenario_locks_are_visible_to_ccxt(shared_simulator: SimulatorProcess) -> None:
    exchange = LoopbackBinance(shared_simulator, QUANT_LOCKED).exchange
    btc = exchange.fapiPrivateGetApiTradingStatus({"symbol": "BTCUSDT"})["indicators"]["BTCUSDT"]
    assert btc == [
        {
            "indicator": "DR",
            "value": 0.95,
            "triggerValue": 0.9,
            "isLocked": True,
            "plannedRecoverTime": 4102444800000,
        }
    ]


def test_ccxt_maps_simulator_errors_like_binance_errors(
    binanceusdm: LoopbackBinance, shared_simulator: SimulatorProcess
) -> None:
    exchange = binanceusdm.exchange
    shared_simulator.control.add_fault(
        "invalid_timestamp", path="/fapi/v1/apiTradingStatus", count=1
    )
    with pytest.raises(ccxt.InvalidNonce):  # -1021
        exchange.fapiPrivateGetApiTradingStatus()
    shared_simulator.control.add_fault(
        "ban_418", path="/fapi/v1/apiTradingStatus", count=1, params={"retry_after_s": 5}
    )
    with pytest.raises(ccxt.DDoSProtection):  # 418
        exchange.fapiPrivateGetApiTradingStatus()
    exchange.secret = "not-the-secret"
    with pytest.raises(ccxt.AuthenticationError):  # -1022
        exchange.fapiPrivateGetApiTradingStatus()


BTC = "BTC/USDT:USDT"


def test_ccxt_reads_market_rules_modes_and_positions(binanceusdm: LoopbackBinance) -> None:
    exchange = binanceusdm.exchange
    markets = exchange.load_markets()
    # ccxt takes precision and limits from the simulator's filters.
    assert markets[BTC]["precision"]["price"] == 0.1
    assert markets[BTC]["limits"]["cost"]["min"] == 100.0
    doge = markets["DOGE/USDT:USDT"]["limits"]
    assert (doge["amount"]["max"], doge["market"]["max"]) == (50_000_000.0, 30_000.0)
    assert markets["MATIC/USDT:USDT"]["active"] is False  # SETTLING
    tiers = exchange.fetch_leverage_tiers([BTC])[BTC]
    assert (tiers[0]["maxLeverage"], tiers[0]["maxNotional"]) == (125.0, 50_000.0)
    assert exchange.fetch_position_mode(BTC)["hedged"] is False
    assert exchange.fetch_mark_price(BTC)["markPrice"] == 60000.0
    assert exchange.fetch_funding_rate(BTC)["markPrice"] == 60000.0
    positions = exchange.fetch_positions()
    assert [(p["symbol"], p["contracts"], p["side"]) for p in positions] == [(BTC, 0.5, "long")]
    assert exchange.set_leverage(125, BTC)["maxNotionalValue"] == "50000"
    assert exchange.fetch_leverage(BTC)["longLeverage"] == 125
    assert [o["id"] for o in exchange.fetch_open_orders("ETH/USDT:USDT")] == ["9001"]


def test_ccxt_orders_are_accepted_or_rejected_by_the_simulator_rules(
    binanceusdm: LoopbackBinance,
) -> None:
    """ccxt 4.5's ``create_order(..., {"test": True})`` uses ``order/test`` only on spot; on
    USDⓈ-M it sends ``POST /fapi/v1/order`` (checked below). Both endpoints run the same checks;
    ``order/test`` is called through ccxt's implicit API."""
    exchange, fetched = binanceusdm.exchange, binanceusdm.fetched
    exchange.load_markets()
    # ccxt rounds the price to the simulator's tick (0.1) before sending: accepted.
    accepted = exchange.create_order(BTC, "limit", "buy", 0.01, 59000.04, {"test": True})
    assert (accepted["price"], accepted["status"]) == (59000.0, "open")
    assert fetched[-1].endswith("/fapi/v1/order")
    assert [o["id"] for o in exchange.fetch_open_orders(BTC)] == [accepted["id"]]
    rejected = [
        ((0.001, 60000.0, {}), ccxt.ExchangeError, -4164),  # 60 USDT < 100 minimum notional
        ((0.01, 66000.0, {}), ccxt.BadRequest, -4016),  # above mark * 1.05
        ((1.3, 60000.0, {}), ccxt.ExchangeError, -2019),  # 7,800 margin at 10x > 7,485
        ((0.01, 60000.0, {"positionSide": "LONG"}), ccxt.OperationRejected, -4061),  # one-way
    ]
    for (amount, price, params), error, code in rejected:
        with pytest.raises(error, match=str(code)):
            exchange.create_order(BTC, "limit", "buy", amount, price, {"test": True, **params})
    # The real test endpoint through ccxt's implicit API: same verdicts, nothing rests.
    request = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    tested = exchange.fapiPrivatePostOrderTest({**request, "quantity": "0.01", "price": "60000"})
    assert (tested["status"], tested["orderId"]) == ("NEW", 0)
    with pytest.raises(ccxt.BadRequest, match="-4014"):
        exchange.fapiPrivatePostOrderTest({**request, "quantity": "0.01", "price": "60000.05"})
    assert len(exchange.fetch_open_orders(BTC)) == 1
    exchange.cancel_order(accepted["id"], BTC)
    assert exchange.fetch_open_orders(BTC) == []
    exchange.create_order(BTC, "limit", "sell", 0.01, 61000.0)
    exchange.cancel_all_orders(BTC)
    assert exchange.fetch_open_orders(BTC) == []


def test_ccxt_conditional_orders_go_through_the_algo_service(
    binanceusdm: LoopbackBinance,
) -> None:
    exchange, fetched = binanceusdm.exchange, binanceusdm.fetched
    exchange.load_markets()
    stop = exchange.create_order(
        BTC, "market", "sell", 0.1, None, {"stopLossPrice": 55000, "reduceOnly": True}
    )
    assert fetched[-1].endswith("/fapi/v1/algoOrder")
    assert (stop["triggerPrice"], stop["reduceOnly"], stop["status"]) == (55000.0, True, "open")
    # The long is 0.5: a second reduce-only stop beyond it is refused (-2022).
    with pytest.raises(ccxt.ExchangeError, match="-2022"):
        exchange.create_order(
            BTC, "market", "sell", 0.5, None, {"stopLossPrice": 54000, "reduceOnly": True}
        )
    assert exchange.fetch_open_orders(BTC) == []  # conditional orders are listed apart
    triggers = exchange.fetch_open_orders(BTC, params={"trigger": True})
    assert [order["id"] for order in triggers] == [stop["id"]]
    exchange.cancel_order(stop["id"], BTC, {"trigger": True})
    assert exchange.fetch_open_orders(BTC, params={"trigger": True}) == []
