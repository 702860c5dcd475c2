"""The event bus: stamps each event, logs it, counts it, and fans it out without waiting.

Sinks: one structured log line per event, the SSE subscriptions, and every webhook
dispatcher (``offer`` only enqueues). ``publish`` is synchronous and never blocks, so the
pollers and the admin API that publish are never slowed by a consumer.

Fan-out to SSE subscribers costs O(1) per event: the event is appended to one bounded shared
log, and the subscribers waiting for news are woken once per ``flush_s`` (a burst of events
is one wake-up each), a slice of them per loop turn. Each subscriber then takes what it
missed from the log. One that falls further behind than the log holds is dropped (its stream
ends with an ``overflow`` notice, counted in ``pretrade_guard_sse_dropped_total``; the client
reconnects with ``Last-Event-ID``), never waited for. Subscribers are capped
(``max_subscribers``). The last events are also kept in a ring so a reconnecting client can
replay what it missed.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import deque
from collections.abc import Callable
from itertools import count, islice
from typing import Literal, Protocol

import structlog

from app.events.model import Event, StampedEvent
from app.metrics import Metrics

log = structlog.get_logger("app.events")

Sink = Callable[[StampedEvent], None]
#: Subscribers woken per loop turn (decisions get the loop between slices).
_WAKE_SLICE = 50

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


class Replay(Protocol):
    """Fleet mode: the events after a ``Last-Event-ID``, from the fleet's event stream."""

    async def replay(
        self, last_event_id: str, account: str | None, limit: int
    ) -> tuple[list[StampedEvent], str | None]:
        """At most ``limit`` events after the id (oldest first), and a notice when some
        events after it can no longer be sent (None when nothing was lost)."""
        ...


class TooManySubscribers(Exception):
    """The ``/events`` subscriber cap is reached (answered with 503)."""


