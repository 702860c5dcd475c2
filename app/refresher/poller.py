"""One poller per account: keeps its status and snapshot fresh, and never dies.

Status and snapshot run on their own schedules (interval x budget stretch, with jitter). Every
failure is caught at the loop boundary, classified, counted, logged, recorded in the store
(the last good data keeps ageing, so decisions turn ``STALE_DATA``) and followed by a wait:

* rate limited / banned: the budget blocks every account on it until ``Retry-After``;
* credentials rejected: a long pause (``auth_backoff_s``), no hammering;
* anything else: exponential backoff with full jitter, capped at ``backoff_max_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Context
from typing import TypeVar

import structlog

from app.domain import AccountSnapshot, AccountStatus, Instant
from app.errors import (
    ErrorKind,
    ExchangeAuthError,
    ExchangeError,
    ExchangeRateLimited,
)
from app.exchanges.base import ExchangeClient
from app.metrics import STATUS_LABELS, Metrics, status_label
from app.refresher.budget import WeightBudget
from app.state.store import StateStore

T = TypeVar("T")
#: Metric values only: an absurd exchange value gives inf or nan, never an exception.
_NO_TRAPS = Context(traps=[])
log = structlog.get_logger("app.refresher")


@dataclass(frozen=True, slots=True)
class PollTiming:
    status_interval_s: float = 2.0
    snapshot_interval_s: float = 5.0
    jitter_fraction: float = 0.1
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    auth_backoff_s: float = 300.0
    clock_resync_s: float = 300.0


def full_jitter_backoff(failures: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """AWS "full jitter": uniform in [0, min(max, base * 2**(failures-1))], never below 10 ms."""
    ceiling = min(max_s, base_s * (2 ** min(failures - 1, 30)))
    return max(0.01, rng.uniform(0, ceiling))


class _Schedule:
    """Next due time and failure streak of one kind of refresh."""

    def __init__(self, kind: str, interval_s: float) -> None:
        self.kind = kind
        self.interval_s = interval_s
        self.due = 0.0
        self.failures = 0


class AccountPoller:
    """Refreshes one account forever; ``run`` returns only when cancelled."""

    def __init__(
        self,
        account: str,
        client: ExchangeClient,
        store: StateStore,
        metrics: Metrics,
        budget: WeightBudget,
        timing: PollTiming,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.account = account
        self.client = client
        self.store = store
        self.metrics = metrics
        self.budget = budget
        self.timing = timing
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._status = _Schedule("status", timing.status_interval_s)
        self._snapshot = _Schedule("snapshot", timing.snapshot_interval_s)
        self._clock_due = 0.0
        #: Clock offset last reported in the log; a -1021 re-sync inside the client moves it.
        self._reported_offset_ms = 0
        self._log = log.bind(account=account, exchange=client.name)
        # This account's series, looked up once (``labels()`` locks and builds a key per call;
        # these are written after every refresh). Quant-rule series come and go: not cached.
        self._last_success = {
            kind: metrics.refresh_last_success.labels(account, kind)
            for kind in ("status", "snapshot")
        }
        self._failures_gauge = {
            kind: metrics.consecutive_failures.labels(account, kind)
            for kind in ("status", "snapshot")
        }
        self._clock_gauge = metrics.clock_offset.labels(account)
        self._can_trade_gauge = metrics.can_trade.labels(account)
        self._status_gauges = {
            label: metrics.trading_status.labels(account, label) for label in STATUS_LABELS
        }
        self._margin_gauge = metrics.margin_ratio.labels(account)
        self._balance_gauge = metrics.available_balance.labels(account)
        caps = client.capabilities
        #: Weight per minute at the base intervals, declared to the budget while running.
        self.demand_per_minute = (
            60 / timing.status_interval_s * caps.status_weight
            + 60 / timing.snapshot_interval_s * caps.snapshot_weight
            + client.extra_weight_per_minute()
        )

    async def run(self) -> None:
        """Poll until cancelled. No exception escapes except ``CancelledError``."""
        self._log.info("poller started", base_url=self.client.base_url)
        self.budget.add_demand(self.demand_per_minute)
        try:
            await self._run()
        finally:
            self.budget.remove_demand(self.demand_per_minute)

    async def _run(self) -> None:
        # Spread the first requests of all accounts over one status interval. Hundreds of
        # pollers starting at once would queue hundreds of requests in the HTTP pool and send
        # the exchange a burst; from ~300 accounts on one host, httpcore's pool then spends
        # its time re-assigning the queue and nothing goes out (encode/httpcore#1035).
        await asyncio.sleep(self.rng.uniform(0, self.timing.status_interval_s))
        while True:
            await self._step()

    async def _step(self) -> None:
        if time.monotonic() >= self._clock_due:
            await self._sync_clock()
        nxt = min(self._status, self._snapshot, key=lambda s: s.due)
        delay = min(nxt.due, self._clock_due) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
            return  # re-evaluate: the clock re-sync may be due first
        if nxt is self._status:
            await self._refresh(nxt, self.client.fetch_status, self._on_status)
        else:
            await self._refresh(nxt, self.client.fetch_snapshot, self._on_snapshot)

    async def _sync_clock(self) -> None:
        self._clock_due = time.monotonic() + self.timing.clock_resync_s
        try:
            offset_ms = await self.client.sync_clock()
        except ExchangeRateLimited as exc:
            self.budget.block(exc.retry_after_s, banned=exc.banned)
            self._clock_due = time.monotonic() + exc.retry_after_s
            self._record_failure("clock", exc)
        except ExchangeError as exc:
            # Signed calls still work with the old offset; retry the sync soon.
            self._clock_due = time.monotonic() + min(30.0, self.timing.clock_resync_s)
            self._record_failure("clock", exc)
        else:
            self._export_clock_offset(offset_ms, sync=True)

    async def _refresh(
        self,
        schedule: _Schedule,
        fetch: Callable[[], Awaitable[T]],
        on_success: Callable[[T], None],
    ) -> None:
        try:
            value = await fetch()
            # Inside the try: a crash while storing or exporting the value must not end the
            # poller (an exception from an ``else:`` block would escape the loop boundary).
            on_success(value)
        except asyncio.CancelledError:
            raise
        except ExchangeRateLimited as exc:
            self.budget.block(exc.retry_after_s, banned=exc.banned)
            schedule.failures += 1
            schedule.due = time.monotonic() + exc.retry_after_s + self.rng.uniform(0, 1)
            self._record_failure(schedule.kind, exc)
        except ExchangeAuthError as exc:
            schedule.failures += 1
            schedule.due = time.monotonic() + self.timing.auth_backoff_s
            self._record_failure(schedule.kind, exc)
        except ExchangeError as exc:
            schedule.failures += 1
            schedule.due = time.monotonic() + self._backoff(schedule.failures)
            self._record_failure(schedule.kind, exc)
        except Exception as exc:  # the loop boundary: a bug must not kill the poller
            schedule.failures += 1
            schedule.due = time.monotonic() + self._backoff(schedule.failures)
            self._log.exception("refresh crashed", kind=schedule.kind)
            self._record_failure(schedule.kind, exc)
        else:
            schedule.failures = 0
            schedule.due = time.monotonic() + self._interval(schedule.interval_s)
            self._last_success[schedule.kind].set(time.time())
        finally:
            self._export_clock_offset(self.client.clock_offset_ms)
            state = self.store.get(self.account)
            error = None if state is None else getattr(state, f"{schedule.kind}_error")
            self._failures_gauge[schedule.kind].set(error.consecutive_failures if error else 0)

    def _export_clock_offset(self, offset_ms: int, *, sync: bool = False) -> None:
        """Gauge the offset and log it, with the account, when a sync finds it over a second
        or it moved by over a second (the client re-learnt it after a -1021 answer)."""
        self._clock_gauge.set(offset_ms / 1000)
        if abs(offset_ms - self._reported_offset_ms) > 1000 or (sync and abs(offset_ms) > 1000):
            self._log.warning(
                "exchange clock offset",
                clock_offset_ms=offset_ms,
                previous_offset_ms=self._reported_offset_ms,
            )
        self._reported_offset_ms = offset_ms

    def _interval(self, base_s: float) -> float:
        jitter = self.timing.jitter_fraction
        return base_s * self.budget.stretch * self.rng.uniform(1 - jitter, 1 + jitter)

    def _backoff(self, failures: int) -> float:
        return full_jitter_backoff(
            failures, self.timing.backoff_base_s, self.timing.backoff_max_s, self.rng
        )

    def _on_status(self, status: AccountStatus) -> None:
        previous = self.store.get(self.account)
        old = previous.status.value if previous and previous.status else None
        self.store.put_status(self.account, status, Instant.now())
        label = status_label(status.trading_status)
        for other, gauge in self._status_gauges.items():
            gauge.set(1 if other == label else 0)
        self._can_trade_gauge.set(1 if status.can_trade else 0)
        self._export_quant_rules(old, status)
        if old is None or (old.trading_status, old.can_trade, old.futures_enabled) != (
            status.trading_status,
            status.can_trade,
            status.futures_enabled,
        ):
            self._log.info(
                "account status changed",
                trading_status=status.trading_status,
                can_trade=status.can_trade,
                futures_enabled=status.futures_enabled,
                exchange_reason=status.reason,
                previous_status=old.trading_status if old else None,
            )

    def _export_quant_rules(self, old: AccountStatus | None, new: AccountStatus) -> None:
        """Lock and trigger-ratio gauges; series of indicators that vanished are removed."""
        locked = self.metrics.quant_locked
        ratio = self.metrics.quant_ratio
        current = {(i.scope, i.indicator) for i in new.indicators}
        for gone in {(i.scope, i.indicator) for i in (old.indicators if old else ())} - current:
            with contextlib.suppress(KeyError):
                ratio.remove(self.account, *gone)
        scopes_locked = {i.scope for i in new.indicators if i.is_locked}
        for scope in {i.scope for i in (old.indicators if old else ())} - scopes_locked:
            with contextlib.suppress(KeyError):
                locked.remove(self.account, scope)
        for scope in scopes_locked:
            locked.labels(self.account, scope).set(1)
        for ind in new.indicators:
            if ind.trigger_value > 0:
                value = float(_NO_TRAPS.divide(ind.value, ind.trigger_value))
                ratio.labels(self.account, ind.scope, ind.indicator).set(value)

    def _on_snapshot(self, snapshot: AccountSnapshot) -> None:
        self.store.put_snapshot(self.account, snapshot, Instant.now())
        ratio = snapshot.margin_ratio
        self._margin_gauge.set(float(ratio) if ratio is not None else 1.0)
        # float(), not quantize(): an absurd balance (1e30) must not raise here.
        self._balance_gauge.set(float(snapshot.available_balance))

    def _record_failure(self, kind: str, exc: Exception) -> None:
        error_kind = exc.kind if isinstance(exc, ExchangeError) else ErrorKind.INTERNAL
        if isinstance(exc, ExchangeError):
            message = str(exc)
        else:  # an unexpected exception's text may hold anything: name its type only
            message = f"internal error: {type(exc).__name__}"
        self.metrics.refresh_failures.labels(self.account, kind, error_kind.value).inc()
        if kind != "clock":
            self.store.put_failure(
                self.account, error_kind.value, f"{kind}: {message}", refresh=kind
            )
        extra = {}
        if isinstance(exc, ExchangeRateLimited):
            extra["retry_after_s"] = round(exc.retry_after_s, 3)
            # The exchange's own value, before the cap (poll.max_retry_after_s).
            extra["exchange_retry_after_s"] = round(exc.requested_s, 3)
        self._log.warning(
            "refresh failed", kind=kind, error=error_kind.value, cause=message, **extra
        )
