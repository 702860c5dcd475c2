"""Composition root: the ONLY place that reads ``Settings`` and wires objects together.

``create_app(settings)`` builds the store, rules policies, auth and metrics at once (so the
app answers — with ``NO_DATA`` — before the first refresh), and its lifespan owns the HTTP
client, the exchange clients and the pollers: started on startup, cancelled and awaited on
shutdown. It also owns the operator side: the kill-switch database (opened on startup, so
building the app touches no disk), the event watcher and the webhook workers.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import httpx
import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from app.api import accounts, admin, can_trade, events, handlers, health
from app.api.admin_schemas import LimitsIn
from app.api.body_gate import BodyGate
from app.api.decider import Decider
from app.api.deps import Services
from app.api.fastpath import FastBatch, FastCanTrade, GuardApp
from app.api.middleware import RequestMetrics
from app.api.security import TokenAuth
from app.config import CONFIG_ENV, AccountSettings, Settings, WebhookSettings
from app.decision_log import DecisionLog, DecisionLogWriter
from app.domain import Instant, KillSwitchScope, Policy
from app.errors import ConfigError, DataError
from app.events.bus import EventBus
from app.events.watch import Publisher, StateEvents, Watcher, kill_switch_event
from app.events.webhooks import WebhookDispatcher, Webhooks, WebhookTarget
from app.exchanges import client_class
from app.exchanges.base import AnswerLimits, Credentials, ExchangeClient
from app.fleet.connection import REDIS_ERRORS, RedisLink, connect, safe_url
from app.fleet.controls import FleetControls
from app.fleet.events import Announcer, EventTail, FleetEvents, StateChanges
from app.fleet.feed import (
    StateFeed,
    StatePublisher,
    apply_market,
    apply_published,
    read_latest,
    read_latest_market,
)
from app.fleet.leases import LeaseManager, LiveRefreshers
from app.fleet.model import FleetRole, Keys, RedisLossMode
from app.fleet.ratelimit import RedisOrderRate
from app.fleet.runtime import FleetRuntime
from app.fleet.webhooks import GroupDelivery, consumer_name
from app.http_server import EXCHANGE_CONNECTIONS, connection_cap, header_deadline_protocol
from app.logs import stderr_sink
from app.markets.model import TRADING, Bounds, MarketRules, SymbolRules
from app.markets.store import MarketStore
from app.metrics import Metrics
from app.refresher.market import MarketPoller, MarketTiming
from app.refresher.poller import AccountPoller, PollTiming
from app.refresher.supervisor import BudgetGate, Budgets, Refresher, build_poller
from app.state.killswitch import KillSwitchChange, KillSwitchStore, wall_ms
from app.state.killswitch_db import inspect_database
from app.state.ports import KillSwitches
from app.state.store import StateStore
from app.tasks import cancel_and_wait
from app.worker_pool import WorkerIdentity

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


def _static_rules(account: AccountSettings) -> MarketRules:
    """Symbol rules given in an account's configuration (partial: other symbols unchecked)."""
    symbols = {
        symbol.upper(): SymbolRules(
            symbol=symbol.upper(),
            status=TRADING,
            price=Bounds(rule.min_price, rule.max_price, rule.tick_size),
            lot=Bounds(rule.min_qty, rule.max_qty, rule.step_size),
            min_notional=rule.min_notional,
        )
        for symbol, rule in account.symbol_rules.items()
    }
    return MarketRules(symbols=symbols, complete=False)


