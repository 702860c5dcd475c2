"""Composition root: the ONLY place that reads ``Settings`` and wires objects together.

``create_app(settings)`` builds the store, rules policies, auth and metrics at once (so the
app answers — with ``NO_DATA`` — before the first refresh), and its lifespan owns the HTTP
client, the exchange clients and the pollers: started on startup, cancelled and awaited on
shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

import httpx
import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from app.api import accounts, can_trade, handlers, health
from app.api.decider import Decider
from app.api.deps import Services
from app.api.middleware import RequestMetrics
from app.api.security import TokenAuth
from app.config import Settings
from app.errors import ConfigError
from app.exchanges import client_class
from app.exchanges.base import Credentials, ExchangeClient
from app.metrics import Metrics
from app.refresher.poller import PollTiming
from app.refresher.supervisor import BudgetGate, Budgets, Refresher, build_poller
from app.state.store import StateStore

log = structlog.get_logger("app")


def guard_version() -> str:
    try:
        return package_version("pretrade-guard")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0+source"


def _timing(settings: Settings, account: str) -> PollTiming:
    poll = settings.poll_for(account)
    return PollTiming(
        status_interval_s=poll.status_interval_s,
        snapshot_interval_s=poll.snapshot_interval_s,
        jitter_fraction=poll.jitter_fraction,
        backoff_base_s=poll.backoff_base_s,
        backoff_max_s=poll.backoff_max_s,
        auth_backoff_s=poll.auth_backoff_s,
        clock_resync_s=poll.clock_resync_s,
    )


def _build_refresher(
    settings: Settings, store: StateStore, metrics: Metrics, http: httpx.AsyncClient
) -> tuple[Refresher, list[ExchangeClient]]:
    budgets = Budgets(metrics, settings.budget.weight_target_fraction)
    pollers = []
    clients: list[ExchangeClient] = []
    for name, account in settings.accounts.items():
        cls = client_class(account.exchange)
        if account.api_key is None or account.api_secret is None:  # unreachable: validated
            raise ConfigError(f"accounts.{name}: missing credentials")
        caps = cls.capabilities
        budget = budgets.for_account(
            name,
            account.exchange,
            account.base_url,
            account.api_key.get_secret_value(),
            caps.weight_scope,
            caps.weight_limit_per_minute,
        )
        poll = settings.poll_for(name)
        try:
            client = cls(
                base_url=account.base_url,
                credentials=Credentials(account.api_key, account.api_secret),
                http=http,
                gate=BudgetGate(budget, metrics, account.exchange),
                recv_window_ms=poll.recv_window_ms,
                timeout_s=poll.timeout_s,
                options=account.options,
            )
        except (ConfigError, ValueError, TypeError) as exc:
            raise ConfigError(f"invalid configuration:\n  accounts.{name}.options: {exc}") from None
        clients.append(client)
        pollers.append(build_poller(name, client, budget, store, metrics, _timing(settings, name)))
    return Refresher(pollers), clients


async def _check_permissions(clients: list[ExchangeClient]) -> None:
    for client in clients:
        for warning in await client.check_permissions():
            log.warning("exchange key permissions", base_url=client.base_url, warning=warning)


def create_app(settings: Settings, *, registry: CollectorRegistry | None = None) -> FastAPI:
    """Build the guard. ``registry`` defaults to a fresh one (tests inject their own)."""
    version = guard_version()
    metrics = Metrics(registry or CollectorRegistry(), version)
    store = StateStore((name, acc.exchange) for name, acc in settings.accounts.items())
    policies = {name: settings.policy_for(name) for name in settings.accounts}
    decider = Decider(store, policies, metrics, decision_log=settings.server.decision_log)
    auth = TokenAuth((t.name, t.secret(), t.scopes) for t in settings.auth.tokens)
    running: dict[str, Refresher] = {}

    def dead_pollers() -> list[str]:
        refresher = running.get("refresher")
        return refresher.dead_pollers() if refresher else list(settings.accounts)

    # Clients are built now so a bad account option fails at start, not in the lifespan.
    http = httpx.AsyncClient(
        headers={"User-Agent": f"pretrade-guard/{version}"},
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        follow_redirects=False,
    )
    refresher, clients = _build_refresher(settings, store, metrics, http)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        refresher.start()
        running["refresher"] = refresher
        checks = asyncio.create_task(_check_permissions(clients), name="permission-checks")
        log.info("guard started", version=version, accounts=len(settings.accounts))
        try:
            yield
        finally:
            checks.cancel()
            await asyncio.gather(checks, return_exceptions=True)
            running.pop("refresher", None)
            await refresher.stop()
            await http.aclose()
            log.info("guard stopped")

    app = FastAPI(
        title="pretrade-guard",
        version=version,
        description=(
            "Answers trading bots' question *may this account place this order now, and if "
            "not, why?* from a cache of exchange account state kept fresh in the background. "
            "Decisions fail closed: missing, stale or unparseable data never yields "
            "`allowed: true`."
        ),
        lifespan=lifespan,
    )
    app.state.services = Services(
        store=store,
        decider=decider,
        auth=auth,
        metrics=metrics,
        dead_pollers=dead_pollers,
        public_health=settings.auth.public_health,
        public_metrics=settings.auth.public_metrics,
    )
    handlers.install(app)
    app.include_router(can_trade.router)
    app.include_router(accounts.router)
    app.include_router(health.router)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app
