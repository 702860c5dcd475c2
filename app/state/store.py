"""The store of the latest state of every guarded account.

Each account's state is an immutable ``AccountState`` replaced whole on every change, so a
reader on the decision path gets a consistent view without locks (the guard runs on one event
loop; a dict assignment is atomic there). Listeners hear about every replacement; they must be
cheap and must not raise (the refresher's metrics and the event channel use this).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from app.domain import (
    AccountSnapshot,
    AccountState,
    AccountStatus,
    Instant,
    Observed,
    RefreshError,
)

Listener = Callable[[AccountState, AccountState], None]


class UnknownAccount(KeyError):
    """The account is not configured."""


class StateStore:
    """Latest ``AccountState`` per configured account."""

    def __init__(self, accounts: Iterable[tuple[str, str]]) -> None:
        """Start with one empty state per ``(account, exchange)``: no data yet."""
        self._states: dict[str, AccountState] = {
            name: AccountState(account=name, exchange=exchange) for name, exchange in accounts
        }
        self._listeners: list[Listener] = []

    def get(self, account: str) -> AccountState | None:
        """The account's latest state, or ``None`` if the account is not configured."""
        return self._states.get(account)

    def accounts(self) -> list[str]:
        """Configured account names, in configuration order."""
        return list(self._states)

    def all(self) -> list[AccountState]:
        return list(self._states.values())

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(old, new)`` after every change of any account."""
        self._listeners.append(listener)

    def put_status(self, account: str, status: AccountStatus, now: Instant) -> AccountState:
        """Record a successful status refresh; clears the status's error (not the
        snapshot's)."""
        other = self._require(account).snapshot_error
        return self._replace(
            account,
            status=Observed(status, now.mono, now.wall_ms),
            status_error=None,
            **_summary(other),
        )

    def put_snapshot(self, account: str, snapshot: AccountSnapshot, now: Instant) -> AccountState:
        """Record a successful snapshot refresh; clears the snapshot's error (not the
        status's)."""
        other = self._require(account).status_error
        return self._replace(
            account,
            snapshot=Observed(snapshot, now.mono, now.wall_ms),
            snapshot_error=None,
            **_summary(other),
        )

    def put_failure(
        self, account: str, kind: str, message: str, *, refresh: str | None = None
    ) -> AccountState:
        """Record a failed refresh of ``refresh`` ("status" or "snapshot"; ``None``: not
        attributed to one) with error ``kind``. The last good data is kept and keeps ageing."""
        current = self._require(account)
        if refresh not in ("status", "snapshot"):
            return self._replace(
                account,
                last_error=message,
                last_error_kind=kind,
                consecutive_failures=current.consecutive_failures + 1,
            )
        field = f"{refresh}_error"
        own: RefreshError | None = getattr(current, field)
        other = current.snapshot_error if refresh == "status" else current.status_error
        streak = (own.consecutive_failures if own else 0) + 1
        error = RefreshError(message, kind, streak)
        longest = max(streak, other.consecutive_failures if other else 0)
        return self._replace(
            account,
            last_error=message,
            last_error_kind=kind,
            consecutive_failures=longest,
            **{field: error},
        )

    def put_all(
        self,
        account: str,
        *,
        status: Observed[AccountStatus] | None,
        snapshot: Observed[AccountSnapshot] | None,
        last_error: str | None,
        last_error_kind: str | None,
        consecutive_failures: int,
        status_error: RefreshError | None = None,
        snapshot_error: RefreshError | None = None,
    ) -> AccountState:
        """Replace the account's state whole (fleet mode: a state published by the refresher
        that polls the account, applied by every api process)."""
        return self._replace(
            account,
            status=status,
            snapshot=snapshot,
            last_error=last_error,
            last_error_kind=last_error_kind,
            consecutive_failures=consecutive_failures,
            status_error=status_error,
            snapshot_error=snapshot_error,
        )

    def _require(self, account: str) -> AccountState:
        try:
            return self._states[account]
        except KeyError:
            raise UnknownAccount(account) from None

    def _replace(self, account: str, **changes: object) -> AccountState:
        old = self._require(account)
        new = dataclasses.replace(old, version=old.version + 1, **changes)  # type: ignore[arg-type]
        self._states[account] = new
        for listener in self._listeners:
            listener(old, new)
        return new


def _summary(still_failing: RefreshError | None) -> dict[str, object]:
    """The state's last-error fields once only ``still_failing`` (or nothing) is failing."""
    if still_failing is None:
        return {"last_error": None, "last_error_kind": None, "consecutive_failures": 0}
    return {
        "last_error": still_failing.message,
        "last_error_kind": still_failing.kind,
        "consecutive_failures": still_failing.consecutive_failures,
    }
