"""After Redis restarts, the fleet's commands go through at once: no stale pooled connection.

Every fleet loop of a guard shares one redis-py pool. Connections that sat idle in it while
Redis was stopped are dead once Redis is back; before the fix, each loop's first command on
one failed (seen: lease renewal, state publish, the fallback watch, each once, in the 0.6 s
after the restart), every failure flipped the link to "unreachable" on ``/readyz``, counted a
reconnect and lost a lease renewal. A real ``redis-server``, stopped and started again.
"""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from prometheus_client import CollectorRegistry

from app.fleet.connection import REDIS_ERRORS, RedisLink, connect
from app.metrics import Metrics
from app.tasks import cancel_and_wait
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

#: Commands in flight at once: the pool holds this many connections before the restart.
PARALLEL = 8


async def _until(link: RedisLink, up: bool, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while link.up is not up:
            await link.wait_change(0.1)


async def _restart_and_use(redis_server: RedisServer) -> tuple[list[str], bool, float]:
    registry = CollectorRegistry()
    metrics = Metrics(registry, "test")
    redis = connect(redis_server.url, None, timeout_s=1.0)
    link = RedisLink(redis, metrics, interval_s=0.05)
    pinger = asyncio.create_task(link.run(), name="fleet-link")
    try:
        await _until(link, True, 10)
        # Fill the pool: PARALLEL connections, all idle afterwards.
        await asyncio.gather(*(redis.blpop([f"k{i}"], timeout=0.05) for i in range(PARALLEL)))
        assert len(redis.connection_pool._available_connections) >= PARALLEL
        await asyncio.to_thread(redis_server.stop)
        await _until(link, False, 10)
        await asyncio.to_thread(redis_server.start)
        await _until(link, True, 10)

        async def command(i: int) -> str:
            try:
                await redis.blpop([f"k{i}"], timeout=0.05)
            except REDIS_ERRORS as exc:
                link.error("test", exc)
                return type(exc).__name__
            return "ok"

        outcomes = await asyncio.gather(*(command(i) for i in range(PARALLEL)))
        reconnects = registry.get_sample_value("pretrade_guard_fleet_redis_reconnects_total")
        return list(outcomes), link.up, reconnects or 0.0
    finally:
        await cancel_and_wait([pinger])
        await redis.aclose()


def test_every_command_after_a_redis_restart_succeeds(redis_server: RedisServer) -> None:
    outcomes, up, reconnects = uvloop.run(_restart_and_use(redis_server))
    assert outcomes == ["ok"] * PARALLEL
    assert up, "the link went down again after Redis came back"
    assert reconnects == 1
