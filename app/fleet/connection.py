"""The Redis connection of one guard process: clients, health, and the persistence check.

redis-py reconnects by itself on the next command after a dropped connection; ``RedisLink``
watches the link (a PING loop), so the rest of the fleet code can ask "is Redis up, and
since when is it down", counts errors and reconnects for the metrics, and drops the pool's
idle connections while Redis is down (they are dead once it is back).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.metrics import Metrics

log = structlog.get_logger("app.fleet")

#: Errors meaning "Redis did not do it": connection, timeout, server errors.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)


def connect(url: str, password: str | None, *, timeout_s: float) -> Redis:
    """A client for ``redis://``, ``rediss://`` or ``unix://`` URLs (a pool; no I/O yet).

    The password from the settings (a secret file) wins over one in the URL. No retries here:
    callers decide (a decision waits a bounded time, background loops retry with backoff).
    """
    kwargs: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "health_check_interval": 10,
        "retry_on_timeout": False,
        "decode_responses": False,
    }
    if password is not None:
        kwargs["password"] = password
    return Redis.from_url(url, **kwargs)


def safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


async def check_persistence(redis: Redis) -> list[str]:
    """Warnings about settings that would let an acknowledged kill switch vanish."""
    warnings: list[str] = []
    appendonly = await redis.config_get("appendonly")
    fsync = await redis.config_get("appendfsync")
    if _value(appendonly, "appendonly") != "yes":
        warnings.append(
            "Redis runs without AOF (appendonly no): an engaged kill switch can be lost when "
            "Redis restarts; set appendonly yes and appendfsync always"
        )
    elif _value(fsync, "appendfsync") != "always":
        warnings.append(
            f"Redis appendfsync is {_value(fsync, 'appendfsync')!r}: up to a second of "
            "acknowledged kill-switch changes can be lost on a crash; set appendfsync always"
        )
    return warnings


def _value(reply: Any, key: str) -> str:
    if isinstance(reply, dict):
        raw = reply.get(key, reply.get(key.encode(), b""))
        return raw.decode() if isinstance(raw, bytes) else str(raw)
    return ""


class RedisLink:
    """Up/down state of the connection, from a PING every ``interval_s``."""

    def __init__(
        self,
        redis: Redis,
        metrics: Metrics,
        *,
        role: str = "all",
        interval_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self._metrics = metrics
        self.interval_s = interval_s
        self._monotonic = monotonic
        self.up = False
        self._was_up = False
        #: Monotonic time since which Redis is unreachable (start counts as unreachable).
        self.down_since: float | None = monotonic()
        self._listeners: list[Callable[[bool], None]] = []
        self._changed = asyncio.Event()
        #: This process's fleet role (the label of its fleet gauges).
        self.role = role
        self._up_gauge = metrics.fleet_redis_up.labels(role)
        self._up_gauge.set(0)

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(up)`` whenever the link goes up or down."""
        self._listeners.append(listener)

    def down_for(self) -> float:
        """Seconds Redis has been unreachable (0 when up)."""
        return 0.0 if self.down_since is None else self._monotonic() - self.down_since

    def error(self, where: str, exc: BaseException) -> None:
        """Record a failed command (any loop calls this); marks the link down."""
        self._metrics.fleet_redis_errors.labels(where).inc()
        if self.up:
            log.warning("redis unreachable", where=where, error=type(exc).__name__)
            self._set(False)

    def ok(self) -> None:
        if not self.up:
            self._set(True)

    def _set(self, up: bool) -> None:
        self.up = up
        self._up_gauge.set(1 if up else 0)
        if up:
            if self._was_up:  # the first connection is not a reconnect
                self._metrics.fleet_redis_reconnects.inc()
            self._was_up = True
            self.down_since = None
            log.info("redis reachable")
        else:
            self.down_since = self._monotonic()
        for listener in self._listeners:
            listener(up)
        self._changed.set()

    async def wait_change(self, timeout_s: float) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):  # not wait_for: app/tasks.py
                await self._changed.wait()

    async def run(self) -> None:
        while True:
            if not self.up:
                # Connections left idle in the pool when Redis went away are dead once it is
                # back: each would fail its next command once (a lost lease renewal, a failed
                # publish, the link flapping "unreachable"). Drop them while Redis is down.
                with contextlib.suppress(*REDIS_ERRORS):  # closing a dead socket may time out
                    await self.redis.connection_pool.disconnect(inuse_connections=False)
            try:
                await self.redis.ping()
            except REDIS_ERRORS as exc:
                self.error("ping", exc)
            else:
                self.ok()
            await asyncio.sleep(self.interval_s)
