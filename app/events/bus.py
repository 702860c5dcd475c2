"""The event bus: stamps each event, logs it, counts it, and fans it out without waiting.

Sinks: one structured log line per event, every SSE subscription (a bounded queue each), and
every webhook dispatcher (``offer`` only enqueues). ``publish`` is synchronous and never
blocks, so the pollers and the admin API that publish are never slowed by a consumer.

A subscriber whose queue is full is dropped (its stream ends with an ``overflow`` notice and
the client reconnects with ``Last-Event-ID``), never waited for. The last events are kept in
a ring so a reconnecting client can replay what it missed.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import deque
from collections.abc import Callable
from itertools import count
from typing import Literal

import structlog

from app.events.model import Event, StampedEvent
from app.metrics import Metrics

log = structlog.get_logger("app.events")

Sink = Callable[[StampedEvent], None]

#: An event id as the guard makes them: a run prefix, a dash, a sequence number (ASCII only,
#: bounded, so parsing it cannot fail or cost more than a few digits).
_EVENT_ID = re.compile(r"([0-9A-Za-z]{1,32})-([0-9]{1,19})")


class InvalidEventId(ValueError):
    """A ``Last-Event-ID`` that is not an event id of the guard's form (answered with 400)."""


def parse_event_id(text: str | None) -> tuple[str, int] | None:
    """``(prefix, seq)`` of a ``Last-Event-ID``; None when absent or blank (no replay).
    Raises ``InvalidEventId`` for anything else than ``<prefix>-<digits>`` in ASCII."""
    if text is None or not text.strip(" \t"):
        return None
    found = _EVENT_ID.fullmatch(text.strip(" \t"))
    if found is None:
        raise InvalidEventId("Last-Event-ID is not an event id of this guard (<run>-<number>)")
    return found.group(1), int(found.group(2))


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Subscription:
    """One SSE client's queue. ``next()`` returns ``None`` when the stream must end."""

    def __init__(self, account: str | None, size: int) -> None:
        self.account = account
        self.overflowed = False
        self._queue: asyncio.Queue[StampedEvent | None] = asyncio.Queue(maxsize=size)
        self._ended = False

    def wants(self, event: Event) -> bool:
        return self.account is None or event.concerns(self.account)

    def offer(self, event: StampedEvent) -> bool:
        """Enqueue without waiting. On a full queue, end the stream and return True
        (the subscriber was dropped by this event)."""
        if self._ended:
            return False
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.end()
            return True
        return False

    def end(self) -> None:
        """Make ``next()`` return ``None`` at once (queued events are discarded)."""
        if self._ended:
            return
        self._ended = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def next(self, timeout_s: float) -> StampedEvent | Literal[False] | None:
        """The next event; ``None`` at the end; ``False`` when ``timeout_s`` passed first."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout_s)
        except TimeoutError:
            return False


class EventBus:
    def __init__(
        self,
        metrics: Metrics,
        *,
        subscriber_queue: int = 256,
        replay: int = 1000,
        clock: Callable[[], int] = _wall_ms,
    ) -> None:
        self._metrics = metrics
        self._subscriber_queue = subscriber_queue
        self._clock = clock
        # Ids: a random per-process prefix and a sequence number, so an id from a previous
        # run is recognised as such when a client reconnects with Last-Event-ID.
        self._prefix = os.urandom(4).hex()
        self._seq = count(1)
        self._recent: deque[tuple[int, StampedEvent]] = deque(maxlen=replay)
        self._subscriptions: set[Subscription] = set()
        self._sinks: list[Sink] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def add_sink(self, sink: Sink) -> None:
        """Call ``sink(event)`` for every published event; it must not block or raise."""
        self._sinks.append(sink)

    def bind_loop(self) -> None:
        """Remember the running loop, for ``close_threadsafe`` (called from the lifespan)."""
        self._loop = asyncio.get_running_loop()

    def publish(self, event: Event) -> StampedEvent:
        seq = next(self._seq)
        stamped = StampedEvent.stamp(event, f"{self._prefix}-{seq}", self._clock())
        self._recent.append((seq, stamped))
        self._metrics.events.labels(event.type.value).inc()
        log.info(
            "status event",
            event_id=stamped.id,
            event_type=event.type.value,
            account=event.account,
            symbol=event.symbol,
            data=dict(event.data),
        )
        dropped = 0
        for sub in self._subscriptions:
            if sub.wants(event) and sub.offer(stamped):
                dropped += 1
        if dropped:
            log.warning("slow event-stream subscribers dropped", count=dropped)
        for sink in self._sinks:
            sink(stamped)
        return stamped

    # ------------------------------------------------------------------ SSE subscriptions

    def subscribe(self, account: str | None) -> Subscription:
        sub = Subscription(account, self._subscriber_queue)
        if self._closed:
            sub.end()
        self._subscriptions.add(sub)
        self._metrics.sse_subscribers.set(len(self._subscriptions))
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)
        self._metrics.sse_subscribers.set(len(self._subscriptions))

    def replay_after(self, last_event_id: str | None, account: str | None) -> list[StampedEvent]:
        """Events after ``last_event_id`` that are still in the ring (this process only; an
        id of an earlier run replays nothing). Raises ``InvalidEventId`` for a malformed id."""
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            return []
        prefix, after = parsed
        if prefix != self._prefix:
            return []
        return [
            stamped
            for seq, stamped in self._recent
            if seq > after and (account is None or stamped.event.concerns(account))
        ]

    def close(self) -> None:
        """End every stream (shutdown); later subscriptions end at once."""
        self._closed = True
        for sub in self._subscriptions:
            sub.end()

    def close_threadsafe(self) -> None:
        """``close()`` from outside the loop, e.g. a signal handler as shutdown begins."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.close)
