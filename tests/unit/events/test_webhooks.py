"""Webhook delivery: signed, retried with backoff, filtered, bounded, never blocking."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import httpx
import pytest
from prometheus_client import CollectorRegistry

from app.events.model import Event, EventType, StampedEvent
from app.events.signing import verify_signature
from app.events.webhooks import WebhookDispatcher, WebhookTarget
from app.metrics import Metrics

SECRET = b"whsec-unit-test-secret"
T = 1_763_712_000_000
TARGET = WebhookTarget(
    name="ops",
    url="http://receiver.test/hook",
    secret=SECRET,
    max_attempts=3,
    backoff_base_s=0.001,
    backoff_max_s=0.002,
)


def stamped(n: int, event: Event | None = None) -> StampedEvent:
    return StampedEvent.stamp(
        event or Event(EventType.DATA_STALE, "a", None, {"n": n}), f"e-{n}", T + n
    )


Handler = Callable[[httpx.Request], httpx.Response]


class Harness:
    def __init__(self, target: WebhookTarget, handler: Handler) -> None:
        self.metrics = Metrics(CollectorRegistry(), "test")
        self.requests: list[httpx.Request] = []
        #: Deliveries (delivered or failed) to wait for in ``settle``.
        self.expected = 0

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        self.dispatcher = WebhookDispatcher(
            target, self.metrics, transport=httpx.MockTransport(record), clock=lambda: T
        )

    def outcome(self, outcome: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            "pretrade_guard_webhook_deliveries_total", {"webhook": "ops", "outcome": outcome}
        )

    async def settle(self) -> None:
        for _ in range(200):
            if not self.dispatcher.pending and self.idle():
                return
            await asyncio.sleep(0.005)

    def idle(self) -> bool:
        done = sum(self.outcome(o) or 0 for o in ("delivered", "failed"))
        return done >= self.expected


@pytest.fixture
async def harnesses() -> AsyncIterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for harness in made:
        await harness.dispatcher.stop()


def start(harnesses: list[Harness], handler: Handler, target: WebhookTarget = TARGET) -> Harness:
    harness = Harness(target, handler)
    harness.dispatcher.start()
    harnesses.append(harness)
    return harness


async def deliver(harness: Harness, *events: StampedEvent) -> None:
    harness.expected += len(events)
    for event in events:
        harness.dispatcher.offer(event)
    await harness.settle()


async def test_delivery_is_signed_and_identifies_the_event(harnesses: list[Harness]) -> None:
    harness = start(harnesses, lambda _: httpx.Response(204))
    event = stamped(1)
    await deliver(harness, event)

    [request] = harness.requests
    assert request.method == "POST"
    assert request.content == event.body
    assert json.loads(request.content)["id"] == "e-1"
    assert request.headers["X-Pretrade-Event-Id"] == "e-1"
    assert request.headers["X-Pretrade-Event-Type"] == "DATA_STALE"
    assert request.headers["Content-Type"] == "application/json"
    signature = request.headers["X-Pretrade-Signature"]
    assert verify_signature(SECRET, signature, request.content, now_ms=T)
    assert harness.outcome("delivered") == 1
    assert harness.outcome("retried") == 0


async def test_server_errors_are_retried_until_accepted(harnesses: list[Harness]) -> None:
    answers = iter([httpx.Response(503), httpx.Response(429), httpx.Response(200)])
    harness = start(harnesses, lambda _: next(answers))
    await deliver(harness, stamped(1))
    assert len(harness.requests) == 3
    assert (harness.outcome("retried"), harness.outcome("delivered")) == (2, 1)


async def test_network_errors_are_retried_then_given_up(harnesses: list[Harness]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    harness = start(harnesses, refuse)
    await deliver(harness, stamped(1))
    assert len(harness.requests) == TARGET.max_attempts
    assert (harness.outcome("retried"), harness.outcome("failed")) == (2, 1)
    assert harness.outcome("delivered") == 0


async def test_a_refusal_that_a_retry_cannot_fix_is_not_retried(
    harnesses: list[Harness],
) -> None:
    harness = start(harnesses, lambda _: httpx.Response(401))
    await deliver(harness, stamped(1))
    assert len(harness.requests) == 1
    assert (harness.outcome("failed"), harness.outcome("retried")) == (1, 0)


async def test_events_are_delivered_in_order(harnesses: list[Harness]) -> None:
    harness = start(harnesses, lambda _: httpx.Response(200))
    await deliver(harness, *(stamped(n) for n in range(5)))
    assert [r.headers["X-Pretrade-Event-Id"] for r in harness.requests] == [
        f"e-{n}" for n in range(5)
    ]


async def test_a_full_queue_drops_the_oldest_and_counts_it(harnesses: list[Harness]) -> None:
    harness = Harness(replace(TARGET, queue_size=2), lambda _: httpx.Response(200))
    harnesses.append(harness)
    for n in range(3):  # worker not started yet: the queue fills
        harness.dispatcher.offer(stamped(n))
    assert harness.outcome("dropped") == 1
    depth = harness.metrics.registry.get_sample_value(
        "pretrade_guard_webhook_queue_depth", {"webhook": "ops"}
    )
    assert depth == 2

    harness.expected = 2
    harness.dispatcher.start()
    await harness.settle()
    assert [r.headers["X-Pretrade-Event-Id"] for r in harness.requests] == ["e-1", "e-2"]


async def test_filters_by_type_and_account_but_global_events_pass(
    harnesses: list[Harness],
) -> None:
    target = replace(
        TARGET, event_types=frozenset({EventType.DATA_STALE}), accounts=frozenset({"a"})
    )
    harness = start(harnesses, lambda _: httpx.Response(200), target)
    wanted_global = stamped(1, Event(EventType.DATA_STALE, None))
    await deliver(
        harness,
        stamped(0),
        wanted_global,
    )
    harness.dispatcher.offer(stamped(2, Event(EventType.DATA_FRESH, "a")))
    harness.dispatcher.offer(stamped(3, Event(EventType.DATA_STALE, "b")))
    await asyncio.sleep(0.05)
    assert [r.headers["X-Pretrade-Event-Id"] for r in harness.requests] == ["e-0", "e-1"]


async def test_offering_never_waits_for_a_hanging_receiver(harnesses: list[Harness]) -> None:
    release = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200)

    metrics = Metrics(CollectorRegistry(), "test")
    dispatcher = WebhookDispatcher(
        replace(TARGET, queue_size=10), metrics, transport=httpx.MockTransport(hang)
    )
    dispatcher.start()
    try:
        dispatcher.offer(stamped(0))
        await asyncio.sleep(0.01)  # the worker is now stuck in the first delivery
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n in range(1, 100):
            dispatcher.offer(stamped(n))
        assert loop.time() - started < 0.05
        assert dispatcher.pending == 10  # bounded: 89 older ones were dropped
    finally:
        release.set()
        await dispatcher.stop()
    dropped = metrics.registry.get_sample_value(
        "pretrade_guard_webhook_deliveries_total", {"webhook": "ops", "outcome": "dropped"}
    )
    assert dropped is not None
    assert dropped >= 89
