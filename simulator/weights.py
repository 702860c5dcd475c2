"""Request-weight budgets: a rolling window per bucket, 429 when it is full, 418 for abusers.

A bucket is an API key (generic-v2 face) or a client IP (Binance face). The window is
*rolling*: a request's weight counts for ``window_s`` seconds after it was accepted, and
``X-MBX-USED-WEIGHT-1M`` reports the sum over the window. Rejected requests cost nothing.

Escalation, as on Binance (``exchanges.md`` §1.4):

1. a request that does not fit gets 429 with ``Retry-After`` = seconds until enough weight has
   left the window;
2. a request arriving before that time (later than ``grace_s`` after the first 429, so requests
   already in flight are forgiven) gets the bucket banned for ``ban_s``: 418 with
   ``Retry-After`` = ban length;
3. while banned, every request gets 418 with ``Retry-After`` = remaining ban.

Time is ``time.monotonic()``; the simulated exchange clock offset does not affect budgets.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    limit: int
    window_s: float
    ban_s: float
    grace_s: float


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    LIMITED = "limited"  # 429
    BANNED = "banned"  # 418


@dataclass(frozen=True, slots=True)
class Charge:
    """The outcome of asking to spend weight."""

    verdict: Verdict
    used: int
    #: Seconds the client must wait (429) or stays banned (418); 0 when accepted.
    wait_s: float = 0.0
    #: This request started the ban (the first 418).
    started_ban: bool = False

    @property
    def retry_after_s(self) -> int:
        """``wait_s`` as a ``Retry-After`` value: whole seconds, rounded up, at least 1."""
        return max(1, math.ceil(self.wait_s))


@dataclass(slots=True)
class _Bucket:
    entries: deque[tuple[float, int]] = field(default_factory=deque)
    used: int = 0
    #: Told to wait until this time (monotonic); 0 when not waiting.
    wait_until: float = 0.0
    #: When the first 429 of the current wait was sent.
    warned_at: float = 0.0
    banned_until: float = 0.0

    def expire(self, now: float, window_s: float) -> None:
        while self.entries and self.entries[0][0] + window_s <= now:
            _, weight = self.entries.popleft()
            self.used -= weight

    def idle(self, now: float) -> bool:
        return self.used == 0 and self.wait_until <= now and self.banned_until <= now


class WeightBudget:
    """Weight accounting for one face of the exchange, keyed by bucket name."""

    _PRUNE_AT = 10_000

    def __init__(self, policy: BudgetPolicy, now: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._now = now
        self._buckets: dict[str, _Bucket] = {}

    def charge(self, bucket_name: str, weight: int) -> Charge:
        """Spend ``weight`` from ``bucket_name`` if the budget allows it."""
        now = self._now()
        if len(self._buckets) >= self._PRUNE_AT:
            self._prune(now)
        bucket = self._buckets.setdefault(bucket_name, _Bucket())
        bucket.expire(now, self.policy.window_s)
        if bucket.banned_until > now:
            return Charge(Verdict.BANNED, bucket.used, bucket.banned_until - now)
        if bucket.wait_until > now and now - bucket.warned_at > self.policy.grace_s:
            bucket.banned_until = now + self.policy.ban_s
            bucket.wait_until = 0.0
            return Charge(Verdict.BANNED, bucket.used, self.policy.ban_s, started_ban=True)
        if bucket.used + weight > self.policy.limit:
            wait_s = self._seconds_until_fits(bucket, weight, now)
            if bucket.wait_until <= now:
                bucket.warned_at = now
            charge = Charge(Verdict.LIMITED, bucket.used, wait_s)
            bucket.wait_until = max(bucket.wait_until, now + charge.retry_after_s)
            return charge
        bucket.entries.append((now, weight))
        bucket.used += weight
        return Charge(Verdict.ACCEPTED, bucket.used)

    def used(self, bucket_name: str) -> int:
        """Weight spent by ``bucket_name`` in the current window."""
        bucket = self._buckets.get(bucket_name)
        if bucket is None:
            return 0
        bucket.expire(self._now(), self.policy.window_s)
        return bucket.used

    def snapshot(self) -> dict[str, object]:
        """Used weight and remaining ban seconds per active bucket, for ``GET /_sim/weight``."""
        now = self._now()
        self._prune(now)
        return {
            "limit": self.policy.limit,
            "window_s": self.policy.window_s,
            "used": {name: bucket.used for name, bucket in self._buckets.items()},
            "banned_s": {
                name: round(bucket.banned_until - now, 3)
                for name, bucket in self._buckets.items()
                if bucket.banned_until > now
            },
        }

    def reset(self) -> None:
        self._buckets.clear()

    def _seconds_until_fits(self, bucket: _Bucket, weight: int, now: float) -> float:
        if weight > self.policy.limit:
            return self.policy.window_s
        freed = 0
        for accepted_at, spent in bucket.entries:
            freed += spent
            if bucket.used - freed + weight <= self.policy.limit:
                return accepted_at + self.policy.window_s - now
        return self.policy.window_s

    def _prune(self, now: float) -> None:
        for name in list(self._buckets):
            bucket = self._buckets[name]
            bucket.expire(now, self.policy.window_s)
            if bucket.idle(now):
                del self._buckets[name]
