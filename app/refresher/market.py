"""One poller per exchange host: keeps the host's market rules and mark prices fresh.

Symbol rules (``exchangeInfo``) change rarely and are read every ``rules_interval_s`` (a few
minutes); mark prices come from one all-symbols call every ``marks_interval_s`` (a few
seconds), shared by every account of the host. Both spend the host's weight budget (declared
as demand, so account polling stretches to make room). Failures are caught at the loop
boundary like the account pollers': counted, logged, recorded in the store (the last good
values keep ageing, and decisions deny with ``MARKET_RULES_UNAVAILABLE`` once they are too
old) and followed by backoff.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from app.domain import Instant
from app.errors import ErrorKind, ExchangeError, ExchangeRateLimited
from app.exchanges.base import MarketSource
from app.markets.model import MarketRules, MarkPrices
from app.markets.store import MarketStore
from app.metrics import Metrics
from app.refresher.budget import WeightBudget
from app.refresher.poller import full_jitter_backoff

T = TypeVar("T")
log = structlog.get_logger("app.refresher")


@dataclass(frozen=True, slots=True)
class MarketTiming:
    rules_interval_s: float = 300.0
    marks_interval_s: float = 3.0
    jitter_fraction: float = 0.1
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0


class _Due:
    def __init__(self, kind: str, interval_s: float) -> None:
        self.kind = kind
        self.interval_s = interval_s
        self.due = 0.0
        self.failures = 0


class MarketPoller:
    """Refreshes one host's market rules forever; ``run`` returns only when cancelled."""

    def __init__(
        self,
        host: str,
        source: MarketSource,
        store: MarketStore,
        metrics: Metrics,
        budget: WeightBudget,
        timing: MarketTiming,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.host = host
        self.account = f"market:{host}"  # the supervisor's task name
        self.source = source
        self.store = store
        self.metrics = metrics
        self.budget = budget
        self.timing = timing
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._rules = _Due("market_rules", timing.rules_interval_s)
        self._marks = _Due("mark_prices", timing.marks_interval_s)
        self._log = log.bind(market=host)
        # Series created at start (at 0), so a host that never refreshed shows as such.
        self._last_success = {
            kind: metrics.market_last_success.labels(host, kind)
            for kind in ("market_rules", "mark_prices")
        }
        for gauge in self._last_success.values():
            gauge.set(0)
        #: Weight per minute at the base intervals, declared to the budget while running.
        self.demand_per_minute = (
            60 / timing.rules_interval_s * source.rules_weight
            + 60 / timing.marks_interval_s * source.marks_weight
        )

    async def run(self) -> None:
        """Poll until cancelled. No exception escapes except ``CancelledError``."""
        self._log.info("market poller started")
        self._resume()
        self.budget.add_demand(self.demand_per_minute)
        try:
            while True:
                await self._step()
        finally:
            self.budget.remove_demand(self.demand_per_minute)
            # Fleet mode: the host's lease went elsewhere; this process no longer refreshes
            # it (0 = never, as before the first success), so its age alerts nothing here.
            for gauge in self._last_success.values():
                gauge.set(0)

    def _resume(self) -> None:
        """Schedule from the data already held (fleet mode: a new lease holder starts from
        the published data), so a hand-over does not fetch again what is still fresh."""
        view = self.store.view(self.host)
        if view is None:
            return
        for due, observed in ((self._rules, view.rules), (self._marks, view.marks)):
            if observed is not None:
                due.due = observed.received_mono + due.interval_s

    async def _step(self) -> None:
        nxt = min(self._rules, self._marks, key=lambda d: d.due)
        delay = nxt.due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
            return
        if nxt is self._rules:
            await self._refresh(nxt, self.source.fetch_rules, self._on_rules)
        else:
            await self._refresh(nxt, self.source.fetch_marks, self._on_marks)

    def _on_rules(self, rules: MarketRules) -> None:
        self.store.put_rules(self.host, rules, Instant.now())

    def _on_marks(self, marks: MarkPrices) -> None:
        self.store.put_marks(self.host, marks, Instant.now())

    async def _refresh(
        self, due: _Due, fetch: Callable[[], Awaitable[T]], on_success: Callable[[T], None]
    ) -> None:
        try:
            on_success(await fetch())
        except asyncio.CancelledError:
            raise
        except ExchangeRateLimited as exc:
            self.budget.block(exc.retry_after_s, banned=exc.banned)
            due.failures += 1
            due.due = time.monotonic() + exc.retry_after_s + self.rng.uniform(0, 1)
            self._failed(due.kind, exc)
        except ExchangeError as exc:
            due.failures += 1
            due.due = time.monotonic() + self._backoff(due.failures)
            self._failed(due.kind, exc)
        except Exception as exc:  # the loop boundary: a bug must not kill the poller
            due.failures += 1
            due.due = time.monotonic() + self._backoff(due.failures)
            self._log.exception("market refresh crashed", kind=due.kind)
            self._failed(due.kind, exc)
        else:
            due.failures = 0
            self._last_success[due.kind].set(time.time())
            jitter = self.timing.jitter_fraction
            due.due = time.monotonic() + due.interval_s * self.rng.uniform(1 - jitter, 1 + jitter)

    def _backoff(self, failures: int) -> float:
        return full_jitter_backoff(
            failures, self.timing.backoff_base_s, self.timing.backoff_max_s, self.rng
        )

    def _failed(self, kind: str, exc: Exception) -> None:
        error_kind = exc.kind if isinstance(exc, ExchangeError) else ErrorKind.INTERNAL
        message = str(exc) if isinstance(exc, ExchangeError) else type(exc).__name__
        if kind == self._rules.kind:
            self.store.put_rules_failure(self.host, f"{kind}: {message}")
        else:
            self.store.put_marks_failure(self.host, f"{kind}: {message}")
        self.metrics.market_failures.labels(self.host, kind, error_kind.value).inc()
        self._log.warning("market refresh failed", kind=kind, error=error_kind.value, cause=message)
