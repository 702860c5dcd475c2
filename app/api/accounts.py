"""``/accounts``: the cached state of each guarded account (``read`` scope)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import ReadAuth, ServicesDep
from app.api.responses import JSONBody
from app.api.schemas import ErrorOut
from app.api.strict import StrictRoute
from app.api.views import account_view
from app.domain import Instant
from app.state.store import UnknownAccount

router = APIRouter(tags=["accounts"], route_class=StrictRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or invalid bearer token."},
    403: {"model": ErrorOut, "description": "The token lacks the `read` scope."},
}


@router.get("/accounts", responses=_ERRORS, summary="Every account's freshness and status")
async def list_accounts(services: ServicesDep, _: ReadAuth) -> JSONBody:
    now = Instant.now()
    policy = services.decider.policy
    return JSONBody(
        {
            "accounts": [
                account_view(state, policy(state.account), now, detail=False)
                for state in services.store.all()
            ]
        }
    )


@router.get(
    "/accounts/{account}",
    responses={**_ERRORS, 404: {"model": ErrorOut, "description": "Unknown account."}},
    summary="One account's cached status and snapshot",
)
async def get_account(account: str, services: ServicesDep, _: ReadAuth) -> JSONBody:
    state = services.store.get(account)
    if state is None:
        raise UnknownAccount(account)
    return JSONBody(
        account_view(state, services.decider.policy(account), Instant.now(), detail=True)
    )
