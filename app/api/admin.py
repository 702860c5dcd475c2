"""``/admin``: kill switches, the audit log, and run-time limits (``admin`` scope).

Every change is committed to the guard's database before it takes effect and before the
answer is sent: a kill switch together with its audit row (one transaction), a limit change
as its audit row. Kill switches persist across restarts; limits set here hold until reset
or restart (the configuration stays the default), and their history stays in the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.exceptions import RequestValidationError

from app.api.admin_schemas import (
    MAX_DB_INT,
    MIN_EXPIRY_S,
    AccountLimitsOut,
    Actor,
    AuditOut,
    KillSwitchesOut,
    KillSwitchIn,
    KillSwitchOut,
    LimitsChangeIn,
    ReleasedOut,
    ReleaseIn,
    Why,
    limits_dict,
)
from app.api.deps import AdminAuth, Services, ServicesDep
from app.api.responses import JSONBody, error_body
from app.api.schemas import ErrorOut
from app.api.strict import StrictRoute
from app.domain import Instant
from app.state.killswitch import AuditEntry, switch_dict
from app.state.store import UnknownAccount

router = APIRouter(prefix="/admin", tags=["admin"], route_class=StrictRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or invalid bearer token."},
    403: {"model": ErrorOut, "description": "The token lacks the `admin` scope."},
    422: {"model": ErrorOut, "description": "Invalid request; `fields` names each problem."},
    503: {
        "model": ErrorOut,
        "description": "The guard's database could not be written (`STORAGE_UNAVAILABLE`).",
    },
    507: {"model": ErrorOut, "description": "The guard's disk is full (`STORAGE_FULL`)."},
}
_NOT_FOUND_ACCOUNT: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "Unknown account (`UNKNOWN_ACCOUNT`)."}
}


def _require_account(services: Services, account: str, field: str = "account") -> None:
    if services.store.get(account) is None:
        raise UnknownAccount(account, field)


def _invalid(field: str, message: str, location: str = "body") -> RequestValidationError:
    """A 422 in the same shape as pydantic's, naming ``field``."""
    return RequestValidationError(
        [{"loc": (location, field), "msg": message, "type": "value_error"}]
    )


def _who(body: ReleaseIn | None, actor: str | None, reason: str | None) -> tuple[str, str]:
    """Actor and reason from a JSON body, else from the query string (both required)."""
    if body is not None:
        return body.actor, body.reason
    missing = [name for name, value in (("actor", actor), ("reason", reason)) if not value]
    if missing:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": "Field required (query or JSON body)",
                    "type": "missing",
                }
                for name in missing
            ]
        )
    return str(actor), str(reason)


QueryActor = Annotated[Actor | None, Query(description="Or give it in a JSON body.")]
QueryWhy = Annotated[Why | None, Query(description="Or give it in a JSON body.")]
OptionalRelease = Annotated[ReleaseIn | None, Body()]


# --------------------------------------------------------------------------- kill switches


@router.post(
    "/kill-switches",
    status_code=201,
    response_model=KillSwitchOut,
    responses={**_ERRORS, **_NOT_FOUND_ACCOUNT},
    summary="Engage a kill switch (persisted and audited before the answer)",
)
async def engage(body: KillSwitchIn, services: ServicesDep, principal: AdminAuth) -> JSONBody:
    if body.account is not None:
        _require_account(services, body.account)
    now_ms = Instant.now().wall_ms
    expires_at_ms = body.expires_at_ms
    if body.expires_in_s is not None:
        expires_at_ms = now_ms + round(body.expires_in_s * 1000)
    elif expires_at_ms is not None and expires_at_ms < now_ms + MIN_EXPIRY_S * 1000:
        raise _invalid("expires_at_ms", f"must be at least {MIN_EXPIRY_S} s in the future")
    switch = await services.kill_switches.engage(
        scope=body.scope,
        mode=body.mode,
        actor=body.actor,
        reason=body.reason,
        account=body.account,
        symbol=body.symbol.upper() if body.symbol else None,
        expires_at_ms=expires_at_ms,
        principal=principal.name,
    )
    return JSONBody(switch_dict(switch), status_code=201)


@router.get(
    "/kill-switches",
    response_model=KillSwitchesOut,
    responses={**_ERRORS, **_NOT_FOUND_ACCOUNT},
    summary="Engaged kill switches",
)
async def list_switches(
    services: ServicesDep,
    _: AdminAuth,
    account: Annotated[str | None, Query(description="Only those covering this account.")] = None,
) -> JSONBody:
    now_ms = Instant.now().wall_ms
    switches = services.kill_switches.active()
    if account is not None:
        _require_account(services, account)
        switches = services.kill_switches.for_account(account)
    active = [switch_dict(s) for s in switches if s.active(now_ms)]
    return JSONBody({"kill_switches": active})


