"""Fleet mode: each state change is one event fleet-wide, on every replica's ``/events`` and
once per webhook, including when the delivering replica is SIGKILLed in the middle of retries.

Real guard processes, a real simulator, a real ``redis-server`` and a real webhook receiver,
all on loopback.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from typing import Any

import pytest
import redis as redis_py

from tests.support.fleet import admin, engage, fleet_extra
from tests.support.guard import GuardProcess, wait_until
from tests.support.guard_fixtures import StartGuard, account_entry
from tests.support.operator import Delivery, SseClient, WebhookReceiver, crash
from tests.support.processes import SimulatorProcess
from tests.support.redis_server import RedisServer
from tests.support.sim_scenarios import HEALTHY

pytestmark = pytest.mark.integration

#: Data freshness is not the subject here; a loaded CI machine must not turn it stale.
RELAXED = {"max_status_age_s": 10.0, "max_snapshot_age_s": 10.0}
STREAM = "test:events:stream"
KILL_SWITCH_EVENTS = ["KILL_SWITCH_ENGAGED", "KILL_SWITCH_RELEASED"]


def _replica(
    start_guard: StartGuard,
    sim: SimulatorProcess,
    redis: RedisServer,
    *,
    webhooks: list[dict[str, Any]] | None = None,
    **fleet: Any,
) -> GuardProcess:
    extra = fleet_extra(redis.url, **fleet)
    # Keep-alives every 0.2 s let SseClient threads notice a close quickly.
    extra["events"] = {"watch_interval_s": 0.1, "sse_keepalive_s": 0.2}
    extra["webhooks"] = webhooks or []
    return start_guard(
        {"alpha": account_entry(sim, HEALTHY)}, extra=extra, policy=RELAXED, wait_ready=True
    )


def _release(guard: GuardProcess, switch_id: str) -> None:
    with admin(guard) as client:
        released = client.delete(
            f"/admin/kill-switches/{switch_id}", params={"actor": "ops", "reason": "over"}
        )
    assert released.status_code == 200, released.text


def _total(guards: list[GuardProcess], name: str, labels: dict[str, str]) -> float:
    return sum(g.metric(name, labels) or 0.0 for g in guards if g.proc is not None)


def test_an_event_caused_on_replica_a_reaches_sse_on_replica_b_once_and_resumes_anywhere(
    start_guard: StartGuard, shared_simulator: SimulatorProcess, redis_server: RedisServer
) -> None:
    a = _replica(start_guard, shared_simulator, redis_server)
    b = _replica(start_guard, shared_simulator, redis_server)
    with SseClient(b) as on_b, SseClient(a) as on_a:
        engaged = engage(a, scope="account", account="alpha", reason="desk halt")
        assert engaged.status_code == 201, engaged.text
        switch_b = on_b.wait_for("KILL_SWITCH_ENGAGED", timeout=5)
        switch_a = on_a.wait_for("KILL_SWITCH_ENGAGED", timeout=5)
        # One event: the same id and the same bytes on both replicas.
        assert switch_b.id == switch_a.id
        assert switch_b.data == switch_a.data
        assert switch_b.json["data"]["kill_switch"]["id"] == engaged.json()["id"]
        assert switch_b.json["data"]["actor"] == "ops"

        # A status change at the exchange: announced once, by the lease holder.
        shared_simulator.control.patch_status(HEALTHY.id, {"tradingStatus": "RESTRICTED"})
        status_b = on_b.wait_for("TRADING_STATUS_CHANGED", timeout=10)
        status_a = on_a.wait_for("TRADING_STATUS_CHANGED", timeout=10)
        assert status_b.id == status_a.id
        assert status_b.json["data"] == {
            "trading_status": "RESTRICTED",
            "previous": "NORMAL",
            "reason": "",
        }
        # Give any second copy time to arrive (two control polls, several status polls).
        time.sleep(1.5)
        later = on_b.drain() + on_a.drain()
    assert [
        m.event for m in later if m.event in ("KILL_SWITCH_ENGAGED", "TRADING_STATUS_CHANGED")
    ] == []
    # The fleet counted each once, on the replica that emitted it.
    for kind in ("KILL_SWITCH_ENGAGED", "TRADING_STATUS_CHANGED"):
        assert _total([a, b], "pretrade_guard_events_total", {"type": kind}) == 1, kind

    # The id from replica B resumes on replica A: what came after it is replayed.
    with SseClient(a, last_event_id=switch_b.id) as resumed:
        replayed = resumed.wait_for("TRADING_STATUS_CHANGED", timeout=5)
    assert replayed.id == status_b.id
    assert replayed.data == status_b.data


def test_a_last_event_id_whose_followers_were_trimmed_gets_a_gap_notice_then_the_rest(
    start_guard: StartGuard, shared_simulator: SimulatorProcess, redis_server: RedisServer
) -> None:
    a = _replica(start_guard, shared_simulator, redis_server)
    with SseClient(a) as stream:
        first = engage(a, scope="global").json()["id"]
        seen = stream.wait_for("KILL_SWITCH_ENGAGED", timeout=5)
        _release(a, first)
        stream.wait_for("KILL_SWITCH_RELEASED", timeout=5)
    client = redis_py.Redis.from_url(redis_server.url)
    try:
        client.xtrim(STREAM, maxlen=0, approximate=False)  # as MAXLEN ~ does to old entries
    finally:
        client.close()
    second = engage(a, scope="global")
    assert second.status_code == 201
    with SseClient(a, last_event_id=seen.id) as resumed:
        gap = resumed.next(timeout=5)
        after = resumed.wait_for("KILL_SWITCH_ENGAGED", timeout=5)
    assert gap.event == "gap"
    assert gap.id is None
    assert gap.json["last_event_id"] == seen.id
    assert "trimmed" in gap.json["message"]
    assert "GET /accounts" in gap.json["message"]
    assert after.json["data"]["kill_switch"]["id"] == second.json()["id"]

    # An id that is not of this fleet (an embedded guard's) replays nothing, and says so.
    with SseClient(a, last_event_id="8ebe9438-17") as foreign:
        notice = foreign.next(timeout=5)
    assert notice.event == "gap"
    assert "not an event id of this fleet" in notice.json["message"]
    # A malformed one is still a 400, as in embedded mode.
    with a.client(token=None) as anon:
        from tests.support.guard import READ_TOKEN

        bad = anon.get(
            "/events",
            headers={"Authorization": f"Bearer {READ_TOKEN}", "Last-Event-ID": "not an id"},
        )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "INVALID_LAST_EVENT_ID"


def _wait_for_group(url: str, group: str) -> None:
    """Until the webhook's consumer group exists (events before it are not its)."""
    client = redis_py.Redis.from_url(url)
    try:

        def created() -> bool:
            try:
                groups = client.xinfo_groups(STREAM)
            except redis_py.ResponseError:
                return False  # no stream yet
            return any(g["name"] in (group, group.encode()) for g in groups)

        wait_until(created, timeout=15, what=f"the consumer group {group}")
    finally:
        client.close()


