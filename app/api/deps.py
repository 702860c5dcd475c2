"""Typed access to the services the lifespan built, as ``Annotated`` dependency aliases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.decider import Decider
from app.api.security import Principal, Scope, TokenAuth
from app.events.bus import EventBus, Replay
from app.markets.store import MarketStore
from app.metrics import Metrics
from app.state.ports import FleetStatus, KillSwitches, LimitChanges
from app.state.store import StateStore


@dataclass(frozen=True, slots=True)
class Services:
    store: StateStore
    decider: Decider
    auth: TokenAuth
    metrics: Metrics
    dead_pollers: Callable[[], list[str]]
    public_health: bool
    public_metrics: bool
    kill_switches: KillSwitches
    events: EventBus
    sse_keepalive_s: float = 15.0
    #: Fleet mode: run-time limit changes go through the shared store (None: embedded).
    limit_changes: LimitChanges | None = None
    #: Fleet mode: role and readiness for ``/readyz`` (None: embedded).
    fleet: FleetStatus | None = None
    sse_send_timeout_s: float = 10.0
    #: One of several worker processes (``server.workers`` > 1): ``{"index", "count"}``, shown
    #: with the pid on ``/readyz`` (None: the only process).
    worker: Mapping[str, int] | None = None
    #: Fleet mode: ``Last-Event-ID`` replays come from the fleet's event stream (None:
    #: embedded, from this process's ring).
    event_replay: Replay | None = None
    replay_size: int = 1000
    #: Market rules per exchange host, for ``/readyz`` (None: none watched).
    markets: MarketStore | None = None


# Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in the threadpool,
# a thread hop per dependency per request (it dominated the profile of ``/can-trade``).
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


# Documents the scheme in OpenAPI; parsing and checking stay in ``TokenAuth`` so a missing or
# malformed header gets the same 401 body as a wrong token.
_bearer = HTTPBearer(auto_error=False, description="Bearer token from the guard's config.")


def _scope_dependency(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    async def check(
        services: ServicesDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        header = f"Bearer {credentials.credentials}" if credentials else None
        return services.auth.require(header, scope)

    return check


DecideAuth = Annotated[Principal, Depends(_scope_dependency(Scope.DECIDE))]
ReadAuth = Annotated[Principal, Depends(_scope_dependency(Scope.READ))]
AdminAuth = Annotated[Principal, Depends(_scope_dependency(Scope.ADMIN))]