def _build_refresher(
    settings: Settings,
    store: StateStore,
    metrics: Metrics,
    http: httpx.AsyncClient,
    markets: MarketStore,
) -> tuple[Refresher, dict[str, ExchangeClient]]:
    budgets = Budgets(metrics, settings.budget.weight_target_fraction)
    pollers: list[AccountPoller | MarketPoller] = []
    market_timing = MarketTiming(
        rules_interval_s=settings.markets.rules_interval_s,
        marks_interval_s=settings.markets.marks_interval_s,
    )
    clients: dict[str, ExchangeClient] = {}
    market_hosts: set[str] = set()
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
                limits=AnswerLimits(
                    deadline_s=poll.request_deadline_s,
                    max_bytes=poll.max_response_bytes,
                    max_rows=poll.max_snapshot_rows,
                    max_retry_after_s=poll.max_retry_after_s,
                ),
            )
        except (ConfigError, ValueError, TypeError) as exc:
            raise ConfigError(f"invalid configuration:\n  accounts.{name}.options: {exc}") from None
        clients[name] = client
        pollers.append(build_poller(name, client, budget, store, metrics, _timing(settings, name)))
        source = client.market_source()
        if account.symbol_rules:
            markets.configure_static(name, _static_rules(account), Instant.now())
        elif source is not None:
            host = budget.name if caps.weight_scope == "host" else f"{account.exchange}@{name}"
            if host not in market_hosts:
                market_hosts.add(host)
                pollers.append(MarketPoller(host, source, markets, metrics, budget, market_timing))
            markets.register(name, host)
    return Refresher(pollers), clients


def _webhook_target(hook: WebhookSettings) -> WebhookTarget:
    return WebhookTarget(
        name=hook.name,
        url=hook.url,
        secret=hook.secret_bytes(),
        timeout_s=hook.timeout_s,
        max_attempts=hook.max_attempts,
        event_types=hook.event_types,
        accounts=hook.accounts,
        queue_size=hook.queue_size,
        backoff_base_s=hook.backoff_base_s,
        backoff_max_s=hook.backoff_max_s,
    )


def _count_switches(metrics: Metrics, kill_switches: KillSwitches) -> None:
    counts = dict.fromkeys(KillSwitchScope, 0)
    for switch in kill_switches.active():
        counts[switch.scope] += 1
    for scope, engaged in counts.items():
        metrics.kill_switches_engaged.labels(scope.value).set(engaged)


def begin_shutdown(app: FastAPI) -> None:
    """Called as shutdown begins (from the signal handler, before connections drain): ends
    the ``/events`` streams so they do not hold the graceful shutdown open."""
    services: Services = app.state.services
    services.events.close_threadsafe()


async def _check_permissions(clients: dict[str, ExchangeClient]) -> None:
    for account, client in clients.items():
        for warning in await client.check_permissions():
            log.warning(
                "exchange key permissions",
                account=account,
                exchange=client.name,
                base_url=client.base_url,
                warning=warning,
            )


def _decision_log(settings: Settings, metrics: Metrics) -> DecisionLog:
    """JSON logs: decision lines rendered directly and written in batches off the event loop.
    Console logs (for humans at a terminal) keep going through structlog, line by line."""
    mode = settings.server.decision_log
    writer = None
    if settings.server.log_format == "json" and mode != "none":
        writer = DecisionLogWriter(stderr_sink(), metrics.decision_log_dropped)
    return DecisionLog(mode, writer)


