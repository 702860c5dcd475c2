"""Every Prometheus metric of the guard, created on an injected registry.

Naming: ``pretrade_guard_`` prefix, base units, ``_total`` only on counters, timestamps rather
than "time since". Labels are bounded: account and webhook names come from configuration,
reason codes, event types, kill-switch scopes, error kinds and endpoints are enums or path
templates; never order ids, event ids, kill-switch ids or free text (actors, reasons). Series
that a dashboard needs from the start are created at 0 (here, by ``register_account``, and by
each webhook dispatcher for its own series).
"""

from __future__ import annotations

import platform
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.multiprocess import MultiProcessCollector

from app.domain import KillSwitchScope, ReasonCode, TradingStatus
from app.errors import ErrorKind
from app.events.model import EventType
from app.lean_metrics import LeanCounter, LeanHistogram, SharedSamples

#: Trading-status label values: the known statuses plus buckets for everything else.
STATUS_NOT_REPORTED = "NOT_REPORTED"
STATUS_OTHER = "OTHER"
STATUS_LABELS = (*(s.value for s in TradingStatus), STATUS_NOT_REPORTED, STATUS_OTHER)

_FAST_BUCKETS = (
    0.000005,
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.05,
)
#: HTTP requests: from tens of microseconds (a decision) to seconds (a slow /metrics scrape).
_HTTP_BUCKETS = (*_FAST_BUCKETS, 0.1, 0.25, 0.5, 1.0, 2.5)
_EXCHANGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def status_label(trading_status: str | None) -> str:
    if trading_status is None:
        return STATUS_NOT_REPORTED
    return trading_status if trading_status in TradingStatus.__members__ else STATUS_OTHER