@router.delete(
    "/kill-switches/{switch_id}",
    response_model=ReleasedOut,
    responses={
        **_ERRORS,
        404: {"model": ErrorOut, "description": "No engaged switch with this id."},
    },
    summary="Release a kill switch (actor and reason in the query or a JSON body)",
)
async def release(
    switch_id: str,
    services: ServicesDep,
    principal: AdminAuth,
    body: OptionalRelease = None,
    actor: QueryActor = None,
    reason: QueryWhy = None,
) -> JSONBody:
    who, why = _who(body, actor, reason)
    change = await services.kill_switches.release(
        switch_id, actor=who, reason=why, principal=principal.name
    )
    if change is None:
        return error_body(
            404,
            "KILL_SWITCH_NOT_FOUND",
            f"no engaged kill switch has id {switch_id!r} (released or expired already?)",
        )
    return JSONBody(
        {
            "kill_switch": switch_dict(change.switch),
            "released_by": change.actor,
            "release_reason": change.reason,
            "released_at_ms": change.time_ms,
        }
    )


# --------------------------------------------------------------------------- audit


def _entry(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "time_ms": entry.time_ms,
        "action": entry.action,
        "actor": entry.actor,
        "principal": entry.principal,
        "account": entry.account,
        "symbol": entry.symbol,
        "target": entry.target,
        "reason": entry.reason,
        "details": dict(entry.details),
    }


@router.get("/audit", response_model=AuditOut, responses=_ERRORS, summary="The audit log")
async def audit(
    services: ServicesDep,
    _: AdminAuth,
    limit: Annotated[int, Query(ge=1, le=1000, description="Entries to return.")] = 100,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_DB_INT, description="Page: entries older than this id.")
    ] = None,
) -> JSONBody:
    entries = await services.kill_switches.audit(limit, before_id=before_id)
    return JSONBody({"entries": [_entry(e) for e in entries]})


# --------------------------------------------------------------------------- limits


def _limits_view(services: Services, account: str) -> dict[str, Any]:
    decider = services.decider
    return {
        "account": account,
        "overridden": decider.is_overridden(account),
        "limits": limits_dict(decider.policy(account)),
        "configured": limits_dict(decider.configured_policy(account)),
    }


_LIMIT_RESPONSES = {**_ERRORS, **_NOT_FOUND_ACCOUNT}


@router.get(
    "/accounts/{account}/limits",
    response_model=AccountLimitsOut,
    responses=_LIMIT_RESPONSES,
    summary="The account's effective limits, and the configured ones",
)
async def get_limits(account: str, services: ServicesDep, _: AdminAuth) -> JSONBody:
    _require_account(services, account, "account")
    return JSONBody(_limits_view(services, account))


async def _change_limits(
    account: str, change: LimitsChangeIn, services: Services, principal: str, *, replace: bool
) -> JSONBody:
    _require_account(services, account, "account")
    decider = services.decider
    # One change at a time, so a PATCH never starts from a policy that is being replaced.
    async with decider.policy_changes:
        before = decider.policy(account)
        base = decider.configured_policy(account) if replace else before
        after = change.limits.apply(base)
        details = {
            "method": "PUT" if replace else "PATCH",
            "before": limits_dict(before),
            "after": limits_dict(after),
        }
        if services.limit_changes is not None:  # fleet: audited and applied everywhere
            await services.limit_changes.change_limits(
                account,
                limits_dict(after),
                action="limits.update",
                actor=change.actor,
                reason=change.reason,
                principal=principal,
                details=details,
            )
        else:
            # Audit first: a change that is not recorded must not take effect.
            await services.kill_switches.record(
                "limits.update",
                actor=change.actor,
                reason=change.reason,
                principal=principal,
                account=account,
                details=details,
            )
            decider.set_policy(account, after)
    return JSONBody(_limits_view(services, account))


@router.patch(
    "/accounts/{account}/limits",
    response_model=AccountLimitsOut,
    responses=_LIMIT_RESPONSES,
    summary="Change some limits at run time (absent fields keep their value; null removes)",
)
async def patch_limits(
    account: str, change: LimitsChangeIn, services: ServicesDep, principal: AdminAuth
) -> JSONBody:
    return await _change_limits(account, change, services, principal.name, replace=False)


@router.put(
    "/accounts/{account}/limits",
    response_model=AccountLimitsOut,
    responses=_LIMIT_RESPONSES,
    summary="Set the limits at run time (absent fields take the configured value)",
)
async def put_limits(
    account: str, change: LimitsChangeIn, services: ServicesDep, principal: AdminAuth
) -> JSONBody:
    return await _change_limits(account, change, services, principal.name, replace=True)


@router.delete(
    "/accounts/{account}/limits",
    response_model=AccountLimitsOut,
    responses=_LIMIT_RESPONSES,
    summary="Go back to the configured limits (actor and reason in the query or a JSON body)",
)
async def reset_limits(
    account: str,
    services: ServicesDep,
    principal: AdminAuth,
    body: OptionalRelease = None,
    actor: QueryActor = None,
    reason: QueryWhy = None,
) -> JSONBody:
    _require_account(services, account, "account")
    who, why = _who(body, actor, reason)
    decider = services.decider
    async with decider.policy_changes:
        details = {
            "before": limits_dict(decider.policy(account)),
            "after": limits_dict(decider.configured_policy(account)),
        }
        if services.limit_changes is not None:  # fleet: audited and applied everywhere
            await services.limit_changes.change_limits(
                account,
                None,
                action="limits.reset",
                actor=who,
                reason=why,
                principal=principal.name,
                details=details,
            )
        else:
            await services.kill_switches.record(
                "limits.reset",
                actor=who,
                reason=why,
                principal=principal.name,
                account=account,
                details=details,
            )
            decider.reset_policy(account)
    return JSONBody(_limits_view(services, account))
