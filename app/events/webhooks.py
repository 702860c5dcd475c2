"""Webhook delivery: one background worker per webhook, a bounded queue, signed POSTs.

Nothing here is ever awaited by a poller or a request: ``offer`` appends to a bounded deque
(the oldest event is dropped and counted when it is full) and wakes the worker. The worker
delivers events one at a time, in order, with its own HTTP client and short timeouts, and
retries failures with exponential backoff and full jitter (a small loop; a retry library
would add a dependency for ten lines). A hanging receiver therefore only delays its own
queue; other webhooks, SSE clients, pollers and decisions never wait for it.

Outcomes (``pretrade_guard_webhook_deliveries_total{outcome}``): ``delivered`` (2xx),
``retried`` (one per retry), ``failed`` (gave up: attempts exhausted, or a 4xx that a
retry cannot fix), ``dropped`` (pushed out of a full queue, or pending at shutdown).
Delivery is at-least-once while the guard runs and not durable across restarts: receivers
de-duplicate with ``X-Pretrade-Event-Id`` and reconcile with ``GET /accounts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx
import structlog

from app.events.model import EventType, StampedEvent
from app.events.signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    signature_header,
)
from app.metrics import Metrics
from app.tasks import cancel_and_wait

log = structlog.get_logger("app.webhooks")

#: HTTP statuses worth retrying; any other 4xx means the request itself is refused.
_RETRYABLE = frozenset({408, 425, 429})


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """One configured receiver (built by the composition root from settings)."""

    name: str
    url: str
    secret: bytes = field(repr=False)
    timeout_s: float = 5.0
    max_attempts: int = 5
    event_types: frozenset[EventType] | None = None
    accounts: frozenset[str] | None = None
    queue_size: int = 1000
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0

    def wants(self, event: StampedEvent) -> bool:
        ev = event.event
        if self.event_types is not None and ev.type not in self.event_types:
            return False
        # Global events (no account) concern every account filter.
        return self.accounts is None or ev.account is None or ev.account in self.accounts


def backoff_s(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max, base × 2^(attempt-1))], at least 10 ms."""
    ceiling = min(max_s, base_s * (2 ** min(attempt - 1, 30)))
    return max(0.01, rng.uniform(0, ceiling))


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    return None


