"""The state store: whole-state replacement, failures keep the last good data ageing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.domain import AccountSnapshot, AccountState, AccountStatus, Instant
from app.state.store import StateStore, UnknownAccount

STATUS = AccountStatus(trading_status="NORMAL", reason="", can_trade=True)
SNAPSHOT = AccountSnapshot(
    available_balance=Decimal(100),
    margin_balance=Decimal(100),
    maintenance_margin=Decimal(0),
    positions=(),
)
NOW = Instant(wall_ms=1_763_712_000_000, mono=50.0)


def test_new_accounts_have_no_data() -> None:
    store = StateStore([("a", "generic-v2")])
    state = store.get("a")
    assert state is not None
    assert (state.status, state.snapshot, state.version) == (None, None, 0)
    assert store.get("nope") is None


def test_a_failure_keeps_the_last_good_data_and_counts() -> None:
    store = StateStore([("a", "generic-v2")])
    store.put_status("a", STATUS, NOW)
    store.put_failure("a", "server_error", "status: HTTP 503")
    state = store.put_failure("a", "timeout", "status: timed out")
    assert state.status is not None
    assert state.status.value is STATUS
    assert state.status.received_mono == NOW.mono  # keeps ageing from its receipt
    assert (state.consecutive_failures, state.last_error_kind) == (2, "timeout")


def test_success_clears_the_error() -> None:
    store = StateStore([("a", "generic-v2")])
    store.put_failure("a", "auth", "status: rejected")
    state = store.put_snapshot("a", SNAPSHOT, NOW)
    assert (state.last_error, state.consecutive_failures) == (None, 0)


def test_a_success_of_one_kind_keeps_the_other_kinds_error() -> None:
    # The status endpoint keeps failing while snapshots succeed: the status's error, kind and
    # streak must survive every good snapshot (they were cleared, and /readyz said all fine).
    store = StateStore([("a", "generic-v2")])
    store.put_failure("a", "server_error", "status: HTTP 503", refresh="status")
    store.put_snapshot("a", SNAPSHOT, NOW)
    store.put_failure("a", "server_error", "status: HTTP 503", refresh="status")
    state = store.put_snapshot("a", SNAPSHOT, NOW)
    assert state.status_error is not None
    assert state.snapshot_error is None
    assert (state.status_error.kind, state.status_error.consecutive_failures) == (
        "server_error",
        2,
    )
    assert (state.last_error, state.last_error_kind, state.consecutive_failures) == (
        "status: HTTP 503",
        "server_error",
        2,
    )
    assert state.error_message("status") == "status: HTTP 503"
    # The snapshot is fine: if it ages anyway, the failing status is what holds the poller.
    assert state.error_message("snapshot") == "status: HTTP 503"
    state = store.put_status("a", STATUS, NOW)
    assert (state.status_error, state.last_error, state.consecutive_failures) == (None, None, 0)


def test_each_kind_counts_its_own_streak() -> None:
    store = StateStore([("a", "generic-v2")])
    store.put_failure("a", "timeout", "status: timed out", refresh="status")
    store.put_failure("a", "malformed", "snapshot: bad", refresh="snapshot")
    state = store.put_failure("a", "malformed", "snapshot: bad", refresh="snapshot")
    assert state.status_error is not None
    assert state.snapshot_error is not None
    assert state.status_error.consecutive_failures == 1
    assert state.snapshot_error.consecutive_failures == 2
    assert (state.last_error_kind, state.consecutive_failures) == ("malformed", 2)
    state = store.put_snapshot("a", SNAPSHOT, NOW)
    assert (state.last_error, state.last_error_kind, state.consecutive_failures) == (
        "status: timed out",
        "timeout",
        1,
    )


def test_listeners_see_old_and_new_state() -> None:
    store = StateStore([("a", "generic-v2")])
    seen: list[tuple[AccountState, AccountState]] = []
    store.subscribe(lambda old, new: seen.append((old, new)))
    store.put_status("a", STATUS, NOW)
    assert len(seen) == 1
    old, new = seen[0]
    assert old.status is None
    assert new.status is not None
    assert new.version == old.version + 1


def test_updates_to_unknown_accounts_fail_loudly() -> None:
    store = StateStore([("a", "generic-v2")])
    with pytest.raises(UnknownAccount):
        store.put_status("b", STATUS, NOW)
