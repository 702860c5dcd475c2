"""Fleet mode: kill switches, their audit log and run-time limits, shared through Redis.

Real guard processes, a real simulator and a real ``redis-server`` on loopback.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.fleet import admin, engage, fleet_extra, readyz
from tests.support.guard_fixtures import StartGuard, account_entry, codes, decide_until
from tests.support.processes import SimulatorProcess
from tests.support.redis_server import RedisServer
from tests.support.sim_scenarios import HEALTHY

ORDER = {
    "account": "alpha",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "quantity": "0.001",
    "price": "100",
}

pytestmark = pytest.mark.integration

#: Data freshness is not the subject here; a loaded CI machine must not turn it stale.
RELAXED = {"max_status_age_s": 10.0, "max_snapshot_age_s": 10.0}


def _two_replicas(
    start_guard: StartGuard, sim: SimulatorProcess, redis: RedisServer, **fleet: Any
) -> tuple[Any, Any]:
    accounts = {"alpha": account_entry(sim, HEALTHY)}
    a = start_guard(
        accounts, extra=fleet_extra(redis.url, **fleet), policy=RELAXED, wait_ready=True
    )
    b = start_guard(
        accounts, extra=fleet_extra(redis.url, **fleet), policy=RELAXED, wait_ready=True
    )
    return a, b


def test_a_switch_engaged_on_one_replica_denies_on_the_other_and_release_allows_again(
    start_guard: StartGuard, shared_simulator: SimulatorProcess, redis_server: RedisServer
) -> None:
    a, b = _two_replicas(start_guard, shared_simulator, redis_server)
    with b.client() as bot_b, a.client() as bot_a:
        decide_until(bot_b, ORDER, lambda body: body["allowed"])
        engaged = engage(a, scope="account", account="alpha", reason="desk halt")
        assert engaged.status_code == 201, engaged.text
        switch_id = engaged.json()["id"]
        denied = decide_until(bot_b, ORDER, lambda body: not body["allowed"], timeout=5)
        assert codes(denied) == ["KILL_SWITCH"]
        # B lists it, and its audit log holds A's engage.
        with admin(b) as client:
            listed = client.get("/admin/kill-switches").json()["kill_switches"]
            assert [s["id"] for s in listed] == [switch_id]
            entries = client.get("/admin/audit").json()["entries"]
            assert entries[0]["action"] == "kill_switch.engage"
            assert entries[0]["target"] == switch_id
            # Released on B: A allows again.
            released = client.delete(
                f"/admin/kill-switches/{switch_id}", params={"actor": "ops", "reason": "over"}
            )
            assert released.status_code == 200, released.text
        decide_until(bot_a, ORDER, lambda body: body["allowed"], timeout=5)
    assert readyz(a)["fleet"]["role"] == "all"


def test_run_time_limits_set_on_one_replica_apply_on_the_other(
    start_guard: StartGuard, shared_simulator: SimulatorProcess, redis_server: RedisServer
) -> None:
    a, b = _two_replicas(start_guard, shared_simulator, redis_server)
    with admin(a) as client:
        changed = client.patch(
            "/admin/accounts/alpha/limits",
            json={"actor": "ops", "reason": "tighten", "limits": {"max_order_notional": "0.05"}},
        )
        assert changed.status_code == 200, changed.text
    with b.client() as bot_b:
        denied = decide_until(bot_b, ORDER, lambda body: not body["allowed"], timeout=5)
        assert codes(denied) == ["ORDER_NOTIONAL_LIMIT"]
    with admin(b) as client:
        view = client.get("/admin/accounts/alpha/limits").json()
        assert view["overridden"] is True
        assert view["limits"]["max_order_notional"] == "0.05"
        reset = client.delete(
            "/admin/accounts/alpha/limits", params={"actor": "ops", "reason": "back"}
        )
        assert reset.status_code == 200
    with a.client() as bot_a:
        decide_until(bot_a, ORDER, lambda body: body["allowed"], timeout=5)


def test_admin_writes_answer_503_while_redis_is_down_and_engaged_switches_hold(
    start_guard: StartGuard, shared_simulator: SimulatorProcess, redis_server: RedisServer
) -> None:
    a, b = _two_replicas(start_guard, shared_simulator, redis_server)
    assert engage(a, scope="symbol", account="alpha", symbol="BTCUSDT").status_code == 201
    with b.client() as bot_b:
        decide_until(bot_b, ORDER, lambda body: not body["allowed"], timeout=5)
        redis_server.stop()
        refused = engage(b, scope="global")
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "SHARED_STATE_UNAVAILABLE"
        # Answers keep coming from memory, with the last known switches.
        body = bot_b.get("/can-trade", params=ORDER).json()
        assert codes(body) == ["KILL_SWITCH"]


def test_an_engaged_switch_survives_a_redis_sigkill_and_restart_without_guard_restarts(
    start_guard: StartGuard, shared_simulator: SimulatorProcess, redis_server: RedisServer
) -> None:
    a, b = _two_replicas(start_guard, shared_simulator, redis_server)
    assert engage(a, scope="global").status_code == 201
    with b.client() as bot_b:  # in force on B (propagated) before Redis dies
        decide_until(bot_b, ORDER, lambda body: not body["allowed"], timeout=5)
    redis_server.kill()
    redis_server.start()  # same port, replays the AOF
    with b.client() as bot_b:
        body = bot_b.get("/can-trade", params=ORDER).json()
        assert codes(body) == ["KILL_SWITCH"]
    with admin(b) as client:
        # The fleet converged: B reaches Redis again and sees the switch there.
        switch_ids: list[str] = []

        def listed() -> bool:
            nonlocal switch_ids
            response = client.get("/admin/kill-switches")
            switch_ids = [s["id"] for s in response.json()["kill_switches"]]
            return response.status_code == 200 and readyz(b)["fleet"]["redis"] == "up"

        from tests.support.guard import wait_until

        wait_until(listed, timeout=10, what="replica B back on redis")
        assert len(switch_ids) == 1


def test_an_older_switch_set_restored_in_redis_never_re_enables_trading(
    start_guard: StartGuard, shared_simulator: SimulatorProcess, redis_server: RedisServer
) -> None:
    """A failover to a replica that had not received the engage (simulated: the switch and
    the version vanish from Redis, no release recorded): the replicas keep denying and write
    the switch back."""
    import redis as redis_py

    a, b = _two_replicas(start_guard, shared_simulator, redis_server)
    engaged = engage(a, scope="account", account="alpha")
    assert engaged.status_code == 201
    switch_id = engaged.json()["id"]
    with b.client() as bot_b:
        decide_until(bot_b, ORDER, lambda body: not body["allowed"], timeout=5)
    client = redis_py.Redis.from_url(redis_server.url)
    try:
        client.hdel("test:controls:switches", switch_id)
        client.set("test:controls:version", 0)
        client.publish("test:controls:changed", 0)

        def written_back() -> bool:
            return bool(client.hexists("test:controls:switches", switch_id))

        from tests.support.guard import wait_until

        wait_until(written_back, timeout=10, what="the switch written back to redis")
        assert int(client.get("test:controls:version") or 0) > 1
    finally:
        client.close()
    with a.client() as bot_a, b.client() as bot_b:
        for bot in (bot_a, bot_b):
            assert codes(bot.get("/can-trade", params=ORDER).json()) == ["KILL_SWITCH"]
    assert (a.metric("pretrade_guard_fleet_controls_restored_total") or 0) + (
        b.metric("pretrade_guard_fleet_controls_restored_total") or 0
    ) >= 1
