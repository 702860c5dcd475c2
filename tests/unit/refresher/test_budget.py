"""Weight budgets: stretch poll intervals to fit, pause on the exchange's count, block on 429."""

from __future__ import annotations

import asyncio
import random

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from app.errors import ExchangeRateLimited
from app.metrics import Metrics
from app.refresher.budget import WeightBudget
from app.refresher.poller import full_jitter_backoff


class FakeClock:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_763_712_030.0  # 30 s into a minute

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall


def budget(limit: int = 1200, fraction: float = 0.5) -> tuple[WeightBudget, FakeClock, Metrics]:
    clock = FakeClock()
    metrics = Metrics(CollectorRegistry(), "test")
    b = WeightBudget(
        "generic-v2@h", limit, fraction, metrics, monotonic=clock.monotonic, wall=clock.time
    )
    return b, clock, metrics


def gauge(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"budget": "generic-v2@h"})


def test_target_is_the_configured_fraction_of_the_limit() -> None:
    b, _, metrics = budget(2400, 0.8)
    assert b.target == 1920
    assert gauge(metrics, "pretrade_guard_exchange_weight_target") == 1920


@pytest.mark.parametrize(
    ("accounts", "expected_stretch"),
    [
        pytest.param(1, 1.0, id="one-account-fits"),
        pytest.param(9, 1.0, id="nine-accounts-fit"),
        pytest.param(50, 50 * 60 / (600 * 10 / 11), id="fifty-accounts-stretch-5.5x"),
    ],
)
def test_demand_beyond_the_target_stretches_intervals(
    accounts: int, expected_stretch: float
) -> None:
    b, _, metrics = budget(1200, 0.5)  # target 600/min
    for _ in range(accounts):
        b.add_demand(60.0)  # e.g. weight 1 every second
    assert b.stretch == pytest.approx(expected_stretch)
    assert gauge(metrics, "pretrade_guard_poll_interval_stretch_ratio") == pytest.approx(
        expected_stretch
    )


async def test_no_rolling_minute_can_spend_more_than_the_target() -> None:
    b, _, _ = budget(1200, 0.5)  # target 600
    loop = asyncio.get_running_loop()
    spent: list[tuple[float, int]] = []

    async def spend() -> None:
        while True:
            await b.acquire(5)
            spent.append((loop.time(), 5))

    task = asyncio.create_task(spend())
    await asyncio.sleep(0.2)  # only the burst can go out this fast
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    burst = sum(w for _, w in spent)
    # The burst is the bucket's capacity (target/11), so burst + a minute of refill <= target.
    assert burst <= 600 / 11 + 5
    assert burst + b.sustained_per_minute <= 600 + 5


async def test_a_429_blocks_every_caller_until_retry_after() -> None:
    b, clock, metrics = budget()
    b.block(5.0, banned=False)
    with pytest.raises(ExchangeRateLimited) as caught:
        await b.acquire(1)
    assert caught.value.retry_after_s == pytest.approx(5.0)
    assert not caught.value.banned
    assert gauge(metrics, "pretrade_guard_exchange_blocked_until_timestamp_seconds") == (
        clock.wall + 5
    )
    clock.mono += 5.1
    await b.acquire(1)  # block over


async def test_a_caller_queued_in_the_bucket_when_a_429_arrives_does_not_go_out() -> None:
    b, _, _ = budget(1200, 0.5)  # bucket of 600/11 ~ 54.5 weight, refilled per 6 s
    await b.acquire(50)  # the bucket is (almost) full
    queued = asyncio.create_task(b.acquire(10))  # must wait ~0.5 s for room
    await asyncio.sleep(0.05)
    assert not queued.done()
    b.block(30.0, banned=False)  # a 429 comes back for another account meanwhile
    with pytest.raises(ExchangeRateLimited) as caught:
        await asyncio.wait_for(queued, timeout=3)
    assert caught.value.retry_after_s == pytest.approx(30.0)


async def test_a_call_heavier_than_the_bucket_is_counted_in_full() -> None:
    b, _, _ = budget(2400, 0.02)  # target 48/min: a bucket of ~4.4 weight, ~0.7 per second
    await asyncio.wait_for(b.acquire(4), timeout=0.1)  # fits the empty bucket at once
    b, _, _ = budget(2400, 0.02)
    # apiTradingStatus without a symbol weighs 10: more than the bucket holds, so it must
    # wait for refills instead of going out at once as if it weighed 4.4.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(b.acquire(10), timeout=0.3)


async def test_a_418_ban_is_reported_as_banned() -> None:
    b, _, _ = budget()
    b.block(120.0, banned=True)
    with pytest.raises(ExchangeRateLimited) as caught:
        await b.acquire(1)
    assert caught.value.banned


async def test_a_shorter_block_does_not_shorten_a_ban() -> None:
    b, _, _ = budget()
    b.block(120.0, banned=True)
    b.block(1.0, banned=False)
    assert b.blocked_for() == pytest.approx(120.0)


async def test_exchange_count_at_target_pauses_until_the_next_minute() -> None:
    b, _, metrics = budget(1200, 0.5)
    b.observe_used_weight(600)
    assert gauge(metrics, "pretrade_guard_exchange_used_weight") == 600
    # 30 s into the minute: the next call waits ~30.5 s. Prove it waits (not raises).
    task = asyncio.create_task(b.acquire(1))
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_pause_is_logged_once_with_the_count_and_its_length() -> None:
    b, clock, _ = budget(1200, 0.5)
    with capture_logs() as logs:
        b.observe_used_weight(600)
        b.observe_used_weight(640)  # answers in flight during the pause: no second line
        clock.mono += 31.0  # the pause (30.5 s) is over; a new count at the target pauses again
        clock.wall += 31.0
        b.observe_used_weight(700)
    paused = [e for e in logs if e["event"].startswith("exchange weight count reached")]
    assert [(e["used_weight"], e["weight_target"]) for e in paused] == [(600, 600), (700, 600)]
    assert paused[0]["budget"] == "generic-v2@h"
    assert paused[0]["log_level"] == "warning"
    assert paused[0]["paused_s"] == 30.5
    assert paused[1]["paused_s"] == 59.5


async def test_exchange_count_below_target_does_not_pause() -> None:
    b, _, _ = budget(1200, 0.5)
    b.observe_used_weight(599)
    await asyncio.wait_for(b.acquire(1), timeout=1)


@pytest.mark.parametrize("failures", [1, 2, 3, 5, 10, 40])
def test_full_jitter_backoff_stays_within_its_ceiling(failures: int) -> None:
    rng = random.Random(failures)
    ceiling = min(30.0, 0.5 * 2 ** (failures - 1))
    delays = [full_jitter_backoff(failures, 0.5, 30.0, rng) for _ in range(200)]
    assert all(0.01 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling / 2  # really spread, not a constant