class _FleetParts:
    """Fleet mode's objects, before the lifespan starts them."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        fleet = settings.fleet
        if fleet.redis_url is None:  # unreachable: only built in fleet mode
            raise ConfigError("fleet.redis_url is not set")
        self.where = safe_url(fleet.redis_url)
        self.redis = connect(fleet.redis_url, fleet.password(), timeout_s=fleet.redis_timeout_s)
        self.keys = Keys(fleet.namespace)
        self.link = RedisLink(self.redis, metrics, role=fleet.role.value)
        self.announcer = Announcer(metrics)
        deny = fleet.on_redis_loss is RedisLossMode.DENY
        self.controls = FleetControls(
            self.redis,
            self.keys,
            self.link,
            metrics,
            poll_s=fleet.control_poll_s,
            deny_after_s=fleet.fallback_grace_s if deny else None,
            announcer=self.announcer,
            events_maxlen=fleet.events_maxlen,
        )
        self.rates = RedisOrderRate(
            self.redis, self.keys, self.link, metrics, timeout_s=fleet.rate_limit_timeout_s
        )


def _fleet_runtime(
    settings: Settings,
    fleet: _FleetParts,
    metrics: Metrics,
    store: StateStore,
    http: httpx.AsyncClient,
    running: dict[str, Refresher],
    markets: MarketStore,
    events: FleetEventParts,
) -> tuple[FleetRuntime, dict[str, ExchangeClient]]:
    """The loops of this process's role. Refreshers poll into stores of their own and
    publish them; api processes apply what is published to the stores they answer from.

    Events: a refresher announces the status changes it finds (with the publication), api
    processes the time-driven ones (``events.watcher``) and follow the fleet's event stream
    for ``/events`` (``events.tail``); every process with webhooks takes its share of their
    deliveries (one consumer per webhook group).

    Market rules and mark prices take the same road: each exchange host is a lease item
    (``market:<host>``) polled by one refresher fleet-wide and published through the fenced
    feed; api processes never poll the exchange (not even the key-permission check), except
    in the outage fallback, which then polls the accounts and their hosts' market data."""
    config = settings.fleet
    role = config.role
    accounts = list(settings.accounts)
    clients: dict[str, ExchangeClient] = {}
    leases = publisher = None
    polling = None
    if role.polls:
        poll_store = StateStore((name, acc.exchange) for name, acc in settings.accounts.items())
        poll_markets = MarketStore()
        built, clients = _build_refresher(settings, poll_store, metrics, http, poll_markets)
        polling = built  # account pollers, and one market poller per host (``market:<host>``)
        running["refresher"] = polling
        pollers = polling
        hosts = {p.account: p.host for p in built.pollers if isinstance(p, MarketPoller)}
        publishing: list[StatePublisher] = []
        changes = StateChanges(
            lambda account, found, time_ms: publishing[0].queue_events(account, found, time_ms),
            events.policy_for,
            clock=wall_ms,
        )

        async def on_acquire(item: str, _fence: int) -> None:
            # Start from the stored latest state, so a failure of the first refresh does
            # not publish "no data" over the previous holder's good data (and market data
            # still fresh is not fetched again).
            host = hosts.get(item)
            try:
                if host is not None:
                    market = await read_latest_market(fleet.redis, fleet.keys, host)
                    if market is not None:
                        apply_market(poll_markets, market, Instant.now())
                else:
                    latest = await read_latest(fleet.redis, fleet.keys, item)
                    if latest is not None:
                        # Where the previous holder left off, not a change: no events.
                        with changes.quiet(item):
                            apply_published(poll_store, latest, Instant.now())
            except REDIS_ERRORS:
                pass
            pollers.start_account(item)

        def on_lose(item: str) -> None:
            pollers.stop_account(item)
            publishing[0].drop_events(item)

        leases = LeaseManager(
            fleet.redis,
            fleet.keys,
            fleet.link,
            metrics,
            accounts + list(hosts),
            ttl_s=config.lease_ttl_s,
            on_acquire=on_acquire,
            on_lose=on_lose,
        )
        publisher = StatePublisher(
            fleet.redis,
            fleet.keys,
            fleet.link,
            metrics,
            poll_store,
            leases.fence,
            maxlen=config.stream_maxlen,
            markets=poll_markets,
            announcer=fleet.announcer,
            events_maxlen=config.events_maxlen,
        )
        publishing.append(publisher)
        poll_store.subscribe(changes)
        poll_store.subscribe(publisher)
        poll_markets.subscribe(publisher.market_changed)
    feed = None
    fallback = None
    if role.answers:
        # Registers which host's market data each account reads; nothing is started here.
        registered = _build_refresher(settings, store, metrics, http, markets)[0]
        answer_hosts = [p.host for p in registered.pollers if isinstance(p, MarketPoller)]
        feed = StateFeed(
            fleet.redis,
            fleet.keys,
            fleet.link,
            metrics,
            store,
            accounts,
            resync_s=config.resync_s,
            markets=markets,
            hosts=answer_hosts,
        )

        def fallback() -> Refresher:
            # Accounts and their hosts' market data, into the stores this process answers
            # from; market pollers resume from the age of the data the feed brought.
            return _build_refresher(settings, store, metrics, http, markets)[0]

    loops: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
    if events.watcher is not None:
        loops.append(("fleet-events-outbox", events.watcher.run))
    if events.tail is not None:
        loops.append(("fleet-events-tail", events.tail.run))
    for delivery in events.deliveries:
        loops.append((f"fleet-webhook:{delivery.name}", delivery.run))

    runtime = FleetRuntime(
        redis=fleet.redis,
        link=fleet.link,
        metrics=metrics,
        role=role,
        controls=fleet.controls,
        live=LiveRefreshers(fleet.redis, fleet.keys),
        feed=feed,
        leases=leases,
        publisher=publisher,
        polling=polling,
        fallback=fallback,
        on_redis_loss=config.on_redis_loss,
        grace_s=config.fallback_grace_s,
        where=fleet.where,
        loops=loops,
    )
    return runtime, clients


