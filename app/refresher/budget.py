"""Request-weight budgets shared by every account polled against one key or host.

Exchanges count request weight per API key (generic v2) or per IP (Binance USD-M). A budget
holds the guard under a target fraction of the documented limit three ways:

1. a leaky bucket (aiolimiter) shaped so that no rolling minute can see more than ``target``
   weight: a bucket of capacity C refilled at C per P seconds lets through at most
   C + 60*C/P in any 60 s; with P = 6 s and C = target/11 that is exactly ``target``
   (sustained: 10/11 of it). A bucket of ``target`` per 60 s would allow a burst of
   ``target`` on top of the refill, up to twice the target in one minute;
2. poll intervals are stretched when the pollers running on the budget would need more than
   that (``stretch``), so adding accounts never pushes the guard over its target; a poller
   declares its demand while it runs, so a fleet refresher budgets for the accounts (and
   market hosts) whose lease it holds, not for every configured one;
3. the exchange's own count (``X-MBX-USED-WEIGHT-1M``) pauses calls until the next minute when
   it reaches the target (other processes behind the same IP spend the same weight), and a
   429/418 blocks every account of the budget until ``Retry-After`` has passed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from aiolimiter import AsyncLimiter

from app.errors import ExchangeRateLimited
from app.metrics import Metrics

log = structlog.get_logger("app.refresher")

_REFILL_PERIOD_S = 6.0
_BUCKETS_PER_MINUTE_PLUS_ONE = 60 / _REFILL_PERIOD_S + 1  # C + 10*C = target


class WeightBudget:
    """The weight budget of one rate-limit scope (an API key, or a host for per-IP limits)."""

    def __init__(
        self,
        name: str,
        limit_per_minute: int,
        target_fraction: float,
        metrics: Metrics,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.target = max(1, int(limit_per_minute * target_fraction))
        self._capacity = max(1.0, self.target / _BUCKETS_PER_MINUTE_PLUS_ONE)
        self._limiter = AsyncLimiter(self._capacity, _REFILL_PERIOD_S)
        #: Weight per minute the bucket lets through when callers are always waiting.
        self.sustained_per_minute = self._capacity * 60 / _REFILL_PERIOD_S
        self._metrics = metrics
        self._monotonic = monotonic
        self._wall = wall
        self._blocked_until = 0.0
        self._banned = False
        self._paused_until = 0.0
        self._demand_per_minute = 0.0
        self._used_weight = metrics.used_weight.labels(name)  # set on every response
        metrics.weight_target.labels(name).set(self.target)
        metrics.budget_blocked_until.labels(name).set(0)
        metrics.poll_stretch.labels(name).set(1)

    def add_demand(self, weight_per_minute: float) -> None:
        """Declare the weight per minute one more poller will spend at its base intervals
        (pollers declare it while they run: in fleet mode a refresher runs only the pollers
        of the leases it holds, and budgets for those, not for every configured account)."""
        self._demand_per_minute += weight_per_minute
        self._metrics.poll_stretch.labels(self.name).set(self.stretch)

    def remove_demand(self, weight_per_minute: float) -> None:
        """A poller stopped (fleet mode: its lease went to another refresher)."""
        self._demand_per_minute = max(0.0, self._demand_per_minute - weight_per_minute)
        self._metrics.poll_stretch.labels(self.name).set(self.stretch)

    @property
    def stretch(self) -> float:
        """Factor (>= 1) by which poll intervals grow so the total demand fits the target."""
        return max(1.0, self._demand_per_minute / self.sustained_per_minute)

    def blocked_for(self) -> float:
        """Seconds left of a 429/418 block (0 when calls may go out)."""
        return max(0.0, self._blocked_until - self._monotonic())

    async def acquire(self, weight: int) -> None:
        """Wait until ``weight`` may be spent; raise while the exchange told us to stop.

        The block is checked again after every wait: a caller queued in the bucket when a
        429/418 arrives must not go out before ``Retry-After`` either (Binance bans an IP that
        keeps calling after a 429, and bans grow from 2 minutes to 3 days).
        """
        self._raise_if_blocked()
        pause = self._paused_until - self._monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
            self._raise_if_blocked()
        # The bucket refuses more than its capacity at once; a heavier call (a small target)
        # takes its weight in parts rather than being under-counted.
        left = float(weight)
        while left > 0:
            part = min(left, self._capacity)
            await self._limiter.acquire(part)
            left -= part
            self._raise_if_blocked()

    def _raise_if_blocked(self) -> None:
        remaining = self.blocked_for()
        if remaining > 0:
            what = "banned" if self._banned else "rate limited"
            raise ExchangeRateLimited(
                f"calls paused: exchange {what} this budget, {remaining:.1f}s left",
                retry_after_s=remaining,
                banned=self._banned,
            )

    def observe_used_weight(self, used: int) -> None:
        """Take the exchange's count of weight used this minute into account."""
        self._used_weight.set(used)
        if used >= self.target:
            # The exchange counts per clock minute: wait for the next one (+ a margin).
            now = self._monotonic()
            to_next_minute = 60.0 - (self._wall() % 60.0) + 0.5
            if self._paused_until <= now:
                # Said once per pause: without it, the accounts of the budget only turn
                # stale, with no refresh error to say why (answers in flight may follow).
                log.warning(
                    "exchange weight count reached the target: calls paused",
                    budget=self.name,
                    used_weight=used,
                    weight_target=self.target,
                    paused_s=round(to_next_minute, 1),
                )
            self._paused_until = max(self._paused_until, now + to_next_minute)

    def block(self, retry_after_s: float, *, banned: bool) -> None:
        """Stop every call on this budget for ``retry_after_s`` (429 or 418 from the exchange)."""
        until = self._monotonic() + retry_after_s
        if until > self._blocked_until:
            self._blocked_until = until
            self._banned = banned
            self._metrics.budget_blocked_until.labels(self.name).set(self._wall() + retry_after_s)
