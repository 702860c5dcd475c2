"""Fleet mode: how long a kill switch engaged on replica A takes to deny on replica B, and how
long a dead lease holder's account takes to be polled again (failover).

    .venv/bin/python -m bench.fleet_propagation [--rounds 50]

Starts a private redis-server (AOF, appendfsync always), the simulator and two guards in fleet
mode (role ``all``) on loopback. Each round engages a global HALT on A through the admin API
and polls ``GET /can-trade`` on B in a tight loop until it denies; the time from sending the
engage to B's first denial is the propagation time (it includes the engage's own round trip,
so it is an upper bound). The switch is then released on B and the same is measured on A.
Failover: SIGKILL of the process holding an account's lease, then the time until the other
reports holding it (``/readyz``).

``--market-weight-seconds N`` also measures exchange weight on the simulator's Binance face
(two accounts, so market rules and mark prices are polled too): one embedded guard, then a
fleet of three refreshers and three api replicas. The weight is the simulator's own count for
its window (60 s on binance.yaml: give N >= 60 so the window holds only the settled fleet),
read N seconds after every process is ready and the leases have settled.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import httpx

from tests.support.fleet import fleet_extra
from tests.support.guard import ADMIN_TOKEN, BOT_TOKEN, GuardProcess, guard_config, wait_until
from tests.support.guard_fixtures import account_entry
from tests.support.processes import SimulatorProcess, free_port
from tests.support.redis_server import RedisServer
from tests.support.sim_scenarios import (
    BASIC_SCENARIO,
    HEALTHY,
    RESTRICTED,
    SIM_FIXTURES,
    THIN_MARGIN,
    SimAccount,
)

POLICY = {"max_status_age_s": 10.0, "max_snapshot_age_s": 10.0}


def _ready(guard: GuardProcess) -> bool:
    return httpx.get(f"{guard.base_url}/readyz", timeout=2).status_code == 200


def _all_ready(guards: list[GuardProcess]) -> bool:
    return all(_ready(g) for g in guards)


def _until(bot: httpx.Client, allowed: bool) -> float:
    while True:
        body = bot.get("/can-trade", params={"account": "alpha"}).json()
        if body["allowed"] is allowed:
            return time.perf_counter()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument(
        "--weight-seconds",
        type=float,
        default=0,
        help="also count exchange requests over this many seconds: one embedded guard, then "
        "three fleet replicas (role all) on the same accounts",
    )
    parser.add_argument(
        "--market-weight-seconds",
        type=float,
        default=0,
        help="also measure exchange weight (market data included, Binance face) over this "
        "many seconds: one embedded guard, then three refreshers and three api replicas",
    )
    parser.add_argument(
        "--only-weight", action="store_true", help="skip the propagation and failover part"
    )
    args = parser.parse_args()
    if args.weight_seconds > 0:
        _weight(args.weight_seconds)
    if args.market_weight_seconds > 0:
        _market_weight(args.market_weight_seconds)
    if args.only_weight:
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis = RedisServer(work / "redis").start()
        sim = SimulatorProcess(BASIC_SCENARIO, log_path=work / "sim.log").start()
        guards: list[GuardProcess] = []
        try:
            accounts = {"alpha": account_entry(sim, HEALTHY)}
            for _ in range(2):
                config = guard_config(
                    accounts, port=free_port(), policy=POLICY, extra=fleet_extra(redis.url)
                )
                guards.append(GuardProcess(config, work).start())
            wait_until(lambda: all(_ready(g) for g in guards), timeout=30, what="ready")
            samples: list[float] = []
            with (
                guards[0].client(ADMIN_TOKEN) as admin_a,
                guards[1].client(ADMIN_TOKEN) as admin_b,
                guards[0].client(BOT_TOKEN) as bot_a,
                guards[1].client(BOT_TOKEN) as bot_b,
            ):
                for i in range(args.rounds):
                    admin, bot = (admin_a, bot_b) if i % 2 == 0 else (admin_b, bot_a)
                    _until(bot, True)
                    started = time.perf_counter()
                    switch = admin.post(
                        "/admin/kill-switches",
                        json={"scope": "global", "mode": "HALT", "actor": "b", "reason": "b"},
                    ).json()
                    samples.append(_until(bot, False) - started)
                    admin.delete(
                        f"/admin/kill-switches/{switch['id']}",
                        params={"actor": "b", "reason": "b"},
                    )
            ms = [s * 1000 for s in samples]
            sys.stdout.write(
                f"switch propagation between replicas over {len(ms)} rounds: "
                f"p50 {statistics.median(ms):.1f} ms, p99 {_percentile(ms, 0.99):.1f} ms, "
                f"max {max(ms):.1f} ms\n"
            )
            holder = next(
                g
                for g in guards
                if "alpha" in httpx.get(f"{g.base_url}/readyz").json()["fleet"]["leases"]
            )
            other = guards[1] if holder is guards[0] else guards[0]
            assert holder.proc is not None
            started = time.perf_counter()
            holder.proc.kill()
            holder.proc.wait()
            holder.proc = None
            wait_until(
                lambda: "alpha" in httpx.get(f"{other.base_url}/readyz").json()["fleet"]["leases"],
                timeout=30,
                what="takeover",
                interval=0.01,
            )
            sys.stdout.write(
                f"failover (SIGKILL of the lease holder, lease TTL "
                f"{fleet_extra(redis.url)['fleet']['lease_ttl_s']} s): another replica holds "
                f"the lease after {(time.perf_counter() - started) * 1000:.0f} ms\n"
            )
        finally:
            for guard in guards:
                guard.stop()
            sim.close()
            redis.stop()


def _weight(seconds: float) -> None:
    """Exchange requests per second of one embedded guard versus three fleet replicas."""
    accounts_of = [HEALTHY, RESTRICTED, THIN_MARGIN]
    names = ["alpha", "bravo", "charlie"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis = RedisServer(work / "redis").start()
        sim = SimulatorProcess(BASIC_SCENARIO, log_path=work / "sim.log").start()
        try:
            accounts = {n: account_entry(sim, a) for n, a in zip(names, accounts_of, strict=True)}
            for label, extras in (("embedded guard x1", [None]), ("fleet, 3 replicas", [1, 2, 3])):
                guards: list[GuardProcess] = []
                for extra in extras:
                    fleet = {} if extra is None else fleet_extra(redis.url)
                    config = guard_config(accounts, port=free_port(), policy=POLICY, extra=fleet)
                    guards.append(GuardProcess(config, work).start())
                try:
                    wait_until(partial(_all_ready, list(guards)), timeout=60, what="ready")
                    time.sleep(2)  # leases settled
                    sim.control.clear_requests()
                    time.sleep(seconds)
                    count = sim.control.request_count()
                    sys.stdout.write(
                        f"exchange requests, {label}: {count / seconds:.1f}/s "
                        f"({count} in {seconds:g} s, 3 accounts)\n"
                    )
                finally:
                    for guard in guards:
                        guard.stop()
        finally:
            sim.close()
            redis.stop()


#: binance.yaml's accounts (tests/integration/test_binance_guard.py names them too).
_BINANCE = [
    SimAccount("B-2001", "sim-key-bn-long", "sim-secret-bn-long"),
    SimAccount("B-2002", "sim-key-bn-blocked", "sim-secret-bn-blocked"),
]
_BINANCE_POLL = {"status_interval_s": 1.5, "snapshot_interval_s": 3.0}


def _binance_entry(sim: SimulatorProcess, acc: SimAccount) -> dict[str, object]:
    return {
        "exchange": "binance-usdm",
        "base_url": sim.base_url,
        "api_key": acc.api_key,
        "api_secret": acc.api_secret,
        "options": {"sapi_base_url": sim.base_url},
    }


def _market_weight(seconds: float) -> None:
    """Exchange weight per minute of one embedded guard versus a fleet of three refreshers and
    three api replicas, on two Binance accounts (account polling and market data)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis = RedisServer(work / "redis").start()
        sim = SimulatorProcess(SIM_FIXTURES / "binance.yaml", log_path=work / "sim.log").start()
        try:
            accounts = {f"b{i}": _binance_entry(sim, a) for i, a in enumerate(_BINANCE)}
            layouts: list[tuple[str, list[str | None]]] = [
                ("embedded guard x1", [None]),
                ("fleet, 3 refreshers + 3 api", [*(["refresher"] * 3), *(["api"] * 3)]),
            ]
            for label, roles in layouts:
                guards: list[GuardProcess] = []
                for role in roles:
                    fleet = (
                        {} if role is None else fleet_extra(redis.url, role, namespace=label[:5])
                    )
                    config = guard_config(
                        accounts, port=free_port(), poll=_BINANCE_POLL, policy=POLICY, extra=fleet
                    )
                    guards.append(GuardProcess(config, work).start())
                try:
                    answering = [g for g, r in zip(guards, roles, strict=True) if r != "refresher"]
                    wait_until(partial(_all_ready, answering), timeout=60, what="ready")
                    time.sleep(3)  # leases settled, first exchangeInfo fetched
                    sim.control.clear_requests()
                    time.sleep(seconds)
                    by_path: dict[str, int] = sim.control.requests(limit=0)["by_path"]
                    used = sim.control.weight()["per_ip"]
                    # The simulator's own count (Binance counts per IP): weight in its window.
                    weight = sum(used["used"].values())
                    window_s = float(used["window_s"])
                    market = {
                        p: c for p, c in by_path.items() if "premiumIndex" in p or "Info" in p
                    }
                    sys.stdout.write(
                        f"exchange weight, {label}: {weight} in the simulator's last "
                        f"{window_s:g} s window ({sum(by_path.values())} requests in the last "
                        f"{seconds:g} s; market data requests {market})\n"
                    )
                finally:
                    for guard in guards:
                        guard.stop()
        finally:
            sim.close()
            redis.stop()


if __name__ == "__main__":
    main()
