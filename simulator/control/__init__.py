"""The control API under ``/_sim``: not part of any exchange, unauthenticated, JSON only."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from simulator.control.accounts import AccountsApi
from simulator.control.faults import FaultsApi
from simulator.control.markets import MarketsApi
from simulator.control.observe import ObserveApi
from simulator.control.wire import ControlError, problem
from simulator.state import SimulatorState


async def _problem(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ControlError):
        return problem(exc.status, exc.error, exc.detail)
    if isinstance(exc, HTTPException):  # unknown /_sim path (404) or wrong method (405)
        return problem(exc.status_code, exc.detail, {"path": request.url.path})
    raise exc


def create_control_app(state: SimulatorState) -> Starlette:
    """The Starlette app serving ``/_sim/...`` (and ASGI lifespan for the whole simulator)."""
    routes = [
        *ObserveApi(state).routes(),
        *AccountsApi(state).routes(),
        *FaultsApi(state).routes(),
        *MarketsApi(state).routes(),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={ControlError: _problem, HTTPException: _problem},
    )