class WebhookDispatcher:
    """Delivers the events one webhook wants, in order, in a background task."""

    def __init__(
        self,
        target: WebhookTarget,
        metrics: Metrics,
        *,
        user_agent: str = "pretrade-guard",
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], int] = _wall_ms,
    ) -> None:
        self.target = target
        self._queue: deque[StampedEvent] = deque(maxlen=target.queue_size)
        self._wake = asyncio.Event()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._clock = clock
        self._transport = transport
        self._user_agent = user_agent
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        name = target.name
        self._delivered = metrics.webhook_deliveries.labels(name, "delivered")
        self._failed = metrics.webhook_deliveries.labels(name, "failed")
        self._retried = metrics.webhook_deliveries.labels(name, "retried")
        self._dropped = metrics.webhook_deliveries.labels(name, "dropped")
        self._depth = metrics.webhook_queue_depth.labels(name)
        self._depth.set(0)
        self._log = log.bind(webhook=name)

    # ------------------------------------------------------------------ producer side

    def offer(self, event: StampedEvent) -> None:
        """Queue ``event`` if this webhook wants it; never waits (an event bus sink)."""
        if not self.target.wants(event):
            return
        if len(self._queue) == self._queue.maxlen:
            self._dropped.inc()  # the deque drops the oldest on append
            self._log.warning("webhook queue full; oldest event dropped")
        self._queue.append(event)
        self._depth.set(len(self._queue))
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------ worker

    def start(self) -> None:
        self._client = httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(self.target.timeout_s),
            follow_redirects=False,
            headers={"User-Agent": self._user_agent},
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        self._task = asyncio.create_task(self._run(), name=f"webhook:{self.target.name}")

    async def stop(self) -> None:
        """Cancel the worker; events still queued are counted as dropped."""
        if self._task is not None:
            await cancel_and_wait((self._task,))
            self._task = None
        if self._queue:
            self._dropped.inc(len(self._queue))
            self._log.warning("webhook events not delivered at shutdown", count=len(self._queue))
            self._queue.clear()
            self._depth.set(0)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            event = self._queue.popleft()  # in flight; the queue holds only pending events
            self._depth.set(len(self._queue))
            try:
                await self.deliver(event)
            except Exception:  # the worker's loop boundary: a bug must not stop deliveries
                self._failed.inc()
                self._log.exception("webhook delivery crashed", event_id=event.id)

    async def deliver(
        self, event: StampedEvent, *, keep_going: Callable[[], bool] | None = None
    ) -> bool:
        """POST ``event`` until it is accepted or attempts run out; True when delivered.

        ``keep_going`` (fleet mode) is asked before every retry: False abandons the event
        (another replica has taken it over), without counting an outcome."""
        client = self._client
        if client is None:
            raise RuntimeError("webhook dispatcher not started")
        target = self.target
        for attempt in range(1, target.max_attempts + 1):
            if attempt > 1 and keep_going is not None and not keep_going():
                self._log.info("webhook delivery taken over elsewhere", event_id=event.id)
                return False
            retry_after: float | None = None
            try:
                response = await client.post(
                    target.url, content=event.body, headers=self._headers(event)
                )
            except httpx.HTTPError as exc:
                outcome = f"{type(exc).__name__}"
            else:
                if 200 <= response.status_code < 300:
                    self._delivered.inc()
                    return True
                outcome = f"HTTP {response.status_code}"
                retryable = response.status_code >= 500 or response.status_code in _RETRYABLE
                if not retryable:
                    self._failed.inc()
                    self._log.warning(
                        "webhook refused the event; not retried",
                        event_id=event.id,
                        outcome=outcome,
                    )
                    return False
                retry_after = _retry_after_s(response)
            if attempt == target.max_attempts:
                break
            self._retried.inc()
            delay = backoff_s(attempt, target.backoff_base_s, target.backoff_max_s, self._rng)
            if retry_after is not None:
                delay = min(max(delay, retry_after), target.backoff_max_s)
            self._log.info(
                "webhook delivery failed; retrying",
                event_id=event.id,
                attempt=attempt,
                outcome=outcome,
                retry_in_s=round(delay, 3),
            )
            await asyncio.sleep(delay)
        self._failed.inc()
        self._log.warning(
            "webhook delivery failed; giving up",
            event_id=event.id,
            attempts=target.max_attempts,
            outcome=outcome,
        )
        return False

    def count_crash(self, event: StampedEvent, exc: BaseException) -> None:
        """A delivery that raised (a bug): counted failed and logged, like ``_run`` does."""
        self._failed.inc()
        self._log.error("webhook delivery crashed", event_id=event.id, error=repr(exc))

    def _headers(self, event: StampedEvent) -> dict[str, str]:
        # Signed per attempt: a retry carries a fresh timestamp inside the receiver's window.
        return {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(self.target.secret, self._clock(), event.body),
            EVENT_ID_HEADER: event.id,
            EVENT_TYPE_HEADER: event.event.type.value,
        }


class Webhooks:
    """Every dispatcher; an event-bus sink that offers each event to each of them."""

    def __init__(self, dispatchers: list[WebhookDispatcher]) -> None:
        self.dispatchers = dispatchers

    def __call__(self, event: StampedEvent) -> None:
        for dispatcher in self.dispatchers:
            dispatcher.offer(event)

    def start(self) -> None:
        for dispatcher in self.dispatchers:
            dispatcher.start()

    async def stop(self) -> None:
        await asyncio.gather(*(d.stop() for d in self.dispatchers))
