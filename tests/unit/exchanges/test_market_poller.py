"""The host's market poller: symbol rules and mark prices reach the store, failures are counted
and keep the last good values ageing (the real Binance client over MockTransport)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
from prometheus_client import CollectorRegistry

from app.exchanges.binance_usdm import BinanceUsdmClient
from app.exchanges.binance_usdm_market import EXCHANGE_INFO_PATH, PREMIUM_INDEX_PATH
from app.markets.store import MarketStore
from app.metrics import Metrics
from app.refresher.budget import WeightBudget
from app.refresher.market import MarketPoller, MarketTiming
from tests.unit.exchanges.fakes import CREDENTIALS, FakeExchange, RecordingGate, fixture, reply

HOST = "binance-usdm@fapi.binance.test"


async def test_rules_and_marks_reach_the_store_and_failures_are_counted(
    exchange: FakeExchange, http: httpx.AsyncClient, gate: RecordingGate
) -> None:
    exchange.on(EXCHANGE_INFO_PATH, reply(fixture("binance_usdm", "exchange_info")))
    exchange.on(
        PREMIUM_INDEX_PATH,
        reply(fixture("binance_usdm", "premium_index")),
        reply({"code": -1001, "msg": "Internal error"}, status=500),
    )
    client = BinanceUsdmClient(
        base_url="https://fapi.binance.test", credentials=CREDENTIALS, http=http, gate=gate
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry, "test")
    store = MarketStore()
    store.register("acc", HOST)
    budget = WeightBudget(HOST, 2400, 0.8, metrics)
    timing = MarketTiming(rules_interval_s=300, marks_interval_s=0.01, backoff_max_s=0.01)
    poller = MarketPoller(HOST, client.market_source(), store, metrics, budget, timing)

    def sample(name: str, kind: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"market": HOST, "kind": kind, **labels})

    assert (
        sample("pretrade_guard_market_refresh_last_success_timestamp_seconds", "mark_prices") == 0
    )
    for _ in range(3):  # rules, marks, then a failing marks refresh
        await poller._step()
        await asyncio.sleep(0.02)
        await poller._step()
    view = store.get("acc")
    assert view is not None
    assert view.rules is not None
    assert "BLZUSDT" in view.rules.value.symbols
    assert view.marks is not None
    assert view.marks.value.prices["BTCUSDT"] == Decimal("11793.63104562")  # the last good one
    assert view.last_error is not None
    assert "mark_prices" in view.last_error
    failures = sample(
        "pretrade_guard_market_refresh_failures_total", "mark_prices", error="server_error"
    )
    assert failures is not None
    assert failures >= 1
    assert (
        sample("pretrade_guard_market_refresh_last_success_timestamp_seconds", "market_rules") or 0
    ) > 0
    # The host's demand (60/300 x 1 + 60/0.01 x 10 weight per minute) is declared while the
    # poller runs, and withdrawn when it stops (fleet mode: its lease went elsewhere).
    assert budget.stretch == 1
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(0)
    assert budget.stretch > 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert budget.stretch == 1
    assert (
        sample("pretrade_guard_market_refresh_last_success_timestamp_seconds", "market_rules") == 0
    )
