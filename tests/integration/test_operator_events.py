"""Status-change events over real HTTP: signed webhooks, the SSE stream, slow receivers."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
import pytest

from tests.support.guard import ADMIN_TOKEN, BOT_TOKEN
from tests.support.operator import SseClient, WebhookReceiver, running_guard
from tests.support.processes import SimulatorProcess
from tests.support.sim_scenarios import HEALTHY, THIN_MARGIN

pytestmark = pytest.mark.integration

STATUS_INTERVAL_S = 1.0
#: Time from "the poll saw it" to "the receiver has it": a local POST, with a loaded-CI margin.
DELIVERY_SLACK_S = 1.0


def flip(simulator: SimulatorProcess, status: str) -> float:
    simulator.control.patch_status(HEALTHY.id, {"tradingStatus": status})
    return time.monotonic()


def test_status_flip_reaches_a_signed_webhook_and_the_sse_stream_within_a_poll(
    shared_simulator: SimulatorProcess, tmp_path: Path
) -> None:
    with (
        WebhookReceiver() as receiver,
        running_guard(
            shared_simulator,
            tmp_path,
            # One status poll per second, no jitter, so "within one poll interval" is exact.
            poll={"status_interval_s": STATUS_INTERVAL_S, "jitter_fraction": 0.0},
            policy={"max_status_age_s": 3.0, "max_snapshot_age_s": 3.0},
            webhooks=[receiver.config("ops")],
        ) as guard,
        SseClient(guard, account="alpha") as stream,
    ):
        receiver.wait_for("DATA_FRESH", timeout=5)

        flipped_at = flip(shared_simulator, "RESTRICTED")
        delivery = receiver.wait_for("TRADING_STATUS_CHANGED", timeout=5)
        message = stream.wait_for("TRADING_STATUS_CHANGED", timeout=5)

    assert delivery.received_mono - flipped_at <= STATUS_INTERVAL_S + DELIVERY_SLACK_S
    assert delivery.signature_valid
    assert delivery.headers["X-Pretrade-Event-Id"] == delivery.event["id"]
    assert delivery.headers["Content-Type"] == "application/json"
    event = delivery.event
    assert (event["type"], event["account"]) == ("TRADING_STATUS_CHANGED", "alpha")
    assert event["data"] == {"trading_status": "RESTRICTED", "previous": "NORMAL", "reason": ""}
    assert isinstance(event["time_ms"], int)
    # The SSE client saw the very same event.
    assert message.id == event["id"]
    assert message.json == event


def test_sse_filters_by_account_replays_missed_events_and_carries_kill_switches(
    shared_simulator: SimulatorProcess, tmp_path: Path
) -> None:
    accounts = {"alpha": HEALTHY, "charlie": THIN_MARGIN}
    with running_guard(shared_simulator, tmp_path, accounts=accounts) as guard:
        with SseClient(guard, account="charlie") as charlie_only, SseClient(guard) as everyone:
            flip(shared_simulator, "RESTRICTED")
            seen = everyone.wait_for("TRADING_STATUS_CHANGED", timeout=5)
            assert seen.json["account"] == "alpha"

            with guard.client(ADMIN_TOKEN) as ops:
                ops.post(
                    "/admin/kill-switches",
                    json={"scope": "global", "mode": "HALT", "actor": "al", "reason": "drill"},
                ).raise_for_status()
            engaged = charlie_only.wait_for("KILL_SWITCH_ENGAGED", timeout=5)
            assert engaged.json["account"] is None  # global: every account's stream gets it
            assert engaged.json["data"]["kill_switch"]["mode"] == "HALT"
            assert engaged.json["data"]["actor"] == "al"
            time.sleep(0.3)
            assert [m.json["account"] for m in charlie_only.drain()] == []

        # Reconnecting with Last-Event-ID replays what came after it.
        with SseClient(guard, last_event_id=seen.id) as resumed:
            replayed = resumed.wait_for("KILL_SWITCH_ENGAGED", timeout=5)
        assert replayed.id == engaged.id

        with httpx.Client(base_url=guard.base_url, timeout=5) as anonymous:
            assert anonymous.get("/events").status_code == 401
        with guard.client(BOT_TOKEN) as bot:
            assert bot.get("/events").status_code == 403


def test_a_hanging_webhook_slows_neither_decisions_nor_polling_nor_other_webhooks(
    shared_simulator: SimulatorProcess, tmp_path: Path
) -> None:
    with (
        WebhookReceiver(hang=True) as hanging,
        WebhookReceiver() as healthy,
        running_guard(
            shared_simulator,
            tmp_path,
            webhooks=[
                hanging.config("stuck", timeout_s=30, max_attempts=3, queue_size=4),
                healthy.config("ops"),
            ],
        ) as guard,
        guard.client(BOT_TOKEN) as bot,
    ):
        flips = ["RESTRICTED", "NORMAL"] * 3
        latencies: list[float] = []
        status_ages: list[int] = []
        for status in flips:
            flip(shared_simulator, status)
            healthy.wait_for("TRADING_STATUS_CHANGED", timeout=5)
            for _ in range(10):
                started = time.perf_counter()
                answer = bot.get("/can-trade", params={"account": "alpha"})
                latencies.append(time.perf_counter() - started)
                assert answer.status_code == 200
                status_ages.append(answer.json()["status_age_ms"])

        ready = httpx.get(f"{guard.base_url}/readyz", timeout=5)
        depth = guard.metric("pretrade_guard_webhook_queue_depth", {"webhook": "stuck"})
        stuck_done = guard.metric(
            "pretrade_guard_webhook_deliveries_total", {"webhook": "stuck", "outcome": "delivered"}
        )
        ops_done = guard.metric(
            "pretrade_guard_webhook_deliveries_total", {"webhook": "ops", "outcome": "delivered"}
        )

    # The stuck receiver got its first request and never answered; its queue backs up...
    assert hanging.requests_seen >= 1
    assert depth is not None
    assert depth >= 1
    assert stuck_done == 0
    # ...while the other webhook got every change, and bots and pollers never noticed.
    assert ops_done is not None
    assert ops_done >= len(flips)
    assert max(latencies) < 1.0, max(latencies)
    assert statistics.median(latencies) < 0.1
    assert ready.status_code == 200, ready.text
    # Status polls every 0.2 s went on: the data behind every answer stayed young.
    assert max(status_ages) < 1000, status_ages


def test_sigterm_ends_open_event_streams_instead_of_waiting_for_them(
    shared_simulator: SimulatorProcess, tmp_path: Path
) -> None:
    with running_guard(shared_simulator, tmp_path) as guard:
        stream = SseClient(guard)
        started = time.monotonic()
        assert guard.stop() == 0
        stopped_in = time.monotonic() - started
        ended = stream.ended.wait(5)
        stream.close()
    # Without ending the streams, uvicorn would wait out graceful_shutdown_s (10 s) for them.
    assert ended
    assert stopped_in < 5, stopped_in
