"""Binance USD-M market rules (exchangeInfo, premiumIndex) against the documented example
bodies (binance-order-rules.md §2.4), through the real client and transport."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.domain import RateLimit
from app.errors import ExchangeProtocolError
from app.exchanges.binance_usdm import BinanceUsdmClient
from app.exchanges.binance_usdm_market import EXCHANGE_INFO_PATH, PREMIUM_INDEX_PATH
from app.markets.model import Bounds
from tests.unit.exchanges.fakes import (
    CREDENTIALS,
    NOW_MS,
    FakeExchange,
    RecordingGate,
    fixed_clock,
    reply,
)
from tests.unit.exchanges.fakes import fixture as load_fixture

FAPI = "https://fapi.binance.test"


def fixture(name: str) -> Any:
    return load_fixture("binance_usdm", name)


@pytest.fixture
def binance(http: httpx.AsyncClient, gate: RecordingGate) -> BinanceUsdmClient:
    client = BinanceUsdmClient(
        base_url=FAPI, credentials=CREDENTIALS, http=http, gate=gate, options={}
    )
    client.wall_clock_ms = fixed_clock(NOW_MS)
    return client


async def test_exchange_info_gives_every_filter_and_the_order_limits(
    exchange: FakeExchange, binance: BinanceUsdmClient, gate: RecordingGate
) -> None:
    exchange.on(EXCHANGE_INFO_PATH, reply(fixture("exchange_info")))
    rules = await binance.market_source().fetch_rules()
    blz = rules.symbols["BLZUSDT"]
    assert blz.tradable
    assert blz.price == Bounds(Decimal("0.0001"), Decimal(300), Decimal("0.0001"))
    assert blz.lot == Bounds(Decimal(1), Decimal(10000000), Decimal(1))
    assert blz.market_lot == Bounds(Decimal(1), Decimal(590119), Decimal(1))
    assert (blz.min_notional, blz.multiplier_up, blz.multiplier_down) == (
        Decimal("5.0"),
        Decimal("1.1500"),
        Decimal("0.8500"),
    )
    assert (blz.max_orders, blz.max_algo_orders) == (200, 10)
    # The doc example spells the key "OrderType"; it is read like "orderTypes".
    assert blz.order_types is not None
    assert "TRAILING_STOP_MARKET" in blz.order_types
    assert blz.time_in_force == frozenset({"GTC", "IOC", "FOK", "GTX"})
    assert (blz.price_precision, blz.quantity_precision) == (5, 0)
    # ORDERS limits only (REQUEST_WEIGHT is the IP's, handled by the weight budget).
    assert rules.order_limits == (RateLimit(1200, 60.0), RateLimit(300, 10.0))
    # An unknown status is kept verbatim and is not tradable; "0" disables a filter part.
    old = rules.symbols["OLDUSDT"]
    assert (old.status, old.tradable) == ("PENDING_SOMETHING_NEW", False)
    assert old.price == Bounds(None, None, Decimal("0.01"))
    # Public: unsigned, weight 1.
    assert gate.weights == [1]
    assert "signature" not in str(exchange.requests[0].url)


async def test_premium_index_gives_mark_prices_of_every_symbol_in_one_call(
    exchange: FakeExchange, binance: BinanceUsdmClient, gate: RecordingGate
) -> None:
    exchange.on(PREMIUM_INDEX_PATH, reply(fixture("premium_index")))
    marks = await binance.market_source().fetch_marks()
    # A zero mark (a symbol without one yet) is as if absent: never a price of 0.
    assert marks.prices == {"BTCUSDT": Decimal("11793.63104562")}
    assert gate.weights == [10]
    assert "symbol=" not in str(exchange.requests[0].url)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"symbols": [{"symbol": "X", "status": "TRADING", "filters": "no"}]}, "filters"),
        (
            {
                "symbols": [
                    {
                        "symbol": "X",
                        "status": "TRADING",
                        "filters": [{"filterType": "LOT_SIZE", "stepSize": "-1"}],
                    }
                ]
            },
            "stepSize must not be negative",
        ),
        (
            {
                "symbols": [
                    {
                        "symbol": "X",
                        "status": "TRADING",
                        "filters": [{"filterType": "LOT_SIZE", "maxQty": "1E+30"}],
                    }
                ]
            },
            "maxQty is out of the plausible range",
        ),
        (
            {
                "symbols": [
                    {
                        "symbol": "X",
                        "status": "TRADING",
                        "filters": [{"filterType": "MIN_NOTIONAL", "notional": "1E+400"}],
                    }
                ]
            },
            "notional is out of the plausible range",
        ),
        ({"symbols": [{"status": "TRADING"}]}, r"symbols\[0\]\.symbol is missing"),
        ({}, "symbols is missing"),
    ],
)
async def test_a_malformed_exchange_info_fails_the_whole_refresh(
    exchange: FakeExchange, binance: BinanceUsdmClient, body: dict[str, Any], message: str
) -> None:
    exchange.on(EXCHANGE_INFO_PATH, reply(body))
    with pytest.raises(ExchangeProtocolError, match=message):
        await binance.market_source().fetch_rules()


@pytest.mark.parametrize("mark", ["1E-30", "1E+30"])
async def test_an_implausible_mark_price_fails_the_refresh(
    exchange: FakeExchange, binance: BinanceUsdmClient, mark: str
) -> None:
    # A mark of 1E-30 would make any market order's notional and margin look like nothing.
    exchange.on(PREMIUM_INDEX_PATH, reply([{"symbol": "BTCUSDT", "markPrice": mark}]))
    with pytest.raises(ExchangeProtocolError, match="markPrice is out of the plausible range"):
        await binance.market_source().fetch_marks()
