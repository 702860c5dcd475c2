"""The kill-switch store: committed before it answers, reloaded after a restart, audited."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from app.domain import KillSwitchMode, KillSwitchScope
from app.state.killswitch import DB_NAME, SYSTEM_ACTOR, KillSwitchChange, KillSwitchStore

T0 = 1_763_712_000_000


class Clock:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[KillSwitchStore]:
    opened = KillSwitchStore(tmp_path / "data", clock=clock)
    await opened.open()
    yield opened
    await opened.close()


async def engage_account_halt(
    store: KillSwitchStore, account: str = "acc-1", **kwargs: object
) -> str:
    switch = await store.engage(
        scope=KillSwitchScope.ACCOUNT,
        mode=KillSwitchMode.HALT,
        actor="alice",
        reason="exchange incident",
        account=account,
        principal="admin-token",
        **kwargs,  # type: ignore[arg-type]
    )
    return switch.id


def rows_seen_by_another_connection(path: Path) -> list[tuple[str, str, str | None]]:
    with closing(sqlite3.connect(path)) as other:
        return other.execute(
            "SELECT id, mode, account FROM kill_switches WHERE ended_at_ms IS NULL"
        ).fetchall()


async def test_open_creates_the_data_directory_in_wal_mode(tmp_path: Path) -> None:
    fresh = KillSwitchStore(tmp_path / "nested" / "dir")
    await fresh.open()
    try:
        assert (tmp_path / "nested" / "dir" / DB_NAME).is_file()
        with closing(sqlite3.connect(fresh.path)) as other:
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await fresh.close()


async def test_an_acknowledged_engage_is_already_on_disk(store: KillSwitchStore) -> None:
    switch_id = await engage_account_halt(store)
    # No close, no flush: another connection (another process would do the same) sees it.
    assert rows_seen_by_another_connection(store.path) == [(switch_id, "HALT", "acc-1")]


async def test_engaged_switches_survive_a_restart(tmp_path: Path, clock: Clock) -> None:
    first = KillSwitchStore(tmp_path, clock=clock)
    await first.open()
    switch_id = await engage_account_halt(first)
    await first.close()

    second = KillSwitchStore(tmp_path, clock=clock)
    await second.open()
    try:
        [reloaded] = second.active()
        assert (reloaded.id, reloaded.mode, reloaded.actor) == (
            switch_id,
            KillSwitchMode.HALT,
            "alice",
        )
        assert second.for_account("acc-1") == (reloaded,)
    finally:
        await second.close()


async def test_snapshot_per_account_includes_global_switches(store: KillSwitchStore) -> None:
    glob = await store.engage(
        scope=KillSwitchScope.GLOBAL, mode=KillSwitchMode.REDUCE_ONLY, actor="ops", reason="x"
    )
    own_id = await engage_account_halt(store, "acc-1")
    assert [s.id for s in store.for_account("acc-1")] == [glob.id, own_id]
    assert store.for_account("acc-2") == (glob,)


async def test_release_ends_the_switch_and_is_audited(store: KillSwitchStore) -> None:
    switch_id = await engage_account_halt(store)
    change = await store.release(switch_id, actor="bob", reason="resolved", principal="tok")

    assert change is not None
    assert (change.kind, change.actor, change.reason) == ("released", "bob", "resolved")
    assert store.active() == ()
    assert store.for_account("acc-1") == ()
    assert rows_seen_by_another_connection(store.path) == []
    assert await store.release(switch_id, actor="bob", reason="again") is None

    entries = await store.audit()
    assert [(e.action, e.actor, e.reason, e.principal, e.target) for e in entries] == [
        ("kill_switch.release", "bob", "resolved", "tok", switch_id),
        ("kill_switch.engage", "alice", "exchange incident", "admin-token", switch_id),
    ]
    assert entries[1].details["mode"] == "HALT"
    assert entries[1].account == "acc-1"


async def test_expiry_is_swept_once_due_and_audited(store: KillSwitchStore, clock: Clock) -> None:
    seen: list[KillSwitchChange] = []
    store.subscribe(seen.append)
    switch_id = await engage_account_halt(store, expires_at_ms=T0 + 5_000)

    assert not store.due_for_expiry(T0 + 4_999)
    assert store.due_for_expiry(T0 + 5_000)
    clock.ms = T0 + 4_999
    assert await store.expire_due() == []

    clock.ms = T0 + 5_000
    [expired] = await store.expire_due()

    assert expired.id == switch_id
    assert store.active() == ()
    assert not store.due_for_expiry(T0 + 10_000)
    assert [(c.kind, c.actor) for c in seen] == [("engaged", "alice"), ("expired", SYSTEM_ACTOR)]
    assert (await store.audit(1))[0].action == "kill_switch.expire"


async def test_listeners_hear_each_committed_change(store: KillSwitchStore) -> None:
    seen: list[KillSwitchChange] = []
    store.subscribe(seen.append)
    switch_id = await engage_account_halt(store)
    await store.release(switch_id, actor="bob", reason="ok")
    assert [(c.kind, c.switch.id) for c in seen] == [
        ("engaged", switch_id),
        ("released", switch_id),
    ]


async def test_other_actions_are_audited_and_paged(store: KillSwitchStore) -> None:
    for n in range(5):
        await store.record(
            "limits.update",
            actor="carol",
            reason=f"change {n}",
            account="acc-1",
            details={"after": {"max_order_notional": str(n)}},
        )
    newest = await store.audit(2)
    assert [e.reason for e in newest] == ["change 4", "change 3"]
    older = await store.audit(2, before_id=newest[-1].id)
    assert [e.reason for e in older] == ["change 2", "change 1"]
    assert older[0].details == {"after": {"max_order_notional": "2"}}


async def test_a_database_from_a_newer_guard_is_refused(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / DB_NAME)) as db:
        db.execute("PRAGMA user_version=99")
    store = KillSwitchStore(tmp_path)
    with pytest.raises(RuntimeError, match="schema version 99"):
        await store.open()