class FleetEventParts:
    """Fleet mode's event objects (``_fleet_runtime`` runs their loops)."""

    def __init__(
        self,
        settings: Settings,
        fleet: _FleetParts,
        metrics: Metrics,
        store: StateStore,
        bus: EventBus,
        webhooks: Webhooks,
        policy_for: Callable[[str], Policy],
    ) -> None:
        config = settings.fleet
        answers = config.role.answers
        block_s = min(1.0, config.redis_timeout_s / 2)
        self.policy_for = policy_for
        self.watcher = (
            FleetEvents(
                fleet.redis,
                fleet.keys,
                fleet.link,
                metrics,
                fleet.announcer,
                store,
                maxlen=config.events_maxlen,
                outbox_size=config.events_outbox_size,
                clock=wall_ms,
            )
            if answers
            else None
        )
        self.tail = (
            EventTail(fleet.redis, fleet.keys, fleet.link, bus, block_s=block_s)
            if answers
            else None
        )
        consumer = consumer_name()
        self.deliveries = [
            GroupDelivery(
                fleet.redis,
                fleet.keys,
                fleet.link,
                metrics,
                dispatcher,
                consumer=consumer,
                claim_idle_s=config.webhook_claim_idle_s,
                block_s=block_s,
                batch=config.webhook_batch,
            )
            for dispatcher in webhooks.dispatchers
        ]


