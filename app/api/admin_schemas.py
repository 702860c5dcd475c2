"""Wire schemas of the admin API (kill switches, audit log, limits): a public contract."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.schemas import AccountName, Amount, Symbol
from app.domain import KillSwitchMode, KillSwitchScope, Policy, RateLimit

Actor = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Who does this (a person or system); recorded in the audit log.",
    ),
]
Why = Annotated[
    str,
    Field(
        min_length=1,
        max_length=500,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Why; shown in decisions and recorded in the audit log.",
    ),
]
#: One year: a switch that should hold longer should not expire at all.
_MAX_EXPIRY_S = 365 * 24 * 3600
#: One second: a shorter switch would be over (or already expired, ``1e-300``) before anyone
#: saw it, yet answer 201 as if it held.
MIN_EXPIRY_S = 1
#: Largest integer the guard's database stores (ids, epoch ms): larger ones are refused as
#: invalid input instead of failing in SQLite with a 500.
MAX_DB_INT = 2**63 - 1


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KillSwitchIn(_In):
    scope: KillSwitchScope = Field(
        description="`global`: every account; `account`: one account; `symbol`: one symbol "
        "of one account."
    )
    account: AccountName | None = Field(default=None, description="For account and symbol.")
    symbol: Symbol | None = Field(default=None, description="For symbol scope only.")
    mode: KillSwitchMode = Field(
        description="`HALT` denies every order; `REDUCE_ONLY` lets only reduce-only orders "
        "that really shrink a position through."
    )
    actor: Actor
    reason: Why
    expires_in_s: float | None = Field(
        default=None,
        ge=MIN_EXPIRY_S,
        le=_MAX_EXPIRY_S,
        description="Release by itself after this long (at least 1 s).",
    )
    expires_at_ms: int | None = Field(
        default=None,
        gt=0,
        le=MAX_DB_INT,
        description="Release by itself at this time (epoch ms, at least 1 s ahead).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.scope is KillSwitchScope.GLOBAL and (self.account or self.symbol):
            raise ValueError("a global switch takes neither account nor symbol")
        if self.scope is not KillSwitchScope.GLOBAL and self.account is None:
            raise ValueError(f"account is required for scope {self.scope.value}")
        if self.scope is KillSwitchScope.ACCOUNT and self.symbol is not None:
            raise ValueError("symbol is only allowed with scope symbol")
        if self.scope is KillSwitchScope.SYMBOL and self.symbol is None:
            raise ValueError("symbol is required for scope symbol")
        if self.expires_in_s is not None and self.expires_at_ms is not None:
            raise ValueError("give at most one of expires_in_s and expires_at_ms")
        return self


class KillSwitchOut(BaseModel):
    id: str
    scope: KillSwitchScope
    account: str | None
    symbol: str | None
    mode: KillSwitchMode
    actor: str
    reason: str
    created_at_ms: int
    expires_at_ms: int | None


class KillSwitchesOut(BaseModel):
    kill_switches: list[KillSwitchOut]


class ReleaseIn(_In):
    actor: Actor
    reason: Why


class ReleasedOut(BaseModel):
    kill_switch: KillSwitchOut
    released_by: str
    release_reason: str
    released_at_ms: int


class AuditEntryOut(BaseModel):
    id: int
    time_ms: int
    action: str = Field(
        description="kill_switch.engage, kill_switch.release, kill_switch.expire, "
        "limits.update, limits.reset, or kill_switches.reset (the first entry of a database "
        "started over with `pretrade-guard reset-kill-switches`)."
    )
    actor: str
    principal: str | None = Field(description="Name of the API token that made the change.")
    account: str | None
    symbol: str | None
    target: str | None = Field(description="Kill-switch id, when the entry is about one.")
    reason: str
    details: dict[str, Any]


class AuditOut(BaseModel):
    entries: list[AuditEntryOut] = Field(description="Newest first.")


# --------------------------------------------------------------------------- limits


class RateLimitIn(_In):
    max_orders: int = Field(ge=1, le=1_000_000)
    window_s: float = Field(gt=0, le=3600)


class LimitsIn(_In):
    """Limit fields; in a PATCH only those present change, and ``null`` removes a limit."""

    max_order_notional: Amount | None = None
    max_position_notional: Amount | None = None
    min_available_after_order: (
        Annotated[Decimal, Field(ge=0, allow_inf_nan=False, max_digits=40)] | None
    ) = None
    max_margin_ratio: Annotated[Decimal, Field(gt=0, le=1)] | None = None
    default_leverage: Annotated[Decimal, Field(ge=1, le=200)] | None = None
    order_rate: RateLimitIn | None = None
    symbol_order_rate: RateLimitIn | None = None

    @model_validator(mode="after")
    def _required_stay(self) -> Self:
        for name in ("max_margin_ratio", "default_leverage"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be removed, only changed")
        return self

    def apply(self, policy: Policy) -> Policy:
        """``policy`` with the fields present in this body changed."""
        changes: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if isinstance(value, RateLimitIn):
                value = RateLimit(max_orders=value.max_orders, window_s=value.window_s)
            changes[name] = value
        return dataclasses.replace(policy, **changes)


class LimitsChangeIn(_In):
    actor: Actor
    reason: Why
    limits: LimitsIn


class RateLimitOut(BaseModel):
    max_orders: int
    window_s: float


class LimitsOut(BaseModel):
    max_order_notional: str | None = Field(description="Decimal, in the margin asset.")
    max_position_notional: str | None
    min_available_after_order: str | None
    max_margin_ratio: str
    default_leverage: str
    order_rate: RateLimitOut | None
    symbol_order_rate: RateLimitOut | None


class AccountLimitsOut(BaseModel):
    account: str
    overridden: bool = Field(description="True when set at run time (lost at restart).")
    limits: LimitsOut = Field(description="What decisions use now.")
    configured: LimitsOut = Field(description="What the configuration says.")


def limits_dict(policy: Policy) -> dict[str, Any]:
    def rate(limit: RateLimit | None) -> dict[str, Any] | None:
        return (
            None if limit is None else {"max_orders": limit.max_orders, "window_s": limit.window_s}
        )

    def dec(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return {
        "max_order_notional": dec(policy.max_order_notional),
        "max_position_notional": dec(policy.max_position_notional),
        "min_available_after_order": dec(policy.min_available_after_order),
        "max_margin_ratio": str(policy.max_margin_ratio),
        "default_leverage": str(policy.default_leverage),
        "order_rate": rate(policy.order_rate),
        "symbol_order_rate": rate(policy.symbol_order_rate),
    }
