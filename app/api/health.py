"""``/healthz`` (alive), ``/readyz`` (every account fresh), ``/metrics`` (Prometheus)."""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Header
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from app.api.deps import Services, ServicesDep
from app.api.responses import JSONBody
from app.api.security import Scope
from app.api.strict import StrictRoute
from app.api.views import freshness, market_readiness
from app.domain import Instant

router = APIRouter(tags=["operations"], route_class=StrictRoute)

AuthHeader = Annotated[str | None, Header(include_in_schema=False)]


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz(services: ServicesDep, authorization: AuthHeader = None) -> JSONBody:
    if not services.public_health:
        services.auth.require(authorization, Scope.READ)
    return JSONBody({"status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: every account has fresh data and every exchange host fresh market "
    "rules (503 otherwise)",
    description="`accounts`: per account, the ages of its status and snapshot, its last "
    "error and whether its poller runs. `markets`: per exchange host whose market rules the "
    "guard polls (Binance USD-M), its accounts, the number of symbols, the ages of the "
    "symbol rules (`exchangeInfo`) and mark prices (`premiumIndex`), each one's last error, "
    "and `reason` when they are missing or older than the accounts' policy allows (orders "
    "are then denied with `MARKET_RULES_UNAVAILABLE`).",
    responses={
        503: {
            "description": "At least one account is stale, has no data, or lost its poller, "
            "or an exchange host's market rules are missing or stale (`markets`); in fleet "
            "mode, also while the process waits for something (`fleet.waiting_for`: Redis, "
            "kill switches, account state, an exchange host's market rules); the body says "
            "which."
        }
    },
)
async def readyz(services: ServicesDep, authorization: AuthHeader = None) -> JSONBody:
    if not services.public_health:
        services.auth.require(authorization, Scope.READ)
    fleet = services.fleet
    if fleet is not None and not fleet.answers:  # a refresher: no account state of its own
        ready = fleet.ready()
        body = {"ready": ready, "fleet": fleet.readiness()}
        return JSONBody(body, status_code=200 if ready else 503)
    accounts = _freshness_by_account(services)
    markets = _market_readiness(services)
    ready = all(v["fresh"] and v["poller_alive"] for v in accounts.values()) and all(
        m["ready"] for m in markets.values()
    )
    body = {"ready": ready, "accounts": accounts, "markets": markets}
    if fleet is not None:
        ready = ready and fleet.ready()
        body = {**body, "ready": ready, "fleet": fleet.readiness()}
        if services.worker is not None:  # which of the host's worker processes answered
            body["worker"] = {**services.worker, "pid": os.getpid()}
    return JSONBody(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(services: ServicesDep, authorization: AuthHeader = None) -> Response:
    if not services.public_metrics:
        services.auth.require(authorization, Scope.READ)
    if services.fleet is None or services.fleet.answers:
        _freshness_by_account(services)  # brings the data_fresh gauges up to date
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _market_readiness(services: Services) -> dict[str, dict[str, Any]]:
    """Each polled exchange host's market rules, judged by its accounts' strictest policy."""
    if services.markets is None:
        return {}
    now = Instant.now()
    found = {}
    for host, accounts in services.markets.accounts_by_host().items():
        view = services.markets.view(host)
        if view is None:
            continue
        policies = [services.decider.policy(account) for account in accounts]
        found[host] = market_readiness(
            view,
            accounts,
            min(p.max_market_rules_age_s for p in policies),
            min(p.max_mark_price_age_s for p in policies),
            now,
        )
    return found


def _freshness_by_account(services: Services) -> dict[str, dict[str, Any]]:
    now = Instant.now()
    dead = set(services.dead_pollers())
    accounts: dict[str, dict[str, Any]] = {}
    for state in services.store.all():
        view = freshness(state, services.decider.policy(state.account), now)
        view["poller_alive"] = state.account not in dead
        services.metrics.data_fresh.labels(state.account).set(1 if view["fresh"] else 0)
        accounts[state.account] = view
    return accounts
