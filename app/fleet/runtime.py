"""One guard process's part of the fleet: which loops run for its role, outage fallback,
readiness.

Roles: ``api`` follows the state feed and the shared controls and answers; ``refresher``
holds leases, polls and publishes; ``all`` does both. While Redis (or every refresher) has
been gone for longer than ``fallback_grace_s``, an api process in the default
``keep_trading`` mode polls its accounts itself (``fallback``), and stops when the fleet is
back; in ``deny`` mode it denies every order instead (``FleetControls``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis

from app.fleet.connection import REDIS_ERRORS, RedisLink, check_persistence
from app.fleet.controls import FleetControls
from app.fleet.feed import StateFeed, StatePublisher
from app.fleet.leases import LeaseManager, LiveRefreshers
from app.fleet.model import FleetRole, RedisLossMode
from app.metrics import Metrics
from app.tasks import cancel_and_wait

log = structlog.get_logger("app.fleet")


class Polling(Protocol):
    """A set of pollers that can be started and stopped as a whole (the fallback)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class FleetRuntime:
    def __init__(
        self,
        *,
        redis: Redis,
        link: RedisLink,
        metrics: Metrics,
        role: FleetRole,
        controls: FleetControls,
        live: LiveRefreshers,
        feed: StateFeed | None,
        leases: LeaseManager | None,
        publisher: StatePublisher | None,
        polling: Polling | None,
        fallback: Callable[[], Polling] | None,
        on_redis_loss: RedisLossMode,
        grace_s: float,
        where: str,
        loops: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] | None = None,
    ) -> None:
        self.redis = redis
        self.link = link
        self._metrics = metrics
        self.role = role
        self.controls = controls
        self._live = live
        self.feed = feed
        self.leases = leases
        self.publisher = publisher
        self._polling = polling
        self._make_fallback = fallback
        self._fallback: Polling | None = None
        self.on_redis_loss = on_redis_loss
        self.grace_s = grace_s
        self.where = where
        #: Other parts' background loops (events, webhook deliveries), run while started.
        self._loops = list(loops or ())
        self._tasks: list[asyncio.Task[None]] = []
        self._no_refresher_since: float | None = None
        self.persistence_warnings: list[str] = []

    @property
    def answers(self) -> bool:
        return self.role.answers

    @property
    def fallback_polling(self) -> bool:
        return self._fallback is not None

    async def start(self) -> None:
        try:
            self.persistence_warnings = await check_persistence(self.redis)
            self.link.ok()
        except REDIS_ERRORS as exc:
            self.link.error("start", exc)
            log.error("fleet redis unreachable at start", redis=self.where)
        for warning in self.persistence_warnings:
            log.error("REDIS PERSISTENCE: " + warning, redis=self.where)
        await self.controls.open()
        if self.feed is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await self.feed.resync()  # answers start from the stored states
        self._spawn(self.link.run(), "fleet-link")
        self._spawn(self.controls.run(), "fleet-controls")
        if self.feed is not None:
            self._spawn(self.feed.run(), "fleet-feed")
        if self.publisher is not None:
            self._spawn(self.publisher.run(), "fleet-publisher")
        if self.leases is not None:
            self._spawn(self.leases.run(), "fleet-leases")
        if self.role.answers:
            self._spawn(self._watch(), "fleet-watch")
        for name, loop in self._loops:
            self._spawn(loop(), name)
        log.info("fleet mode started", role=self.role.value, redis=self.where)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def stop(self) -> None:
        if self.leases is not None:
            await self.leases.stop()  # hand the accounts over now, not after the TTL
        # Cancelled again if one carries on (a cancellation lost in redis-py: app/tasks.py).
        await cancel_and_wait(self._tasks)
        if self._polling is not None:
            await self._polling.stop()
        if self._fallback is not None:
            await self._fallback.stop()
            self._fallback = None
        with contextlib.suppress(*REDIS_ERRORS):
            await self.redis.aclose()

    async def _watch(self) -> None:
        """Api side: notice a fleet without Redis or without refreshers; fall back."""
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            try:
                live = await self._live.count()
                self.link.ok()
            except REDIS_ERRORS as exc:
                self.link.error("watch", exc)
            else:
                self._metrics.fleet_live_refreshers.labels(self.link.role).set(live)
                if live > 0:
                    self._no_refresher_since = None
                elif self._no_refresher_since is None:
                    self._no_refresher_since = now
            no_refresher = (
                self._no_refresher_since is not None
                and now - self._no_refresher_since > self.grace_s
            )
            lost = self.link.down_for() > self.grace_s or no_refresher
            if self.on_redis_loss is not RedisLossMode.KEEP_TRADING or self._make_fallback is None:
                continue
            if lost and self._fallback is None:
                log.warning(
                    "fleet lost (redis unreachable or no live refresher): polling locally",
                    redis_up=self.link.up,
                )
                self._fallback = self._make_fallback()
                self._fallback.start()
                self._metrics.fleet_fallback_polling.set(1)
            elif not lost and self._fallback is not None:
                log.info("fleet back: local polling stopped")
                fallback, self._fallback = self._fallback, None
                await fallback.stop()
                self._metrics.fleet_fallback_polling.set(0)

    def readiness(self) -> dict[str, Any]:
        """``/readyz``'s fleet section: the role and what this process waits for."""
        waiting: list[str] = []
        if not self.link.up:
            waiting.append("redis")
        if self.role.answers:
            if not self.controls.loaded:
                waiting.append("kill switches from redis")
            if self.feed is not None and not self.feed.synced:
                waiting.append("account state from redis")
            if self.feed is not None:
                waiting.extend(
                    f"market rules of {host} from redis" for host in self.feed.markets_missing()
                )
        if self.leases is not None and not self.leases.registered:
            waiting.append("refresher registration")
        body: dict[str, Any] = {
            "role": self.role.value,
            "redis": "up" if self.link.up else "unreachable",
            "controls_version": self.controls.version,
            "waiting_for": waiting,
            "fallback_polling": self.fallback_polling,
        }
        if self.leases is not None:
            body["leases"] = sorted(self.leases.held)
            body["live_refreshers"] = self.leases.live
        if self.persistence_warnings:
            body["redis_persistence_warnings"] = self.persistence_warnings
        return body

    def ready(self) -> bool:
        """Ready to serve its role. An api process with its controls loaded, its state read
        and every host's market rules received once stays ready through an outage (it
        answers from memory, fail-closed)."""
        if self.role.answers:
            return self.controls.loaded and (
                self.feed is None or (self.feed.synced and not self.feed.markets_missing())
            )
        return self.link.up and self.leases is not None and self.leases.registered
