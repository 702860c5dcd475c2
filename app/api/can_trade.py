"""``/can-trade``: may this account place this order now, and if not, why?"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import DecideAuth, Services, ServicesDep
from app.api.responses import JSONBody
from app.api.schemas import BatchOut, BatchQuery, DecisionOut, ErrorOut, OrderQuery
from app.api.strict import StrictRoute
from app.domain import OrderIntent
from app.state.store import UnknownAccount

router = APIRouter(tags=["decisions"], route_class=StrictRoute)

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "Missing or invalid bearer token."},
    403: {"model": ErrorOut, "description": "The token lacks the `decide` scope."},
    404: {"model": ErrorOut, "description": "The account is not configured."},
    422: {
        "model": ErrorOut,
        "description": "Invalid input (a lax amount, a duplicate key, a body that is not "
        "JSON); `fields` names each bad field.",
    },
}
#: Answered before the body is read (``app/api/body_gate.py``).
_BODY_ERRORS: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    408: {"model": ErrorOut, "description": "The body was not received in time."},
    413: {"model": ErrorOut, "description": "The body is above `server.max_body_bytes`."},
}


@router.get(
    "/can-trade",
    response_model=DecisionOut,
    responses=_ERRORS,
    summary="Decide one order (query parameters)",
)
async def can_trade_get(
    query: Annotated[OrderQuery, Query()], services: ServicesDep, _: DecideAuth
) -> JSONBody:
    return JSONBody(await _decide(services, query.intent()))


async def _decide(services: Services, intent: OrderIntent) -> dict[str, Any]:
    decider = services.decider
    if decider.needs_shared_rate(intent):  # fleet mode: the shared order-rate counter
        return await decider.decide_shared(intent)
    return decider.decide(intent)


@router.post(
    "/can-trade",
    response_model=DecisionOut,
    responses=_BODY_ERRORS,
    summary="Decide one order (JSON body)",
)
async def can_trade_post(query: OrderQuery, services: ServicesDep, _: DecideAuth) -> JSONBody:
    return JSONBody(await _decide(services, query.intent()))


@router.post(
    "/can-trade/batch",
    response_model=BatchOut,
    responses=_BODY_ERRORS,
    summary="Decide many orders in one request (answers in request order)",
)
async def can_trade_batch(batch: BatchQuery, services: ServicesDep, _: DecideAuth) -> JSONBody:
    for index, order in enumerate(batch.orders):
        if services.store.get(order.account) is None:
            raise UnknownAccount(order.account, f"orders.{index}.account")
    return JSONBody(
        {"decisions": [await _decide(services, order.intent()) for order in batch.orders]}
    )
