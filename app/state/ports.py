"""What the app needs from operator controls and shared counters, as interfaces.

Embedded mode implements them in this process (SQLite kill switches, in-memory counts);
fleet mode (``app.fleet``) implements them on Redis. The API and the events see only these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.domain import KillSwitch, KillSwitchMode, KillSwitchScope, OrderRate, Policy
from app.state.killswitch import AuditEntry, KillSwitchChange


class KillSwitches(Protocol):
    """Engaged kill switches (a memory snapshot for decisions) and the audit log."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def subscribe(self, listener: Callable[[KillSwitchChange], None]) -> None: ...

    def for_account(self, account: str) -> tuple[KillSwitch, ...]: ...

    def active(self) -> tuple[KillSwitch, ...]: ...

    def due_for_expiry(self, now_ms: int) -> bool: ...

    async def engage(
        self,
        *,
        scope: KillSwitchScope,
        mode: KillSwitchMode,
        actor: str,
        reason: str,
        account: str | None = None,
        symbol: str | None = None,
        expires_at_ms: int | None = None,
        principal: str | None = None,
    ) -> KillSwitch: ...

    async def release(
        self, switch_id: str, *, actor: str, reason: str, principal: str | None = None
    ) -> KillSwitchChange | None: ...

    async def expire_due(self) -> list[KillSwitch]: ...

    async def record(
        self,
        action: str,
        *,
        actor: str,
        reason: str,
        principal: str | None = None,
        account: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry: ...

    async def audit(
        self, limit: int = 100, *, before_id: int | None = None
    ) -> list[AuditEntry]: ...


class LimitChanges(Protocol):
    """Run-time limit changes shared by the fleet: audited, then in force on every replica."""

    async def change_limits(
        self,
        account: str,
        limits: Mapping[str, Any] | None,
        *,
        action: str,
        actor: str,
        reason: str,
        principal: str | None,
        details: Mapping[str, Any],
    ) -> None:
        """Record the change in the audit log and use ``limits`` (the admin API's limits
        shape; ``None``: the configured ones) for ``account`` everywhere."""
        ...


class FleetStatus(Protocol):
    """What ``/readyz`` shows of fleet mode."""

    @property
    def answers(self) -> bool:
        """False for a refresher-only process (no decisions, no account state)."""
        ...

    def ready(self) -> bool: ...

    def readiness(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class SharedRateAnswer:
    """The shared counter's answer for one order: admitted (and counted) or not, with the
    counts it saw; ``unavailable`` when the counter did not answer in time (deny)."""

    admitted: bool
    rate: OrderRate | None = None
    unavailable: str | None = None


class SharedOrderRate(Protocol):
    """An order-rate counter shared by every replica (fleet mode)."""

    async def admit(self, account: str, symbol: str | None, policy: Policy) -> SharedRateAnswer:
        """Count the order if every window it falls in has room; atomically."""
        ...
