"""Gates that run before any check: without fresh data no decision can be trusted.

Both gates fail closed and short-circuit: when the cache has nothing, or only old data,
the answer is a deny that says so, and no other reason is reported (checks run on stale
data would explain a state that may no longer exist).
"""

from __future__ import annotations

import math

from app.domain import (
    AccountSnapshot,
    AccountState,
    AccountStatus,
    Instant,
    Observed,
    Policy,
    Reason,
    ReasonCode,
)


def _with_last_error(message: str, last_error: str | None) -> str:
    # The last refresh error usually explains why the data is missing or old.
    return f"{message}; last error: {last_error}" if last_error else message


def missing_data(state: AccountState | None, account: str) -> Reason:
    """The ``NO_DATA`` reason for a state that lacks a status or a snapshot (or is absent)."""
    if state is None:
        return Reason(ReasonCode.NO_DATA, f"no state is cached for account {account!r}")
    if state.status is None and state.snapshot is None:
        missing = "no successful status or snapshot refresh yet"
    elif state.status is None:
        missing = "no successful status refresh yet"
    else:
        missing = "no successful snapshot refresh yet"
    if state.status is None and state.snapshot is None:
        last_error = state.last_error
    else:
        last_error = state.error_message("status" if state.status is None else "snapshot")
    return Reason(ReasonCode.NO_DATA, _with_last_error(missing, last_error))


def _stale(
    what: str, received_mono: float, max_age_s: float, last_error: str | None, now: Instant
) -> Reason | None:
    age_s = now.mono - received_mono
    if age_s <= max_age_s:
        return None
    # Round the shown age up so it never reads as equal to the limit while being over it.
    age_ms = math.ceil(age_s * 1000)
    limit_ms = round(max_age_s * 1000)
    message = f"account {what} is {age_ms} ms old (max {limit_ms} ms)"
    return Reason(
        ReasonCode.STALE_DATA,
        _with_last_error(message, last_error),
        limit=str(limit_ms),
        observed=str(age_ms),
    )


def stale_data(
    status: Observed[AccountStatus],
    snapshot: Observed[AccountSnapshot],
    state: AccountState,
    policy: Policy,
    now: Instant,
) -> tuple[Reason, ...]:
    """One ``STALE_DATA`` reason per part (status, snapshot) older than the policy allows,
    each with the last error of its own kind of refresh."""
    status_reason = _stale(
        "status",
        status.received_mono,
        policy.max_status_age_s,
        state.error_message("status"),
        now,
    )
    snapshot_reason = _stale(
        "snapshot",
        snapshot.received_mono,
        policy.max_snapshot_age_s,
        state.error_message("snapshot"),
        now,
    )
    if status_reason is None:
        return () if snapshot_reason is None else (snapshot_reason,)
    return (status_reason,) if snapshot_reason is None else (status_reason, snapshot_reason)
