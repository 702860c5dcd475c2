"""Stopping a fleet loop that talks to Redis ends it, even when redis-py loses the cancellation.

On Python 3.11, redis-py's socket write (``asyncio.wait_for``) swallows a cancellation that
arrives as the write completes (``app/tasks.py``); the loop then carries on, and a shutdown
that cancels it once and awaits it never returns (seen: pool workers hung in their lifespan
shutdown until SIGKILL). A real ``redis-server`` and our own ``RedisLink.run`` loop, pinging
without a pause (so that a cancellation lands in a write often: measured, about every other
cycle loses its first cancellation on 3.11), cancelled at random moments: ``cancel_and_wait``
ends it every time.
"""

from __future__ import annotations

import asyncio
import random

import pytest
import uvloop
from prometheus_client import CollectorRegistry

from app.fleet.connection import RedisLink, connect
from app.metrics import Metrics
from app.tasks import cancel_and_wait
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

CYCLES = 40
#: Only a bound that turns a hang into a failure: a stop takes milliseconds.
HANG_S = 30.0


async def _stop_loops(url: str) -> list[bool]:
    redis = connect(url, None, timeout_s=1.0)
    link = RedisLink(redis, Metrics(CollectorRegistry(), "test"), interval_s=0.0005)
    stopped = []
    try:
        for _ in range(CYCLES):
            task = asyncio.create_task(link.run(), name="fleet-link")
            await asyncio.sleep(random.uniform(0.0, 0.005))
            try:
                async with asyncio.timeout(HANG_S):
                    await cancel_and_wait([task], recancel_s=0.05)
            except TimeoutError:
                task.cancel()  # best effort; the test fails below anyway
            stopped.append(task.done())
    finally:
        await redis.aclose()
    return stopped


def test_a_loop_talking_to_redis_stops_when_cancelled(redis_server: RedisServer) -> None:
    stopped = uvloop.run(_stop_loops(redis_server.url))
    assert stopped == [True] * CYCLES
