"""Fleet mode: one poller per account fleet-wide (leases), failover, and the outage fallback."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.fleet import fleet_extra, readyz
from tests.support.guard import GuardProcess, guard_config, wait_until
from tests.support.guard_fixtures import StartGuard, account_entry, codes, decide_until
from tests.support.operator import crash
from tests.support.processes import SimulatorProcess, free_port
from tests.support.redis_server import RedisServer
from tests.support.sim_scenarios import HEALTHY, RESTRICTED, THIN_MARGIN

pytestmark = pytest.mark.integration

#: Lease TTL 1 s, status every 0.2 s: an account's data may age by about TTL + one poll on a
#: failover; the margin above that (4 s) is for a loaded CI machine.
POLICY = {"max_status_age_s": 5.0, "max_snapshot_age_s": 5.5}


def _accounts(sim: SimulatorProcess) -> dict[str, Any]:
    return {
        "alpha": account_entry(sim, HEALTHY),
        "bravo": account_entry(sim, RESTRICTED),
        "charlie": account_entry(sim, THIN_MARGIN),
    }


def _leases(guard: GuardProcess) -> list[str]:
    leases: list[str] = readyz(guard)["fleet"].get("leases", [])
    return leases


def _exchange_requests(guard: GuardProcess) -> float:
    import httpx

    from tests.support.guard import sample_value

    text = httpx.get(f"{guard.base_url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("pretrade_guard_exchange_requests_total{"):
            total += float(line.rsplit(" ", 1)[1])
    assert sample_value(text, "pretrade_guard_fleet_redis_up", {}) == 1.0
    return total


def test_refreshers_split_the_accounts_and_api_processes_never_poll(
    start_guard: StartGuard,
    shared_simulator: SimulatorProcess,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    accounts = _accounts(shared_simulator)
    extra = {"policy": POLICY}
    r1 = start_guard(accounts, extra=fleet_extra(redis_server.url, "refresher"), **extra)
    # The role from the command line beats the file's (``all`` here).
    config = guard_config(
        accounts, port=free_port(), policy=POLICY, extra=fleet_extra(redis_server.url, "all")
    )
    r2 = GuardProcess(
        config, tmp_path, command=[sys.executable, "-m", "app", "--role", "refresher"]
    )
    r2.start()
    try:
        api = start_guard(accounts, extra=fleet_extra(redis_server.url, "api"), **extra)
        wait_until(
            lambda: (
                sorted(_leases(r1) + _leases(r2)) == ["alpha", "bravo", "charlie"]
                and len(_leases(r1)) in (1, 2)
                and len(_leases(r2)) in (1, 2)
            ),
            timeout=15,
            what="three leases spread over two refreshers",
        )
        assert not set(_leases(r1)) & set(_leases(r2))
        with api.client() as bot:
            body = decide_until(bot, {"account": "alpha"}, lambda b: b["allowed"])
            assert body["status_age_ms"] is not None
            restricted = decide_until(bot, {"account": "bravo"}, lambda b: not b["allowed"])
            assert "ACCOUNT_NOT_NORMAL" in codes(restricted)
        assert _exchange_requests(api) == 0
        # A refresher answers only health and metrics.
        with r1.client() as bot:
            assert bot.get("/can-trade", params={"account": "alpha"}).status_code == 404
        assert readyz(r1)["fleet"]["role"] == "refresher"
        assert readyz(r2)["fleet"]["role"] == "refresher"
    finally:
        r2.stop()


def test_sigkill_of_the_lease_holder_hands_its_accounts_over_without_stale_answers(
    start_guard: StartGuard, shared_simulator: SimulatorProcess, redis_server: RedisServer
) -> None:
    accounts = _accounts(shared_simulator)
    guards = [
        start_guard(accounts, extra=fleet_extra(redis_server.url), policy=POLICY, wait_ready=True)
        for _ in range(3)
    ]
    wait_until(
        lambda: sum(len(_leases(g)) for g in guards) == 3,
        timeout=15,
        what="every account leased",
    )
    holder = next(g for g in guards if "alpha" in _leases(g))
    others = [g for g in guards if g is not holder]
    crash(holder)
    answers: list[dict[str, Any]] = []
    with others[0].client() as bot0, others[1].client() as bot1:
        deadline = time.monotonic() + 4.0  # four lease TTLs
        while time.monotonic() < deadline:
            for bot in (bot0, bot1):
                answers.append(bot.get("/can-trade", params={"account": "alpha"}).json())
            time.sleep(0.05)
    wait_until(
        lambda: any("alpha" in _leases(g) for g in others),
        timeout=10,
        what="another replica holding alpha's lease",
    )
    stale = [a for a in answers if "STALE_DATA" in codes(a)]
    assert stale == [], stale[:3]
    assert all(a["allowed"] for a in answers)


def test_redis_down_past_the_grace_api_replicas_poll_locally_then_converge(
    start_guard: StartGuard, shared_simulator: SimulatorProcess, redis_server: RedisServer
) -> None:
    accounts = _accounts(shared_simulator)
    refresher = start_guard(
        accounts, extra=fleet_extra(redis_server.url, "refresher"), policy=POLICY
    )
    api = start_guard(accounts, extra=fleet_extra(redis_server.url, "api"), policy=POLICY)
    wait_until(lambda: len(_leases(refresher)) == 3, timeout=15, what="leases")
    with api.client() as bot:
        decide_until(bot, {"account": "alpha"}, lambda b: b["allowed"])
        redis_server.stop()
        # Past the grace (3 s) the api replica polls itself: alpha stays fresh and allowed.
        wait_until(
            lambda: readyz(api)["fleet"]["fallback_polling"],
            timeout=15,
            what="fallback polling",
        )
        body = decide_until(bot, {"account": "alpha"}, lambda b: b["allowed"])
        assert body["status_age_ms"] < 5000
        assert api.metric("pretrade_guard_fleet_fallback_polling") == 1.0
        # The refresher stopped polling: it holds no lease it cannot renew.
        wait_until(lambda: _leases(refresher) == [], timeout=10, what="refresher idle")
        redis_server.start()
        wait_until(
            lambda: not readyz(api)["fleet"]["fallback_polling"] and len(_leases(refresher)) == 3,
            timeout=20,
            what="fleet converged: fallback off, leases back",
        )
        decide_until(bot, {"account": "alpha"}, lambda b: b["allowed"])
    assert api.metric("pretrade_guard_fleet_fallback_polling") == 0.0