class Subscription:
    """One SSE client's place in the bus's shared log of recent events.

    Nothing is queued per subscriber: the bus keeps one bounded log, and a subscription only
    remembers the last event it has taken (``cursor``). Publishing therefore costs the same
    whatever the number of subscribers; a subscriber reads what it missed when it runs. One
    that falls more than the log's length (``events.sse_queue_size``) behind has lost events:
    its stream ends with an ``overflow`` notice (counted), and it reconnects with
    ``Last-Event-ID``."""

    def __init__(self, bus: EventBus, account: str | None, cursor: int) -> None:
        self.account = account
        self.overflowed = False
        self.cursor = cursor
        self._bus = bus
        self._pending: deque[StampedEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    def wants(self, event: Event) -> bool:
        return self.account is None or event.concerns(self.account)

    def end(self) -> None:
        """Make ``next()`` return ``None`` at once (events not yet taken are discarded)."""
        if self._ended:
            return
        self._ended = True
        self._pending.clear()
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _take(self) -> None:
        """Move what was published since ``cursor`` (and concerns this client) to pending."""
        events, lost = self._bus.since(self.cursor)
        if lost:
            self.overflowed = True
            self._bus.dropped(self, "overflow")
            self.end()
            return
        if events:
            self.cursor = events[-1][0]
            self._pending.extend(e for _seq, e in events if self.wants(e.event))

    async def _wait(self, timeout_s: float) -> None:
        """Wait for a publication, the end, or ``timeout_s``."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout_s, _resolve, waiter)
        self._bus.waiting(self)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
            self._bus.not_waiting(self)

    async def next_batch(self, timeout_s: float) -> list[StampedEvent] | Literal[False] | None:
        """Every event not taken yet; ``None`` at the end; ``False`` when ``timeout_s`` passed
        with none."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if not self._pending and not self._ended:
                self._take()
            if self._ended:
                return None
            if self._pending:
                batch = list(self._pending)
                self._pending.clear()
                return batch
            left = deadline - loop.time()
            if left <= 0:
                return False
            await self._wait(left)

    async def next(self, timeout_s: float) -> StampedEvent | Literal[False] | None:
        """The next event; ``None`` at the end; ``False`` when ``timeout_s`` passed first."""
        if not self._pending and not self._ended:
            batch = await self.next_batch(timeout_s)
            if batch is None or batch is False:
                return batch
            self._pending.extend(batch)
        if self._ended:
            return None
        return self._pending.popleft()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventBus:
    def __init__(
        self,
        metrics: Metrics,
        *,
        subscriber_queue: int = 256,
        replay: int = 1000,
        max_subscribers: int = 1000,
        flush_s: float = 0.0,
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
        #: The shared log subscribers read from (``Subscription``).
        self._live: deque[tuple[int, StampedEvent]] = deque(maxlen=subscriber_queue)
        self.head = 0
        self._subscriptions: set[Subscription] = set()
        self._max_subscribers = max_subscribers
        #: Subscribers waiting for a publication, woken in slices after ``flush_s``.
        self._waiting: set[Subscription] = set()
        self._flush_s = flush_s
        self._wake_scheduled = False
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
        self._metrics.events.labels(event.type.value).inc()
        log.info(
            "status event",
            event_id=stamped.id,
            event_type=event.type.value,
            account=event.account,
            symbol=event.symbol,
            data=dict(event.data),
        )
        self._append(seq, stamped)
        for sink in self._sinks:
            sink(stamped)
        return stamped

    def deliver(self, stamped: StampedEvent) -> None:
        """Hand an event stamped elsewhere (fleet mode: read from the fleet's event stream,
        already logged and counted by the process that emitted it) to the SSE streams only."""
        self._append(next(self._seq), stamped)

    def lose_all(self) -> None:
        """End every open stream with the ``overflow`` notice (events were lost upstream)."""
        for sub in list(self._subscriptions):
            sub.overflowed = True
            self.dropped(sub, "overflow")
            sub.end()

    def _append(self, seq: int, stamped: StampedEvent) -> None:
        self._recent.append((seq, stamped))
        self._live.append((seq, stamped))
        self.head = seq
        if self._waiting and not self._wake_scheduled:
            self._wake_scheduled = True
            loop = asyncio.get_running_loop()
            if self._flush_s > 0:
                loop.call_later(self._flush_s, self._wake)
            else:
                loop.call_soon(self._wake)

    # ------------------------------------------------------------------ SSE subscriptions

    @property
    def full(self) -> bool:
        """Whether the subscriber cap (``events.sse_max_subscribers``) is reached."""
        return len(self._subscriptions) >= self._max_subscribers

    def subscribe(self, account: str | None) -> Subscription:
        """A subscription from the next event on; raises ``TooManySubscribers`` at the cap."""
        if self.full:
            self._metrics.sse_refused.inc()
            raise TooManySubscribers(self._max_subscribers)
        sub = Subscription(self, account, self.head)
        if self._closed:
            sub.end()
        self._subscriptions.add(sub)
        self._metrics.sse_subscribers.set(len(self._subscriptions))
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)
        self._waiting.discard(sub)
        self._metrics.sse_subscribers.set(len(self._subscriptions))

    def since(self, cursor: int) -> tuple[list[tuple[int, StampedEvent]], bool]:
        """Events of the shared log after ``cursor``, and whether some were already lost."""
        if cursor >= self.head:
            return [], False
        live = self._live
        if not live or live[0][0] > cursor + 1:
            return [], True
        start = cursor + 1 - live[0][0]
        return list(islice(live, start, None)), False

    def dropped(self, sub: Subscription, reason: str) -> None:
        """Count (and log) a subscriber dropped for being too slow."""
        self._metrics.sse_dropped.labels(reason).inc()
        log.warning("slow event-stream subscriber dropped", reason=reason, account=sub.account)

    def waiting(self, sub: Subscription) -> None:
        self._waiting.add(sub)

    def not_waiting(self, sub: Subscription) -> None:
        self._waiting.discard(sub)

    def _wake(self) -> None:
        """Wake waiting subscribers, a slice per loop turn, so that a thousand of them never
        hold the loop (and the decisions waiting on it) for long."""
        waiting = self._waiting
        for _ in range(min(_WAKE_SLICE, len(waiting))):
            waiting.pop().wake()
        if waiting:
            asyncio.get_running_loop().call_soon(self._wake)
        else:
            self._wake_scheduled = False

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
