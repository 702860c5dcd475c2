"""The order-rate limit shared by every replica: an exact sliding window in Redis.

One Lua script per order checks the account window and the symbol window together and, only
if both have room, records the order in both (sorted sets of ``TIME``-stamped members, so
replica clocks do not matter). Atomic in Redis, so concurrent orders at every replica can
never take more than ``max_orders`` per window between them.

Only orders of accounts that configure a rate limit get here. The call is bounded by
``timeout_s``; no answer in time denies the order (fail closed), never an uncounted allow.
"""

from __future__ import annotations

import asyncio
import math
import os
from itertools import count

import structlog
from redis.asyncio import Redis

from app.domain import OrderRate, Policy, RateCount
from app.fleet.connection import REDIS_ERRORS, RedisLink
from app.fleet.model import Keys
from app.metrics import Metrics
from app.state.ports import SharedRateAnswer

log = structlog.get_logger("app.fleet")

# KEYS: account window, symbol window (either may be unused); ARGV: account limit, account
# window ms, symbol limit, symbol window ms (0 = no such limit), member.
# Returns {admitted, account count, account retry ms, symbol count, symbol retry ms}.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local result = {1, -1, -1, -1, -1}
for w = 0, 1 do
  local limit = tonumber(ARGV[1 + 2 * w])
  local window = tonumber(ARGV[2 + 2 * w])
  if limit > 0 then
    local key = KEYS[1 + w]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local n = redis.call('ZCARD', key)
    result[2 + 2 * w] = n
    if n >= limit then
      result[1] = 0
      local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      result[3 + 2 * w] = tonumber(oldest[2]) + window - now
    end
  end
end
if result[1] == 1 then
  for w = 0, 1 do
    local limit = tonumber(ARGV[1 + 2 * w])
    local window = tonumber(ARGV[2 + 2 * w])
    if limit > 0 then
      redis.call('ZADD', KEYS[1 + w], now, ARGV[5])
      redis.call('PEXPIRE', KEYS[1 + w], window)
    end
  end
end
return result
"""


class RedisOrderRate:
    """Implements ``app.state.ports.SharedOrderRate``."""

    def __init__(
        self, redis: Redis, keys: Keys, link: RedisLink, metrics: Metrics, *, timeout_s: float
    ) -> None:
        self._keys = keys
        self._link = link
        self._metrics = metrics
        self.timeout_s = timeout_s
        self._script = redis.register_script(_ADMIT)
        self._prefix = f"{os.getpid()}-{os.urandom(4).hex()}-"
        self._ids = count(1)

    async def admit(self, account: str, symbol: str | None, policy: Policy) -> SharedRateAnswer:
        account_limit = policy.order_rate
        symbol_limit = policy.symbol_order_rate if symbol is not None else None
        args: list[int | str] = [
            account_limit.max_orders if account_limit else 0,
            math.ceil(account_limit.window_s * 1000) if account_limit else 0,
            symbol_limit.max_orders if symbol_limit else 0,
            math.ceil(symbol_limit.window_s * 1000) if symbol_limit else 0,
            f"{self._prefix}{next(self._ids)}",
        ]
        keys = [self._keys.rate(account), self._keys.rate(account, symbol or "-")]
        try:
            async with asyncio.timeout(self.timeout_s):  # not wait_for: app/tasks.py
                raw = await self._script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            self._link.error("order-rate", exc)
            self._metrics.fleet_rate_unavailable.inc()
            return SharedRateAnswer(
                admitted=False,
                unavailable=(
                    "the fleet's order-rate counter (Redis) did not answer within "
                    f"{round(self.timeout_s * 1000)} ms; denied rather than allowed uncounted"
                ),
            )
        admitted, acc_n, acc_retry, sym_n, sym_retry = (int(v) for v in raw)
        return SharedRateAnswer(
            admitted=bool(admitted),
            rate=OrderRate(
                account=None
                if acc_n < 0
                else RateCount(acc_n, acc_retry if acc_retry >= 0 else None),
                symbol=None
                if sym_n < 0
                else RateCount(sym_n, sym_retry if sym_retry >= 0 else None),
            ),
        )
