"""Webhooks once per fleet: a Redis Streams consumer group per webhook, each replica a consumer.

Every replica with webhooks configured reads the fleet's event stream through each
webhook's group (``XREADGROUP``, ``fleet.webhook_batch`` entries at a time), so each event
goes to one replica, which delivers it with the same retries, backoff and signing as in
embedded mode (``WebhookDispatcher.deliver``) and then acknowledges it (``XACK``; an event
the webhook does not want, or that it refused, is acknowledged too).

While it works on an event the replica keeps it fresh in the group (``XCLAIM ... JUSTID``
every third of ``fleet.webhook_claim_idle_s``, only if the event is still its own). An event
left idle for longer, because its replica died or was cut off from Redis, is taken over by
another replica (``XAUTOCLAIM``, a bounded batch every half of the idle bound) and delivered
from the first attempt; a replica that finds its event taken over abandons it. A receiver
therefore gets each event once, except that a delivery the receiver took but whose replica
died before the ``XACK`` (or was cut off past the idle bound in the middle of a request) is
delivered again by the replica that takes it over: de-duplicate by ``X-Pretrade-Event-Id``,
which is the same fleet-wide.

Across replicas, events of one webhook may overtake each other (each replica delivers its
own in order); the stream id (the event id) gives the fleet's order.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.events.webhooks import WebhookDispatcher
from app.fleet.connection import REDIS_ERRORS, RedisLink
from app.fleet.events import entries, stamped_from_entry, streams
from app.fleet.model import Keys
from app.metrics import Metrics

log = structlog.get_logger("app.webhooks")

# KEYS: event stream; ARGV: group, consumer, entry id. Resets the entry's idle time if it is
# still this consumer's; 0 when another consumer has taken it over (or it was acknowledged).
_OWN = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""

#: Consumers of dead replicas are removed from a group once idle this long with nothing
#: pending (they are only names; bounded by how many replicas ever ran).
_FORGET_CONSUMER_MS = 3_600_000


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


class GroupDelivery:
    """One webhook's deliveries by this replica. ``run`` returns only when cancelled."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        link: RedisLink,
        metrics: Metrics,
        dispatcher: WebhookDispatcher,
        *,
        consumer: str,
        claim_idle_s: float,
        block_s: float,
        batch: int = 10,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._link = link
        self.dispatcher = dispatcher
        self.name = dispatcher.target.name
        self.group = keys.webhook_group(self.name)
        self.consumer = consumer
        self._idle_ms = max(1, round(claim_idle_s * 1000))
        self._claim_every_s = claim_idle_s / 2
        self._heartbeat_s = claim_idle_s / 3
        self._block_ms = max(10, round(block_s * 1000))
        self._batch = batch
        self._own = redis.register_script(_OWN)
        self._cursor: Any = "0-0"
        self._to_ack: list[Any] = []
        self._claimed = metrics.fleet_webhook_claimed.labels(self.name)
        self._pending = metrics.fleet_webhook_pending.labels(self.name)
        self._dropped = metrics.webhook_deliveries.labels(self.name, "dropped")
        self._rounds = 0
        self._log = log.bind(webhook=self.name, consumer=consumer)

    async def run(self) -> None:
        while True:
            try:
                await self._ensure_group()
                await self._loop()
            except ResponseError as exc:  # e.g. NOGROUP after Redis lost its data: recreate
                self._log.warning("webhook consumer group error", error=str(exc))
                await asyncio.sleep(0.5)
            except REDIS_ERRORS as exc:
                self._link.error("webhooks", exc)
                await asyncio.sleep(0.5)
            except Exception:  # the loop boundary: deliveries must outlive a bug
                self._log.exception("webhook consumer loop failed; restarting it")
                await asyncio.sleep(1.0)

    async def _ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(
                self._keys.events_stream, self.group, id="$", mkstream=True
            )
            self._log.info("webhook consumer group created")
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _loop(self) -> None:
        next_claim = 0.0
        while True:
            await self._flush_acks()
            rows: list[tuple[Any, dict[Any, Any]]] = []
            if time.monotonic() >= next_claim:
                next_claim = time.monotonic() + self._claim_every_s
                rows = await self._claim()
                await self._housekeeping()
            if not rows:
                reply = await self._redis.xreadgroup(
                    self.group,
                    self.consumer,
                    {self._keys.events_stream: ">"},
                    count=self._batch,
                    block=min(self._block_ms, max(10, round(self._claim_every_s * 1000))),
                )
                self._link.ok()
                rows = streams(reply)
            for entry_id, fields in rows:
                await self._handle(entry_id, fields)

    async def _claim(self) -> list[tuple[Any, dict[Any, Any]]]:
        """Take over entries idle past the bound (their replica died or was cut off)."""
        reply = await self._redis.xautoclaim(
            self._keys.events_stream,
            self.group,
            self.consumer,
            min_idle_time=self._idle_ms,
            start_id=self._cursor,
            count=self._batch,
        )
        self._link.ok()
        self._cursor = reply[0] if reply else "0-0"
        rows = entries(reply[1] if len(reply) > 1 else [])
        deleted = reply[2] if len(reply) > 2 else []
        if deleted:
            # Trimmed from the stream (fleet.events_maxlen) before anyone delivered them.
            self._dropped.inc(len(deleted))
            self._log.warning("webhook events trimmed before delivery", count=len(deleted))
        if rows:
            self._claimed.inc(len(rows))
            self._log.warning(
                "webhook deliveries taken over from another replica",
                count=len(rows),
                event_ids=[_text(r[0]) for r in rows],
            )
        return rows

    async def _housekeeping(self) -> None:
        """The group's backlog for the metric (read and unacknowledged, plus not yet read:
        ``lag``, unknown to Redis for a while after a trim), and forgetting dead consumers."""
        for group in await self._redis.xinfo_groups(self._keys.events_stream):
            if _text(group.get("name", b"")) == self.group:
                lag = group.get("lag")
                backlog = int(group.get("pending", 0) or 0) + int(lag or 0)
                self._pending.set(backlog)
        self._rounds += 1
        if self._rounds % 20 != 1:
            return
        consumers = await self._redis.xinfo_consumers(self._keys.events_stream, self.group)
        for consumer in consumers[:1000]:
            name = _text(consumer.get("name", b""))
            pending_n = int(consumer.get("pending", 0) or 0)
            idle = int(consumer.get("idle", 0) or 0)
            if name != self.consumer and pending_n == 0 and idle > _FORGET_CONSUMER_MS:
                await self._redis.xgroup_delconsumer(self._keys.events_stream, self.group, name)

    async def _handle(self, entry_id: Any, fields: dict[Any, Any]) -> None:
        try:
            stamped = stamped_from_entry(entry_id, fields)
        except ValueError as exc:
            self._log.error("unreadable fleet event; skipped", error=str(exc))
            await self._ack(entry_id)
            return
        if not self.dispatcher.target.wants(stamped):
            await self._ack(entry_id)
            return
        if not await self._still_mine(entry_id):
            return  # taken over by another replica while it waited in this batch
        lost = False
        delivery = asyncio.create_task(
            self.dispatcher.deliver(stamped, keep_going=lambda: not lost),
            name=f"webhook:{self.name}:{stamped.id}",
        )

        async def heartbeat() -> None:
            nonlocal lost
            while True:
                await asyncio.sleep(self._heartbeat_s)
                try:
                    mine = await self._still_mine(entry_id)
                except REDIS_ERRORS as exc:
                    self._link.error("webhooks", exc)
                    continue  # unknown: keep going; the idle bound decides
                if not mine:
                    lost = True
                    delivery.cancel()
                    return

        beat = asyncio.create_task(heartbeat())
        try:
            await asyncio.wait({delivery})
        finally:
            beat.cancel()
            if not delivery.done():
                delivery.cancel()
            await asyncio.gather(beat, delivery, return_exceptions=True)
        if lost or delivery.cancelled():
            self._log.warning("webhook delivery taken over by another replica", event_id=stamped.id)
            return
        crash = delivery.exception()
        if crash is not None:  # a bug: counted failed, like the embedded worker's boundary
            self.dispatcher.count_crash(stamped, crash)
        await self._ack(entry_id)

    async def _still_mine(self, entry_id: Any) -> bool:
        mine = await self._own(
            keys=[self._keys.events_stream], args=[self.group, self.consumer, entry_id]
        )
        return int(mine) == 1

    async def _ack(self, entry_id: Any) -> None:
        self._to_ack.append(entry_id)
        await self._flush_acks()

    async def _flush_acks(self) -> None:
        while self._to_ack:
            await self._redis.xack(self._keys.events_stream, self.group, *self._to_ack[:100])
            del self._to_ack[:100]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