def _limits_policy(decider: Decider, account: str, limits: dict[str, object] | None) -> None:
    """Apply a fleet-wide limit change (``None``: back to the configured limits)."""
    if limits is None:
        decider.reset_policy(account)
        return
    parsed = LimitsIn.model_validate(limits)
    decider.set_policy(account, parsed.apply(decider.configured_policy(account)))


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's limits on clients (README "Limits"): the header deadline (the protocol), the
    idle keep-alive time and the connection cap."""
    server = settings.server
    return {
        "http": header_deadline_protocol(server.header_timeout_s),
        "timeout_keep_alive": server.keepalive_timeout_s,
        "limit_concurrency": connection_cap(server.max_connections),
    }


def create_app(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    worker: WorkerIdentity | None = None,
) -> FastAPI:
    """Build the guard. ``registry`` defaults to a fresh one (tests inject their own);
    ``worker``: this process is one of a pool's workers (``app/worker_pool.py``)."""
    version = guard_version()
    metrics = Metrics(
        registry or CollectorRegistry(),
        version,
        shared_dir=None if worker is None else worker.metrics_dir,
    )
    if worker is not None and worker.generation > 0:
        metrics.worker_restarts.inc()  # summed over the host's workers, dead ones included
    store = StateStore((name, acc.exchange) for name, acc in settings.accounts.items())
    policies = {name: settings.policy_for(name) for name in settings.accounts}
    fleet = _FleetParts(settings, metrics) if settings.fleet.enabled else None
    role = settings.fleet.role if fleet is not None else FleetRole.ALL
    kill_switches: KillSwitches = (
        fleet.controls if fleet is not None else KillSwitchStore(settings.server.data_dir)
    )
    decision_log = _decision_log(settings, metrics)
    markets = MarketStore()
    decider = Decider(
        store,
        policies,
        metrics,
        decision_log=decision_log,
        switches=kill_switches.for_account,
        markets=markets.get,
        shared_rates=fleet.rates if fleet is not None else None,
    )
    if fleet is not None:
        fleet.controls.subscribe_limits(
            lambda account, limits: _limits_policy(
                decider, account, None if limits is None else dict(limits)
            )
        )
    auth = TokenAuth((t.name, t.secret(), t.scopes) for t in settings.auth.tokens)
    running: dict[str, Refresher] = {}

    # Events (embedded): state changes and kill-switch changes go to the bus, the bus to the
    # log, the SSE streams and the webhook workers. Fleet mode: each change is written once
    # to the fleet's event stream by the process that observed it (app.fleet.events); every
    # api process follows that stream for its SSE clients, and webhooks are delivered through
    # consumer groups (app.fleet.webhooks).
    bus = EventBus(
        metrics,
        subscriber_queue=settings.events.sse_queue_size,
        replay=settings.events.replay_size,
        max_subscribers=settings.events.sse_max_subscribers,
        flush_s=settings.events.sse_flush_interval_s,
    )
    webhooks = Webhooks(
        [
            WebhookDispatcher(
                _webhook_target(hook), metrics, user_agent=f"pretrade-guard/{version}"
            )
            for hook in settings.webhooks
        ]
    )
    fleet_events = (
        FleetEventParts(settings, fleet, metrics, store, bus, webhooks, decider.policy)
        if fleet is not None
        else None
    )
    publisher: Publisher = bus
    if fleet_events is None:
        store.subscribe(StateEvents(bus, decider.policy))
        bus.add_sink(webhooks)
    elif fleet_events.watcher is not None:
        publisher = fleet_events.watcher

    def on_kill_switch(change: KillSwitchChange) -> None:
        _count_switches(metrics, kill_switches)
        if fleet is None:  # fleet mode: announced by the writing replica's script
            bus.publish(kill_switch_event(change))

    kill_switches.subscribe(on_kill_switch)
    watcher = Watcher(
        store,
        decider.policy,
        publisher,
        kill_switches,
        interval_s=settings.events.watch_interval_s,
    )

    def dead_pollers() -> list[str]:
        refresher = running.get("refresher")
        if fleet is not None and refresher is None:
            return []  # fleet: api processes do not poll; a refresher's ended pollers show
        return refresher.dead_pollers() if refresher else list(settings.accounts)

    # Clients are built now so a bad account option fails at start, not in the lifespan.
    http = httpx.AsyncClient(
        headers={"User-Agent": f"pretrade-guard/{version}"},
        limits=httpx.Limits(
            max_connections=EXCHANGE_CONNECTIONS,
            max_keepalive_connections=EXCHANGE_CONNECTIONS // 2,
        ),
        follow_redirects=False,
    )
    runtime: FleetRuntime | None = None
    refresher: Refresher | None = None
    if fleet is None or fleet_events is None:
        refresher, clients = _build_refresher(settings, store, metrics, http, markets)
    else:
        runtime, clients = _fleet_runtime(
            settings, fleet, metrics, store, http, running, markets, fleet_events
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Kill switches first: no decision may be answered before engaged ones are loaded.
        # (Fleet mode: until they are read from Redis, a synthetic HALT denies everything.)
        if runtime is not None:
            await runtime.start()
        elif isinstance(kill_switches, KillSwitchStore):
            try:
                await kill_switches.open()
            except (OSError, sqlite3.Error, DataError) as exc:
                log.error(
                    "cannot open the guard's database",
                    path=str(kill_switches.path),
                    error=str(exc),
                )
                await http.aclose()
                raise
        _count_switches(metrics, kill_switches)
        for switch in kill_switches.active():
            log.warning(
                "kill switch engaged",
                kill_switch=switch.id,
                scope=switch.scope.value,
                mode=switch.mode.value,
                account=switch.account,
                symbol=switch.symbol,
                actor=switch.actor,
                reason=switch.reason,
            )
        bus.bind_loop()
        webhooks.start()
        if refresher is not None:
            refresher.start()
            running["refresher"] = refresher
        watching = asyncio.create_task(
            watcher.run() if role.answers else asyncio.Event().wait(), name="event-watcher"
        )
        checks = asyncio.create_task(_check_permissions(clients), name="permission-checks")
        log.info(
            "guard started",
            version=version,
            accounts=len(settings.accounts),
            webhooks=len(settings.webhooks),
            data_dir=str(settings.server.data_dir),
            mode="fleet" if runtime is not None else "embedded",
            role=role.value if runtime is not None else None,
        )
        try:
            yield
        finally:
            try:
                await cancel_and_wait((checks, watching))
                running.pop("refresher", None)
                if runtime is not None:
                    await runtime.stop()
                if refresher is not None:
                    await refresher.stop()
                bus.close()
                await webhooks.stop()
                await kill_switches.close()
                await http.aclose()
            finally:
                decision_log.close()  # connections are drained: every decision is queued
            log.info("guard stopped")

    app = GuardApp(
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
        kill_switches=kill_switches,
        events=bus,
        sse_keepalive_s=settings.events.sse_keepalive_s,
        limit_changes=fleet.controls if fleet is not None else None,
        fleet=runtime,
        sse_send_timeout_s=settings.events.sse_send_timeout_s,
        worker=None if worker is None else {"index": worker.index, "count": worker.count},
        event_replay=fleet_events.tail if fleet_events is not None else None,
        replay_size=settings.events.replay_size,
        markets=markets,
    )
    handlers.install(app)
    if role.answers:
        app.include_router(can_trade.router)
        app.include_router(accounts.router)
        app.include_router(events.router)
        app.include_router(admin.router)
    app.include_router(health.router)  # a refresher serves only these
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.body_gate = BodyGate(
        auth,
        max_body_bytes=settings.server.max_body_bytes,
        body_timeout_s=settings.server.body_timeout_s,
    )
    if role.answers:
        # In front of FastAPI: the happy path of GET /can-trade skips the framework.
        app.fast_path = FastCanTrade(app.state.services)
        app.fast_batch = FastBatch(app.state.services)
    return app


def check_workers(settings: Settings) -> None:
    """Several worker processes only for fleet mode's api role (``ConfigError`` otherwise)."""
    workers = settings.server.workers
    if workers == 1:
        return
    given = f"server.workers is {workers} (--workers, PRETRADE_GUARD_SERVER__WORKERS)"
    if not settings.fleet.enabled:
        raise ConfigError(
            f"{given}, but embedded mode (no fleet.redis_url) runs one worker process: its "
            "pollers, state and SQLite kill switches live in that process, and more would "
            "multiply exchange weight and split them. Use --workers 1, or fleet mode with "
            "--role api"
        )
    role = settings.fleet.role
    if role is not FleetRole.API:
        raise ConfigError(
            f"{given}, but fleet.role is {role.value}: only role api runs several worker "
            "processes (a process that polls holds leases and publishes once per host); run "
            "the refresher with one worker and the api role with --workers"
        )


def create_checked_app(settings: Settings, *, worker: WorkerIdentity | None = None) -> FastAPI:
    """``create_app`` after the checks a real start makes (and ``check-config`` repeats):
    at least one account, a worker count the mode allows, and a kill-switch database that
    has lost nothing (read-only).

    Raises ``ConfigError`` or ``DataError``; their messages are for the operator.
    """
    check_workers(settings)
    if not settings.accounts:
        raise ConfigError(
            "no accounts configured: a guard without accounts denies every order yet reports "
            f"ready. Name a config file with accounts in {CONFIG_ENV} "
            f"(now: {os.environ.get(CONFIG_ENV) or 'not set'}); "
            "`pretrade-guard check-config FILE` checks one without starting the guard"
        )
    app = create_app(settings, worker=worker)
    if settings.fleet.enabled:
        return app  # fleet mode keeps its kill switches in Redis, not in data_dir
    problem = inspect_database(settings.server.data_dir)
    if problem is not None:
        raise problem
    return app
