"""Fleet mode events: how long an event caused on replica A takes to reach an ``/events``
client of replica B and the webhook, and how long a delivery takes to be completed by another
replica when the one retrying it is SIGKILLed.

    .venv/bin/python -m bench.fleet_events [--rounds 40] [--claim-idle-s 3]

Starts a private redis-server (AOF, appendfsync always), the simulator, three guards in fleet
mode (role ``all``) with one webhook, a loopback webhook receiver and an SSE client on B.
Each round engages (or releases) a global switch on A or C through the admin API and takes
the time from sending the request to the event arriving on B's stream and at the receiver
(the admin round trip included: upper bounds). Takeover: the receiver answers 503, the
replica retrying the next event is SIGKILLed, the receiver accepts again at once; the time
from the kill to the delivery is printed (the idle bound plus up to half of it for the next
claim round, plus one attempt).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.support.fleet import fleet_extra
from tests.support.guard import ADMIN_TOKEN, GuardProcess, guard_config, wait_until
from tests.support.guard_fixtures import account_entry
from tests.support.operator import SseClient, WebhookReceiver, crash
from tests.support.processes import SimulatorProcess, free_port
from tests.support.redis_server import RedisServer
from tests.support.sim_scenarios import BASIC_SCENARIO, HEALTHY

POLICY = {"max_status_age_s": 10.0, "max_snapshot_age_s": 10.0}
KINDS = ["KILL_SWITCH_ENGAGED", "KILL_SWITCH_RELEASED"]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _line(what: str, ms: list[float]) -> str:
    return (
        f"{what} over {len(ms)} events: p50 {statistics.median(ms):.1f} ms, "
        f"p99 {_percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms\n"
    )


def _retried(guard: GuardProcess) -> float:
    return (
        guard.metric(
            "pretrade_guard_webhook_deliveries_total", {"webhook": "ops", "outcome": "retried"}
        )
        or 0.0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--claim-idle-s", type=float, default=3.0)
    args = parser.parse_args()
    failing = threading.Event()
    with tempfile.TemporaryDirectory() as tmp, WebhookReceiver(failing=failing) as receiver:
        work = Path(tmp)
        redis = RedisServer(work / "redis").start()
        sim = SimulatorProcess(BASIC_SCENARIO, log_path=work / "sim.log").start()
        guards: list[GuardProcess] = []
        try:
            accounts = {"alpha": account_entry(sim, HEALTHY)}
            hook = receiver.config(
                "ops", event_types=KINDS, max_attempts=20, backoff_base_s=0.2, backoff_max_s=0.5
            )
            for _ in range(3):
                extra = fleet_extra(redis.url, webhook_claim_idle_s=args.claim_idle_s)
                extra["webhooks"] = [hook]
                config = guard_config(accounts, port=free_port(), policy=POLICY, extra=extra)
                guards.append(GuardProcess(config, work).start())
            wait_until(
                lambda: all(
                    httpx.get(f"{g.base_url}/readyz", timeout=2).status_code == 200 for g in guards
                ),
                timeout=30,
                what="ready",
            )
            time.sleep(1.0)  # every replica's consumer group reader is up
            sse_ms: list[float] = []
            hook_ms: list[float] = []
            with SseClient(guards[1]) as on_b:
                for i in range(args.rounds):
                    writer = guards[0] if i % 2 == 0 else guards[2]
                    with writer.client(ADMIN_TOKEN) as admin:
                        started = time.monotonic()
                        switch = admin.post(
                            "/admin/kill-switches",
                            json={"scope": "global", "mode": "HALT", "actor": "b", "reason": "b"},
                        ).json()
                        seen = on_b.wait_for("KILL_SWITCH_ENGAGED", timeout=10)
                        delivered = receiver.wait_for("KILL_SWITCH_ENGAGED", timeout=10)
                        sse_ms.append((seen.received_mono - started) * 1000)
                        hook_ms.append((delivered.received_mono - started) * 1000)
                        admin.delete(
                            f"/admin/kill-switches/{switch['id']}",
                            params={"actor": "b", "reason": "b"},
                        )
                        on_b.wait_for("KILL_SWITCH_RELEASED", timeout=10)
                        receiver.wait_for("KILL_SWITCH_RELEASED", timeout=10)
            sys.stdout.write(_line("engage on A/C to B's /events client", sse_ms))
            sys.stdout.write(_line("engage on A/C to the webhook receiver", hook_ms))

            failing.set()
            with guards[0].client(ADMIN_TOKEN) as admin:
                admin.post(
                    "/admin/kill-switches",
                    json={"scope": "global", "mode": "HALT", "actor": "b", "reason": "chaos"},
                ).raise_for_status()
            wait_until(
                lambda: any(_retried(g) > 0 for g in guards), timeout=10, what="a replica retrying"
            )
            victim = [g for g in guards if _retried(g) > 0]
            crash(victim[0])
            killed = time.monotonic()
            failing.clear()
            delivered = receiver.wait_for("KILL_SWITCH_ENGAGED", timeout=60)
            sys.stdout.write(
                f"takeover (SIGKILL of the replica retrying a delivery, "
                f"fleet.webhook_claim_idle_s {args.claim_idle_s}): delivered by another replica "
                f"{(delivered.received_mono - killed) * 1000:.0f} ms after the kill\n"
            )
        finally:
            for guard in guards:
                guard.stop()
            sim.close()
            redis.stop()


if __name__ == "__main__":
    main()