class Metrics:
    """``shared_dir``: this process is one of several workers on one host (``server.workers``
    > 1); every value also goes to its files in that directory (prometheus_client's
    multiprocess mode, which the worker pool turned on before this process imported it) and
    ``exposition()`` reports the sum over every worker's files. Gauges say how several
    workers' values combine (``multiprocess_mode``, ignored with one worker): ``live*`` modes
    forget a dead worker's values (the pool calls ``mark_process_dead``), counters and
    histograms keep them, so totals never go backwards when a worker is replaced."""

    def __init__(
        self, registry: CollectorRegistry, version: str, *, shared_dir: Path | None = None
    ) -> None:
        self.registry = registry
        shared = None
        self._scrape = registry
        if shared_dir is not None:
            if not getattr(prometheus_values.ValueClass, "_multiprocess", False):
                raise RuntimeError(
                    "shared metrics need PROMETHEUS_MULTIPROC_DIR set before prometheus_client "
                    "is imported (the worker pool sets it for its workers)"
                )
            shared = SharedSamples(shared_dir)
            self._scrape = CollectorRegistry()
            MultiProcessCollector(self._scrape, path=str(shared_dir))  # type: ignore[no-untyped-call]
        self.shared = shared
        self.build_info = Info(
            "pretrade_guard_build", "Version of the running guard.", registry=registry
        )
        self.build_info.info({"version": version, "python": platform.python_version()})
        if shared is not None:
            # Info has no multiprocess form; every worker runs the same build.
            self._scrape.register(self.build_info)

        # ------------------------------------------------------------ decisions
        self.decisions = LeanCounter(
            "pretrade_guard_decisions_total",
            "Decisions answered, by outcome.",
            ["outcome"],
            registry=registry,
            shared=shared,
        )
        self.decision_reasons = LeanCounter(
            "pretrade_guard_decision_reasons_total",
            "Reasons given in denied decisions (a decision may carry several).",
            ["reason"],
            registry=registry,
            shared=shared,
        )
        self.decision_warnings = LeanCounter(
            "pretrade_guard_decision_warnings_total",
            "Warnings attached to decisions.",
            ["warning"],
            registry=registry,
            shared=shared,
        )
        self.decision_seconds = LeanHistogram(
            "pretrade_guard_decision_duration_seconds",
            "Time to evaluate one order intent (rules only, no HTTP).",
            buckets=_FAST_BUCKETS,
            registry=registry,
            shared=shared,
        )
        self.decision_log_dropped = Counter(
            "pretrade_guard_decision_log_dropped_total",
            "Decision log lines dropped because the log writer could not keep up.",
            registry=registry,
        )
        for outcome in ("allowed", "denied"):
            self.decisions.labels(outcome)
        for code in ReasonCode:
            self.decision_reasons.labels(code.value)

        # ------------------------------------------------------------ HTTP API
        self.http_requests = LeanCounter(
            "pretrade_guard_http_requests_total",
            "HTTP requests served, by route template, method and status code.",
            ["route", "method", "status"],
            registry=registry,
            shared=shared,
        )
        self.http_fast_path = LeanCounter(
            "pretrade_guard_http_fast_path_requests_total",
            "GET /can-trade requests answered by the lean fast path (also counted in "
            "pretrade_guard_http_requests_total); the rest went through the full framework.",
            registry=registry,
            shared=shared,
        )
        self.http_seconds = LeanHistogram(
            "pretrade_guard_http_request_duration_seconds",
            "HTTP request latency inside the guard, by route template.",
            ["route", "method"],
            buckets=_HTTP_BUCKETS,
            registry=registry,
            shared=shared,
        )

        # ------------------------------------------------------------ exchange calls
        self.exchange_requests = Counter(
            "pretrade_guard_exchange_requests_total",
            "Requests sent to exchanges, by endpoint and outcome (ok or an error kind).",
            ["exchange", "endpoint", "outcome"],
            registry=registry,
        )
        self.exchange_seconds = Histogram(
            "pretrade_guard_exchange_request_duration_seconds",
            "Exchange request latency, by endpoint.",
            ["exchange", "endpoint"],
            buckets=_EXCHANGE_BUCKETS,
            registry=registry,
        )
        self.used_weight = Gauge(
            "pretrade_guard_exchange_used_weight",
            "Request weight the exchange reports as used in the current minute, per budget.",
            ["budget"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.weight_target = Gauge(
            "pretrade_guard_exchange_weight_target",
            "Weight per minute the guard allows itself, per budget.",
            ["budget"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.budget_blocked_until = Gauge(
            "pretrade_guard_exchange_blocked_until_timestamp_seconds",
            "Until when calls on a budget are paused after a 429/418 "
            "(0 before the first pause; a past time once it is over).",
            ["budget"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.poll_stretch = Gauge(
            "pretrade_guard_poll_interval_stretch_ratio",
            "Factor applied to poll intervals so all accounts of a budget fit its target.",
            ["budget"],
            multiprocess_mode="livemax",
            registry=registry,
        )

        # ------------------------------------------------------------ refresh / accounts
        self.refresh_last_success = Gauge(
            "pretrade_guard_refresh_last_success_timestamp_seconds",
            "Unix time of the last successful refresh, per account and kind.",
            ["account", "kind"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.refresh_failures = Counter(
            "pretrade_guard_refresh_failures_total",
            "Failed refreshes, per account, kind (status/snapshot/clock) and error kind.",
            ["account", "kind", "error"],
            registry=registry,
        )
        self.market_last_success = Gauge(
            "pretrade_guard_market_refresh_last_success_timestamp_seconds",
            "Unix time of the last successful market-rules refresh, per exchange host and kind "
            "(market_rules: exchangeInfo, mark_prices: premiumIndex).",
            ["market", "kind"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.market_failures = Counter(
            "pretrade_guard_market_refresh_failures_total",
            "Failed market-rules refreshes, per exchange host, kind and error kind.",
            ["market", "kind", "error"],
            registry=registry,
        )
        self.consecutive_failures = Gauge(
            "pretrade_guard_poller_consecutive_failures",
            "Refresh failures in a row, per account and kind of refresh (status/snapshot); "
            "0 after a success of that kind.",
            ["account", "kind"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.clock_offset = Gauge(
            "pretrade_guard_exchange_clock_offset_seconds",
            "Exchange server time minus local time, per account, as learnt at the last clock "
            "sync (the time endpoint at start, every poll.clock_resync_s, and after a -1021 "
            "answer); not re-measured between syncs.",
            ["account"],
            multiprocess_mode="livemostrecent",
            registry=registry,
        )
        self.trading_status = Gauge(
            "pretrade_guard_account_trading_status",
            "1 for the account's current trading status, 0 for the others.",
            ["account", "status"],
            multiprocess_mode="livemostrecent",
            registry=registry,
        )
        self.can_trade = Gauge(
            "pretrade_guard_account_can_trade",
            "1 when the exchange reports canTrade true.",
            ["account"],
            multiprocess_mode="livemostrecent",
            registry=registry,
        )
        self.margin_ratio = Gauge(
            "pretrade_guard_account_margin_ratio",
            "Maintenance margin / margin balance (1 when at or past liquidation).",
            ["account"],
            multiprocess_mode="livemostrecent",
            registry=registry,
        )
        self.available_balance = Gauge(
            "pretrade_guard_account_available_balance",
            "Balance available for new orders' initial margin, in the account's asset.",
            ["account"],
            multiprocess_mode="livemostrecent",
            registry=registry,
        )
        self.data_fresh = Gauge(
            "pretrade_guard_account_data_fresh",
            "1 when both status and snapshot are within the account's max age.",
            ["account"],
            multiprocess_mode="livemostrecent",
            registry=registry,
        )

        self.quant_locked = Gauge(
            "pretrade_guard_quant_rule_locked",
            "1 while a quantitative-rule lock holds, per account and scope (a symbol or ACCOUNT).",
            ["account", "scope"],
            multiprocess_mode="livemostrecent",
            registry=registry,
        )
        self.quant_ratio = Gauge(
            "pretrade_guard_quant_rule_trigger_ratio",
            "Quantitative-rule indicator value / trigger value (1 = at the trigger).",
            ["account", "scope", "indicator"],
            multiprocess_mode="livemostrecent",
            registry=registry,
        )

        # ------------------------------------------------------------ operator controls, events
        self.kill_switches_engaged = Gauge(
            "pretrade_guard_kill_switches_engaged",
            "Kill switches engaged now, by scope (global, account, symbol).",
            ["scope"],
            multiprocess_mode="livemostrecent",
            registry=registry,
        )
        for scope in KillSwitchScope:
            self.kill_switches_engaged.labels(scope.value).set(0)
        self.events = Counter(
            "pretrade_guard_events_total",
            "Status-change events published, by type.",
            ["type"],
            registry=registry,
        )
        for event_type in EventType:
            self.events.labels(event_type.value)
        self.sse_subscribers = Gauge(
            "pretrade_guard_sse_subscribers",
            "Clients connected to the /events stream.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.sse_dropped = Counter(
            "pretrade_guard_sse_dropped_total",
            "/events clients dropped for being too slow: overflow (fell further behind than "
            "events.sse_queue_size events), send_timeout (did not read for "
            "events.sse_send_timeout_s).",
            ["reason"],
            registry=registry,
        )
        for reason in ("overflow", "send_timeout"):
            self.sse_dropped.labels(reason)
        self.sse_refused = Counter(
            "pretrade_guard_sse_refused_total",
            "/events connections refused because events.sse_max_subscribers were connected.",
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "pretrade_guard_webhook_deliveries_total",
            "Webhook delivery outcomes: delivered, retried (one per retry), failed (gave up), "
            "dropped (queue full or shutdown).",
            ["webhook", "outcome"],
            registry=registry,
        )
        self.webhook_queue_depth = Gauge(
            "pretrade_guard_webhook_queue_depth",
            "Events waiting for delivery, per webhook.",
            ["webhook"],
            multiprocess_mode="livesum",
            registry=registry,
        )

        # ------------------------------------------------------------ fleet mode
        self.fleet_redis_up = Gauge(
            "pretrade_guard_fleet_redis_up",
            "1 while this process reaches the fleet's Redis (fleet mode only: no series in "
            "embedded mode), by fleet role.",
            ["role"],
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.fleet_redis_errors = Counter(
            "pretrade_guard_fleet_redis_errors_total",
            "Redis commands that failed, by where they were made.",
            ["where"],
            registry=registry,
        )
        self.fleet_redis_reconnects = Counter(
            "pretrade_guard_fleet_redis_reconnects_total",
            "Times Redis became reachable again after being unreachable.",
            registry=registry,
        )
        self.fleet_leases_held = Gauge(
            "pretrade_guard_fleet_leases_held",
            "Account leases (polling rights) this refresher holds.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.fleet_lease_changes = Counter(
            "pretrade_guard_fleet_lease_changes_total",
            "Leases acquired, released, or lost (renewal refused or impossible).",
            ["change"],
            registry=registry,
        )
        self.fleet_live_refreshers = Gauge(
            "pretrade_guard_fleet_live_refreshers",
            "Refreshers with a live heartbeat, as this process last saw (fleet mode only), by "
            "this process's role.",
            ["role"],
            multiprocess_mode="livemostrecent",
            registry=registry,
        )
        self.fleet_published = Counter(
            "pretrade_guard_fleet_state_published_total",
            "Refresh results published, by outcome (ok, fenced: refused as stale, error).",
            ["outcome"],
            registry=registry,
        )
        self.fleet_applied = Counter(
            "pretrade_guard_fleet_state_applied_total",
            "Published states applied to this process's store (or dropped as old/invalid).",
            ["outcome"],
            registry=registry,
        )
        self.fleet_apply_lag = Histogram(
            "pretrade_guard_fleet_publish_apply_lag_seconds",
            "Wall time from a refresher publishing a state to this process applying it.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.fleet_fallback_polling = Gauge(
            "pretrade_guard_fleet_fallback_polling",
            "1 while this api process polls the exchange itself (Redis or refreshers lost).",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.fleet_controls_version = Gauge(
            "pretrade_guard_fleet_controls_version",
            "Version of the shared kill switches and limits this process applies.",
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.fleet_controls_restored = Counter(
            "pretrade_guard_fleet_controls_restored_total",
            "Kill switches found missing from Redis without a release and written back.",
            registry=registry,
        )
        self.fleet_events = Counter(
            "pretrade_guard_fleet_events_total",
            "Fleet mode: status-change events this process wrote to the fleet's event stream "
            "(published), found already announced by another replica (duplicate), refused "
            "with a lost lease (fenced), or dropped from a full outbox (dropped).",
            ["outcome"],
            registry=registry,
        )
        self.fleet_events_outbox = Gauge(
            "pretrade_guard_fleet_events_outbox",
            "Fleet mode: events waiting to be written to Redis (grows while it is "
            "unreachable), by fleet role.",
            ["role"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.fleet_webhook_claimed = Counter(
            "pretrade_guard_fleet_webhook_claimed_total",
            "Fleet mode: webhook deliveries this process took over from another replica "
            "(idle past fleet.webhook_claim_idle_s: that replica died or was cut off).",
            ["webhook"],
            registry=registry,
        )
        self.fleet_webhook_pending = Gauge(
            "pretrade_guard_fleet_webhook_pending",
            "Fleet mode: events not yet delivered (acknowledged) to a webhook, fleet-wide: "
            "read by a replica and in hand, or not read yet; as this process last saw.",
            ["webhook"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.worker_restarts = Counter(
            "pretrade_guard_worker_restarts_total",
            "Worker processes started to replace one that died (server.workers > 1, fleet api "
            "role); always 0 with one worker.",
            registry=registry,
        )
        self.fleet_rate_unavailable = Counter(
            "pretrade_guard_fleet_rate_unavailable_total",
            "Orders denied because the shared order-rate counter did not answer in time.",
            registry=registry,
        )

    def exposition(self) -> bytes:
        """The text of ``/metrics``: this process's registry, or with several workers the
        whole host (every worker's files, dead workers' counters included)."""
        return generate_latest(self._scrape)

    def register_account(self, account: str) -> None:
        """Create the account's series at 0 so they exist before the first refresh."""
        for kind in ("status", "snapshot"):
            self.refresh_last_success.labels(account, kind).set(0)
        for kind in ("status", "snapshot"):
            self.consecutive_failures.labels(account, kind).set(0)
        self.can_trade.labels(account).set(0)
        self.data_fresh.labels(account).set(0)
        for label in STATUS_LABELS:
            self.trading_status.labels(account, label).set(0)
        for kind in ("status", "snapshot", "clock"):
            for err in ErrorKind:
                self.refresh_failures.labels(account, kind, err.value)
