"""Fleet mode: order-rate limits exact across replicas, and fail closed without Redis."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support.fleet import fleet_extra
from tests.support.guard import BOT_TOKEN, GuardProcess
from tests.support.guard_fixtures import StartGuard, account_entry, codes, decide_until
from tests.support.processes import SimulatorProcess
from tests.support.redis_server import RedisServer
from tests.support.sim_scenarios import HEALTHY, THIN_MARGIN

pytestmark = pytest.mark.integration

LIMIT = 5
#: Data freshness is not the subject here; a loaded CI machine must not turn it stale.
RELAXED = {"max_status_age_s": 10.0, "max_snapshot_age_s": 10.0}
ORDER = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.001", "price": "100"}


def _replicas(
    start_guard: StartGuard, sim: SimulatorProcess, redis: RedisServer, n: int
) -> list[GuardProcess]:
    accounts = {
        "alpha": account_entry(
            sim, HEALTHY, policy={"order_rate": {"max_orders": LIMIT, "window_s": 300}}
        ),
        "charlie": account_entry(sim, THIN_MARGIN),
    }
    return [
        start_guard(accounts, extra=fleet_extra(redis.url), policy=RELAXED, wait_ready=True)
        for _ in range(n)
    ]


def _order(guard: GuardProcess, account: str = "alpha") -> dict[str, Any]:
    response = httpx.get(
        f"{guard.base_url}/can-trade",
        params={"account": account, **ORDER},
        headers={"Authorization": f"Bearer {BOT_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_concurrent_bursts_at_three_replicas_allow_exactly_the_limit(
    start_guard: StartGuard, shared_simulator: SimulatorProcess, redis_server: RedisServer
) -> None:
    guards = _replicas(start_guard, shared_simulator, redis_server, 3)
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(_order, [guards[i % 3] for i in range(36)]))
    allowed = [a for a in answers if a["allowed"]]
    assert len(allowed) == LIMIT, [(codes(a), a["reasons"][:1]) for a in answers][:4]
    denied = [a for a in answers if not a["allowed"]]
    assert all(codes(a) == ["ORDER_RATE_LIMIT"] for a in denied), [codes(a) for a in denied]
    assert all(a["reasons"][0]["observed"] == str(LIMIT) for a in denied)


def test_without_redis_a_rate_limited_order_is_denied_and_others_are_answered(
    start_guard: StartGuard, shared_simulator: SimulatorProcess, redis_server: RedisServer
) -> None:
    (guard,) = _replicas(start_guard, shared_simulator, redis_server, 1)
    with guard.client() as bot:
        decide_until(bot, {"account": "alpha", **ORDER}, lambda body: body["allowed"])
    redis_server.stop()
    body = _order(guard)
    assert not body["allowed"]
    assert codes(body) == ["ORDER_RATE_LIMIT"]
    assert "did not answer" in body["reasons"][0]["message"]
    # An account without a rate limit is answered from memory as before (fresh data is
    # published state the replica already holds; it ages but has not gone stale yet).
    other = _order(guard, "charlie")
    assert "ORDER_RATE_LIMIT" not in codes(other)
    # A bare "may it trade" question is not an order: no counter, no denial for it.
    with guard.client() as bot:
        bare = bot.get("/can-trade", params={"account": "alpha"}).json()
    assert "ORDER_RATE_LIMIT" not in codes(bare)