def _stream_ids(url: str, types: list[str]) -> list[str]:
    """Ids of the fleet's events of these types, as Redis holds them."""
    import json

    client = redis_py.Redis.from_url(url)
    try:
        rows: list[Any] = list(client.xrange(STREAM) or [])
    finally:
        client.close()
    return [bytes(row[0]).decode() for row in rows if json.loads(row[1][b"e"])["type"] in types]


def _drain(queue_: Any) -> list[Delivery]:
    found: list[Delivery] = []
    while not queue_.empty():
        found.append(queue_.get_nowait())
    return found


def test_a_webhook_behind_three_replicas_gets_each_event_once_even_when_its_deliverer_dies(
    start_guard: StartGuard, shared_simulator: SimulatorProcess, redis_server: RedisServer
) -> None:
    """Chaos 6: the receiver refuses (503) while ``failing`` is set, so the replica that
    took the event retries; that replica is SIGKILLed in the middle of its retries; another
    replica takes the delivery over after the idle bound and completes it."""
    failing = threading.Event()
    with WebhookReceiver(failing=failing) as receiver:
        hook = receiver.config(
            "ops",
            max_attempts=20,
            backoff_base_s=0.2,
            backoff_max_s=0.5,
            timeout_s=2,
            event_types=KILL_SWITCH_EVENTS,
        )
        replicas = [
            _replica(
                start_guard,
                shared_simulator,
                redis_server,
                webhooks=[hook],
                webhook_claim_idle_s=3.0,
            )
            for _ in range(3)
        ]
        _wait_for_group(redis_server.url, "webhook:ops")

        # Healthy receiver: an engage and a release on different replicas, once each.
        first = engage(replicas[0], scope="account", account="alpha")
        assert first.status_code == 201, first.text
        _release(replicas[2], first.json()["id"])
        wait_until(lambda: receiver.deliveries.qsize() >= 2, timeout=10, what="two deliveries")
        delivered = _drain(receiver.deliveries)

        # The receiver fails; whichever replica took the next event retries it...
        failing.set()
        chaos = engage(replicas[1], scope="global", reason="chaos")
        assert chaos.status_code == 201, chaos.text
        retrying: list[GuardProcess] = []

        def someone_retries() -> bool:
            retrying[:] = [
                g
                for g in replicas
                if (
                    g.metric(
                        "pretrade_guard_webhook_deliveries_total",
                        {"webhook": "ops", "outcome": "retried"},
                    )
                    or 0
                )
                > 0
            ]
            return bool(retrying)

        wait_until(someone_retries, timeout=10, what="a replica retrying the delivery")
        assert len(retrying) == 1
        victim = retrying[0]
        crash(victim)  # ...and dies in the middle of its retries.
        survivors = [g for g in replicas if g is not victim]
        wait_until(
            lambda: (
                _total(survivors, "pretrade_guard_fleet_webhook_claimed_total", {"webhook": "ops"})
                >= 1
            ),
            timeout=20,
            what="a surviving replica taking the delivery over",
        )
        failing.clear()
        taken_over = receiver.wait_for("KILL_SWITCH_ENGAGED", timeout=15)
        assert taken_over.event["data"]["kill_switch"]["id"] == chaos.json()["id"]
        assert taken_over.signature_valid

        _release(survivors[0], chaos.json()["id"])
        delivered += [taken_over, receiver.wait_for("KILL_SWITCH_RELEASED", timeout=10)]
        # Time for any duplicate to show up: past the idle bound and a claim round.
        time.sleep(4.5)
        delivered += _drain(receiver.deliveries)
        refused = [d.event["id"] for d in _drain(receiver.refused)]

    expected = _stream_ids(redis_server.url, KILL_SWITCH_EVENTS)
    assert len(expected) == 4
    assert Counter(d.event["id"] for d in delivered) == Counter(expected)
    assert all(d.signature_valid for d in delivered)
    assert taken_over.event["id"] in refused  # it was retried before the takeover


