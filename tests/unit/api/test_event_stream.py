"""The /events response against an ASGI server that stops taking writes (a client that
stopped reading): it is dropped after the send timeout, counted, and its slot freed."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry
from starlette.types import Message

from app.api.events import EventStream
from app.events.bus import EventBus
from app.events.model import Event, EventType
from app.metrics import Metrics


async def test_a_client_that_stops_reading_is_dropped_after_the_send_timeout() -> None:
    metrics = Metrics(CollectorRegistry(), "test")
    bus = EventBus(metrics, max_subscribers=5)
    sent: list[Message] = []
    stuck = asyncio.Event()

    async def send(message: Message) -> None:
        if len(sent) >= 2:  # headers and the first chunk went out; then the socket is full
            stuck.set()
            await asyncio.Event().wait()
        sent.append(message)

    async def receive() -> Message:
        await asyncio.Event().wait()  # the client never hangs up
        return {"type": "http.disconnect"}

    stream = EventStream(bus, None, None, keepalive_s=0.05, send_timeout_s=0.1)
    task = asyncio.create_task(stream({"type": "http"}, receive, send))
    await asyncio.sleep(0.01)
    bus.publish(Event(EventType.KILL_SWITCH_ENGAGED, None, None, {}))
    await asyncio.wait_for(task, 5)  # ends by itself
    assert stuck.is_set()
    dropped = {"reason": "send_timeout"}
    assert metrics.registry.get_sample_value("pretrade_guard_sse_dropped_total", dropped) == 1
    assert metrics.registry.get_sample_value("pretrade_guard_sse_subscribers") == 0
    assert sent[0]["status"] == 200
