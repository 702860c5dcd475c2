"""One poller per account fleet-wide: leases with fencing tokens, spread over live refreshers.

* A lease is ``SET lease:{acct} <refresher>:<fence> NX PX ttl``; the fence comes from
  ``INCR fence:{acct}`` in the same script, so every acquisition gets a larger token and a
  holder that lost its lease can no longer publish (``feed.StatePublisher`` is fenced).
* Renewal (every ``ttl/4``) is compare-and-pexpire; a refused renewal stops the account's
  poller at once. A holder that cannot reach Redis also stops when its lease would have
  expired by its own monotonic clock (``ttl`` after the last successful renewal, less a
  safety margin): it never polls on a lease it may no longer hold.
* Every refresher heartbeats into a sorted set; each holds at most
  ``ceil(accounts / live refreshers)`` leases, preferring accounts in an order hashed with
  its id (rendezvous hashing), and releases its least preferred extras when more refreshers
  come up. A dead refresher's leases expire within ``ttl`` and the others take them on
  their next round (``ttl/4``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis

from app.fleet.connection import REDIS_ERRORS, RedisLink
from app.fleet.model import Keys
from app.metrics import Metrics

log = structlog.get_logger("app.fleet")

_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local f = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. f, 'PX', ARGV[2])
return f
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[1] ~= '' then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) end
return redis.call('ZCARD', KEYS[1])
"""
_LEAVE = "return redis.call('ZREM', KEYS[1], ARGV[1])"


def refresher_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


@dataclass(slots=True)
class Lease:
    fence: int
    value: str
    #: Monotonic time until which this process may act on the lease.
    valid_until: float


class LiveRefreshers:
    """How many refreshers have a live heartbeat (also used by api processes)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._keys = keys
        self._script = redis.register_script(_HEARTBEAT)
        self._leave = redis.register_script(_LEAVE)

    async def beat(self, member: str, ttl_ms: int) -> int:
        return int(await self._script(keys=[self._keys.refreshers], args=[member, ttl_ms]))

    async def count(self) -> int:
        return int(await self._script(keys=[self._keys.refreshers], args=["", 0]))

    async def leave(self, member: str) -> None:
        await self._leave(keys=[self._keys.refreshers], args=[member])


class LeaseManager:
    """Acquires, renews and releases this refresher's leases; tells the pollers."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        link: RedisLink,
        metrics: Metrics,
        accounts: Sequence[str],
        *,
        ttl_s: float,
        on_acquire: Callable[[str, int], Awaitable[None]],
        on_lose: Callable[[str], None],
        member: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._link = link
        self._metrics = metrics
        self.ttl_s = ttl_s
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._safety_s = min(0.1 * ttl_s, 1.0)
        self._on_acquire = on_acquire
        self._on_lose = on_lose
        self.member = member or refresher_id()
        self._monotonic = monotonic
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._live = LiveRefreshers(redis, keys)
        self.held: dict[str, Lease] = {}
        self.live = 0
        # Rendezvous order: each refresher prefers a different, stable set of accounts.
        self._order = sorted(
            accounts, key=lambda a: hashlib.sha256(f"{a}\0{self.member}".encode()).digest()
        )
        self.registered = False

    def fence(self, account: str) -> int | None:
        """The fencing token while this process may act on the account's lease."""
        lease = self.held.get(account)
        if lease is None or self._monotonic() >= lease.valid_until:
            return None
        return lease.fence

    async def run(self) -> None:
        """Rounds every ``ttl/4`` until cancelled."""
        period = self.ttl_s / 4
        while True:
            started = self._monotonic()
            try:
                async with asyncio.timeout(period):  # not wait_for: app/tasks.py
                    await self.round()
            except REDIS_ERRORS as exc:
                self._link.error("leases", exc)
                self.registered = False
            self._drop_expired()
            await asyncio.sleep(max(0.0, period - (self._monotonic() - started)))

    def _drop_expired(self) -> None:
        now = self._monotonic()
        for account, lease in list(self.held.items()):
            if now >= lease.valid_until:
                log.warning("lease expired without renewal; polling stopped", account=account)
                self._lose(account, "lost")

    def _lose(self, account: str, change: str) -> None:
        self.held.pop(account, None)
        self._metrics.fleet_lease_changes.labels(change).inc()
        self._metrics.fleet_leases_held.set(len(self.held))
        self._on_lose(account)

    async def round(self) -> None:
        self.live = max(1, await self._live.beat(self.member, self._ttl_ms))
        self.registered = True
        self._link.ok()
        self._metrics.fleet_live_refreshers.labels(self._link.role).set(self.live)
        for account, lease in list(self.held.items()):
            started = self._monotonic()
            renewed = await self._renew(
                keys=[self._keys.lease(account)], args=[lease.value, self._ttl_ms]
            )
            if int(renewed) != 1:
                log.warning("lease taken or expired; polling stopped", account=account)
                self._lose(account, "lost")
            else:
                lease.valid_until = started + self.ttl_s - self._safety_s
        target = math.ceil(len(self._order) / self.live)
        if len(self.held) > target:
            extras = [a for a in reversed(self._order) if a in self.held][: len(self.held) - target]
            for account in extras:
                await self.release(account)
            return
        for account in self._order:
            if len(self.held) >= target:
                break
            if account in self.held:
                continue
            started = self._monotonic()
            fence = int(
                await self._acquire(
                    keys=[self._keys.lease(account), self._keys.fence(account)],
                    args=[self.member, self._ttl_ms],
                )
            )
            if fence == 0:
                continue
            self.held[account] = Lease(
                fence, f"{self.member}:{fence}", started + self.ttl_s - self._safety_s
            )
            self._metrics.fleet_lease_changes.labels("acquired").inc()
            self._metrics.fleet_leases_held.set(len(self.held))
            log.info("lease acquired", account=account, fence=fence)
            await self._on_acquire(account, fence)

    async def release(self, account: str) -> None:
        lease = self.held.get(account)
        if lease is None:
            return
        self._lose(account, "released")  # stop polling first, then let others take it
        await self._release(keys=[self._keys.lease(account)], args=[lease.value])
        log.info("lease released", account=account)

    async def stop(self) -> None:
        """Release every lease and leave the refresher set (a clean shutdown hands over at
        once instead of after the TTL)."""
        for account in list(self.held):
            try:
                await self.release(account)
            except REDIS_ERRORS:
                self._lose(account, "released")
        with contextlib.suppress(*REDIS_ERRORS):
            await self._live.leave(self.member)
