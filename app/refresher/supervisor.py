"""Owns every poller task and the weight budgets they share.

Tasks are kept in a strong-reference list, cancelled and awaited on shutdown. A poller task
that ends on its own is a bug (``run`` only returns by cancellation); ``dead_pollers`` reports
it so readiness fails loudly instead of the account silently going stale.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from urllib.parse import urlsplit

import structlog
from prometheus_client import Counter, Histogram

from app.exchanges.base import CallGate, ExchangeClient
from app.metrics import Metrics
from app.refresher.budget import WeightBudget
from app.refresher.market import MarketPoller
from app.refresher.poller import AccountPoller, PollTiming
from app.state.store import StateStore
from app.tasks import cancel_and_wait

log = structlog.get_logger("app.refresher")


class BudgetGate:
    """``CallGate`` for one account: spends weight from its budget and records metrics."""

    def __init__(self, budget: WeightBudget, metrics: Metrics, exchange: str) -> None:
        self.budget = budget
        self._requests = metrics.exchange_requests
        self._seconds = metrics.exchange_seconds
        self._exchange = exchange
        # Series children by label values, looked up once: ``labels()`` takes a lock and
        # builds a key on every call, and it ran twice per exchange request.
        self._request_series: dict[tuple[str, str], Counter] = {}
        self._seconds_series: dict[str, Histogram] = {}

    async def before_request(self, weight: int) -> None:
        await self.budget.acquire(weight)

    def after_response(
        self, endpoint: str, outcome: str, elapsed_s: float, used_weight: int | None
    ) -> None:
        requests = self._request_series.get((endpoint, outcome))
        if requests is None:
            requests = self._requests.labels(self._exchange, endpoint, outcome)
            self._request_series[endpoint, outcome] = requests
        requests.inc()
        seconds = self._seconds_series.get(endpoint)
        if seconds is None:
            seconds = self._seconds.labels(self._exchange, endpoint)
            self._seconds_series[endpoint] = seconds
        seconds.observe(elapsed_s)
        if used_weight is not None:
            self.budget.observe_used_weight(used_weight)


class Budgets:
    """One ``WeightBudget`` per rate-limit scope, found from a client's declared capabilities."""

    def __init__(self, metrics: Metrics, target_fraction: float) -> None:
        self._metrics = metrics
        self._target_fraction = target_fraction
        self._budgets: dict[tuple[str, ...], WeightBudget] = {}

    def for_account(
        self, account: str, exchange: str, base_url: str, api_key: str, scope: str, limit: int
    ) -> WeightBudget:
        """The budget this account spends from; created on first use.

        ``scope == "host"``: every key behind this process's IP shares the host's budget.
        ``scope == "key"``: one budget per API key on that host (the label names the first
        account that uses it, never the key).
        """
        host = urlsplit(base_url).netloc
        key: tuple[str, ...] = (exchange, host) if scope == "host" else (exchange, host, api_key)
        if key not in self._budgets:
            name = f"{exchange}@{host}" if scope == "host" else f"{exchange}@{host}/{account}"
            self._budgets[key] = WeightBudget(name, limit, self._target_fraction, self._metrics)
        return self._budgets[key]

    def all(self) -> list[WeightBudget]:
        return list(self._budgets.values())


class Refresher:
    """Starts, watches and stops the pollers."""

    def __init__(self, pollers: Iterable[AccountPoller | MarketPoller]) -> None:
        self.pollers = list(pollers)
        self._by_account = {poller.account: poller for poller in self.pollers}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        for poller in self.pollers:
            self.start_account(poller.account)

    def start_account(self, account: str) -> None:
        """Start polling one account (fleet mode: its lease was acquired); idempotent."""
        task = self._tasks.get(account)
        if task is not None and not task.done():
            return
        poller = self._by_account[account]
        self._tasks[account] = asyncio.create_task(poller.run(), name=f"poller:{account}")

    def stop_account(self, account: str) -> None:
        """Stop polling one account at once (fleet mode: its lease is gone). The task is
        cancelled now and awaited by ``stop``."""
        task = self._tasks.pop(account, None)
        if task is not None:
            task.cancel()
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    def polling(self) -> list[str]:
        return [name for name, task in self._tasks.items() if not task.done()]

    def dead_pollers(self) -> list[str]:
        """Accounts whose poller task has ended (it never should while running)."""
        return [name for name, task in self._tasks.items() if task.done()]

    async def stop(self) -> None:
        await cancel_and_wait([*self._stopping, *self._tasks.values()])
        for name, task in self._tasks.items():
            error = None if task.cancelled() else task.exception()
            if isinstance(error, Exception):
                log.error("poller ended with an error", account=name, error=repr(error))
        self._tasks.clear()


def build_poller(
    account: str,
    client: ExchangeClient,
    budget: WeightBudget,
    store: StateStore,
    metrics: Metrics,
    timing: PollTiming,
) -> AccountPoller:
    metrics.register_account(account)
    return AccountPoller(account, client, store, metrics, budget, timing)


__all__ = ["BudgetGate", "Budgets", "CallGate", "Refresher", "build_poller"]
