"""Fleet mode: market rules and mark prices per exchange host are leased like accounts.

One refresher polls each host fleet-wide and publishes through the fenced feed; every api
process applies them and never asks the exchange anything. Also: a refresher budgets only
for what it holds. Real guard processes, a real Binance-face simulator, a real redis-server.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import httpx
import pytest

from tests.integration.test_binance_guard import (
    BINANCE_SCENARIO,
    BLOCKED,
    LONG,
    STRETCH,
    binance_entry,
    budget_name,
)
from tests.support.fleet import fleet_extra, readyz
from tests.support.guard import GuardProcess, wait_until
from tests.support.guard_fixtures import StartGuard, codes, decide_until, ready
from tests.support.processes import StartSimulator
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

POLL = {"status_interval_s": 1.5, "snapshot_interval_s": 3.0}
#: Account data must not go stale here (a loaded machine); mark prices may, on purpose, once
#: the refreshers are gone (marks are published every 1 s below).
POLICY = {"max_status_age_s": 60.0, "max_snapshot_age_s": 60.0, "max_mark_price_age_s": 4.0}
#: Long grace: api processes must not fall back to polling during these tests.
NO_FALLBACK: dict[str, Any] = {"fallback_grace_s": 120.0}
MARKETS = {"markets": {"marks_interval_s": 1.0}}

BUY = {"account": "long", "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01", "price": "60000"}
OFF_STEP = {**BUY, "quantity": "0.0105"}


def _exchange_requests(guard: GuardProcess) -> float:
    """Every exchange request this guard process made, by its own metrics."""
    text = httpx.get(f"{guard.base_url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("pretrade_guard_exchange_requests_total{")
    )


def _leases(guard: GuardProcess) -> list[str]:
    held: list[str] = readyz(guard)["fleet"].get("leases", [])
    return held


def _start(start_guard: StartGuard, accounts: dict[str, Any], redis_url: str, role: str,
           **extra: Any) -> GuardProcess:  # fmt: skip
    fleet = fleet_extra(redis_url, role, **NO_FALLBACK)
    return start_guard(accounts, poll=POLL, policy=POLICY, extra={**fleet, **MARKETS, **extra})


def test_one_refresher_polls_the_hosts_market_rules_and_every_api_process_applies_them(
    start_simulator: StartSimulator, start_guard: StartGuard, redis_server: RedisServer
) -> None:
    sim = start_simulator(BINANCE_SCENARIO)
    host = budget_name(sim)
    accounts = {"long": binance_entry(sim, LONG)}
    apis = [_start(start_guard, accounts, redis_server.url, "api") for _ in range(3)]
    # No refresher yet: the api processes wait for the host's market rules from Redis and
    # ask the exchange nothing (they used to poll exchangeInfo and premiumIndex themselves).
    waiting = f"market rules of {host} from redis"

    def waits_for_market_rules(guard: GuardProcess) -> bool:
        return waiting in readyz(guard)["fleet"]["waiting_for"]

    for api in apis:
        wait_until(
            partial(waits_for_market_rules, api),
            timeout=10,
            what="readyz naming the market rules it waits for",
        )
        assert not ready(api)
    assert sim.control.request_count() == 0

    refreshers = [_start(start_guard, accounts, redis_server.url, "refresher") for _ in range(3)]
    for api in apis:
        wait_until(partial(ready, api), timeout=20, what="api replica ready")
    item = f"market:{host}"
    wait_until(
        lambda: sum(_leases(r).count(item) for r in refreshers) == 1,
        timeout=10,
        what="one refresher holding the host's lease",
    )
    # Order-level rules (exchangeInfo filters, mark prices) decide on every replica.
    for api in apis:
        with api.client() as bot:
            assert decide_until(bot, BUY, lambda body: body["allowed"])["allowed"]
            off = bot.get("/can-trade", params=OFF_STEP).json()
            assert not off["allowed"]
            assert "QUANTITY_NOT_ON_STEP" in codes(off)
    # The exchange was asked only by refreshers; mark prices keep coming (1 s) with no
    # api process asking.
    sim.control.clear_requests()
    wait_until(
        lambda: sim.control.request_count(path="/fapi/v1/premiumIndex") >= 2,
        timeout=15,
        what="mark prices polled",
    )
    assert [_exchange_requests(api) for api in apis] == [0, 0, 0]
    assert sum(_exchange_requests(r) for r in refreshers) > 0

    # Every refresher gone: the api processes' data ages from the exchange's answer, so
    # orders needing mark prices deny once they are older than the policy allows (no api
    # process starts polling: the grace is long).
    for refresher in refreshers:
        refresher.stop()
    for api in apis:
        with api.client() as bot:
            body = decide_until(
                bot, BUY, lambda b: "MARKET_RULES_UNAVAILABLE" in codes(b), timeout=15
            )
            assert not body["allowed"]
    assert [_exchange_requests(api) for api in apis] == [0, 0, 0]


def test_a_refresher_budgets_for_the_leases_it_holds_not_every_configured_account(
    start_simulator: StartSimulator, start_guard: StartGuard, redis_server: RedisServer
) -> None:
    """A tiny weight target stretches poll intervals; the stretch is the demand of what the
    refresher polls over what the budget sustains. Two refreshers splitting the items
    (two accounts and the host's market data) must split the demand: their stretches add
    up to the one of a refresher holding everything. (They used to both budget for all.)"""
    sim = start_simulator(BINANCE_SCENARIO)
    budget = budget_name(sim)
    accounts = {"long": binance_entry(sim, LONG), "blocked": binance_entry(sim, BLOCKED)}
    tiny = {"budget": {"weight_target_fraction": 0.01}}
    items = sorted(["blocked", "long", f"market:{budget}"])
    first = _start(start_guard, accounts, redis_server.url, "refresher", **tiny)
    wait_until(lambda: _leases(first) == items, timeout=10, what="one refresher holding all")
    alone = first.metric(STRETCH, {"budget": budget})
    assert alone is not None
    assert alone > 1

    second = _start(start_guard, accounts, redis_server.url, "refresher", **tiny)
    wait_until(
        lambda: sorted(_leases(first) + _leases(second)) == items and bool(_leases(second)),
        timeout=15,
        what="the items split over two refreshers",
    )

    def split() -> tuple[float, float]:
        a = first.metric(STRETCH, {"budget": budget}) or 0.0
        b = second.metric(STRETCH, {"budget": budget}) or 0.0
        return a, b

    wait_until(lambda: sum(split()) == pytest.approx(alone), timeout=10, what="the demand split")
    a, b = split()
    assert a < alone
    assert b < alone


def test_the_outage_fallback_polls_the_hosts_market_data_too(
    start_simulator: StartSimulator, start_guard: StartGuard, redis_server: RedisServer
) -> None:
    """No live refresher for longer than the grace (3 s): the api process polls by itself,
    the host's market rules and mark prices included, so orders needing them decide again;
    a refresher back, it stops."""
    sim = start_simulator(BINANCE_SCENARIO)
    accounts = {"long": binance_entry(sim, LONG)}
    refresher = _start(start_guard, accounts, redis_server.url, "refresher")
    api = start_guard(
        accounts,
        poll=POLL,
        policy=POLICY,
        extra={**fleet_extra(redis_server.url, "api"), **MARKETS},
        wait_ready=True,
    )
    with api.client() as bot:
        decide_until(bot, BUY, lambda body: body["allowed"])
        assert _exchange_requests(api) == 0
        refresher.stop()
        wait_until(
            lambda: readyz(api)["fleet"]["fallback_polling"], timeout=20, what="fallback polling"
        )
        # Its own mark-price requests (symbol rules, still fresh, are due later: the fallback
        # resumes from the published data's age), and decisions on fresh marks again.
        wait_until(lambda: _requests_to(api, "premiumIndex") > 1, timeout=20, what="marks polled")
        decide_until(bot, BUY, lambda body: body["allowed"], timeout=20)


def _requests_to(guard: GuardProcess, endpoint: str) -> float:
    text = httpx.get(f"{guard.base_url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("pretrade_guard_exchange_requests_total{") and endpoint in line
    )