def test_events_and_webhooks_resume_after_a_redis_crash_without_restarts_or_reconnects(
    start_guard: StartGuard, shared_simulator: SimulatorProcess, redis_server: RedisServer
) -> None:
    """Redis SIGKILLed and restarted (AOF): no event can be written meanwhile (admin writes
    answer 503), the open ``/events`` stream on B stays open, and the next event reaches it
    and the webhook once, with no guard restarted and no client reconnecting."""
    with WebhookReceiver() as receiver:
        hook = receiver.config("ops", event_types=KILL_SWITCH_EVENTS)
        a = _replica(start_guard, shared_simulator, redis_server, webhooks=[hook])
        b = _replica(start_guard, shared_simulator, redis_server, webhooks=[hook])
        _wait_for_group(redis_server.url, "webhook:ops")
        with SseClient(b) as on_b:
            redis_server.kill()
            assert engage(a, scope="global").status_code == 503  # nothing half-applied
            redis_server.start()
            wait_until(
                lambda: engage(a, scope="global", reason="after").status_code == 201,
                timeout=15,
                what="admin writes accepted again",
            )
            seen = on_b.wait_for("KILL_SWITCH_ENGAGED", timeout=10)
            delivered = receiver.wait_for("KILL_SWITCH_ENGAGED", timeout=15)
            time.sleep(1.5)  # a second copy would show up by now
            again = [m for m in on_b.drain() if m.event == "KILL_SWITCH_ENGAGED"]
        assert on_b.error is None  # the same connection all along
    assert seen.json["data"]["reason"] == "after"
    assert delivered.event["id"] == seen.id
    assert again == []
    assert receiver.deliveries.empty()


def test_data_turning_stale_is_announced_once_by_the_fleet_not_once_per_api_replica(
    start_guard: StartGuard, shared_simulator: SimulatorProcess, redis_server: RedisServer
) -> None:
    """The only refresher dies: both api replicas see alpha's data age past its max age (and
    poll themselves after the grace, so it turns fresh again). Stale/fresh is announced by
    whichever replica sees it first: in the fleet's stream the two alternate, never twice in
    a row, and both replicas' ``/events`` carry the same events."""
    accounts = {"alpha": account_entry(shared_simulator, HEALTHY)}
    policy = {"max_status_age_s": 2.5, "max_snapshot_age_s": 3.0}
    events = {"watch_interval_s": 0.1, "sse_keepalive_s": 0.2}
    refresher = start_guard(
        accounts,
        extra={
            **fleet_extra(redis_server.url, "refresher", fallback_grace_s=5.0),
            "events": events,
        },
        policy=policy,
    )
    apis = [
        start_guard(
            accounts,
            extra={**fleet_extra(redis_server.url, "api", fallback_grace_s=5.0), "events": events},
            policy=policy,
            wait_ready=True,
        )
        for _ in range(2)
    ]
    with SseClient(apis[0]) as on_a, SseClient(apis[1]) as on_b:
        crash(refresher)
        stale_a = on_a.wait_for("DATA_STALE", timeout=15)
        stale_b = on_b.wait_for("DATA_STALE", timeout=15)
        fresh_a = on_a.wait_for("DATA_FRESH", timeout=20)  # the fallback polls
        fresh_b = on_b.wait_for("DATA_FRESH", timeout=20)
    assert (stale_a.id, fresh_a.id) == (stale_b.id, fresh_b.id)
    freshness = [t for t in _stream_types(redis_server.url) if t in ("DATA_STALE", "DATA_FRESH")]
    assert "DATA_STALE" in freshness
    assert all(x != y for x, y in itertools.pairwise(freshness)), freshness
    counted = _total(apis, "pretrade_guard_events_total", {"type": "DATA_STALE"})
    assert counted == freshness.count("DATA_STALE")


def _stream_types(url: str) -> list[str]:
    import json

    client = redis_py.Redis.from_url(url)
    try:
        rows: list[Any] = list(client.xrange(STREAM) or [])
    finally:
        client.close()
    return [json.loads(row[1][b"e"])["type"] for row in rows]
