"""The kill-switch store: committed before it answers, reloaded after a restart, audited."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from pathlib import Path

import pytest

from app.domain import KillSwitchMode, KillSwitchScope
from app.errors import DataError
from app.state.killswitch import DB_NAME, SYSTEM_ACTOR, KillSwitchChange, KillSwitchStore
from app.state.killswitch_db import inspect_database, reset_database
from app.state.marker import MARKER_NAME, Marker, read_marker, write_marker

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
    with pytest.raises(DataError, match="schema version 99"):
        await store.open()


# --------------------------------------------------------------------------- integrity


async def _held_one_switch(data: Path, clock: Clock) -> str:
    first = KillSwitchStore(data, clock=clock)
    await first.open()
    switch_id = await engage_account_halt(first)
    await first.close()
    return switch_id


async def test_every_change_moves_the_marker_up(tmp_path: Path, clock: Clock) -> None:
    store = KillSwitchStore(tmp_path, clock=clock)
    await store.open()
    try:
        assert counted(tmp_path) == (0, 0)
        switch_id = await engage_account_halt(store)
        assert counted(tmp_path) == (1, 1)
        await store.record("limits.update", actor="carol", reason="r")
        await store.release(switch_id, actor="bob", reason="ok")
        assert counted(tmp_path) == (3, 0)
    finally:
        await store.close()


def counted(data: Path) -> tuple[int, int]:
    """(generation, engaged switches) as the marker file records them."""
    marker = read_marker(data / MARKER_NAME)
    assert marker is not None
    return marker.generation, marker.engaged


def _rewind(data: Path) -> None:
    """An older copy of the database (its last change undone behind the guard's back)."""
    with closing(sqlite3.connect(data / DB_NAME)) as db:
        db.execute("UPDATE guard_meta SET value = value - 1")
        db.execute("UPDATE kill_switches SET ended_at_ms = 1")
        db.commit()


def _hand_edit(data: Path) -> None:
    with closing(sqlite3.connect(data / DB_NAME)) as db:
        db.execute("DELETE FROM kill_switches")
        db.commit()


def _garbage(data: Path) -> None:
    (data / DB_NAME).write_bytes(b"this is not a database" * 300)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(lambda d: (d / DB_NAME).unlink(), "is missing", id="deleted"),
        pytest.param(lambda d: (d / DB_NAME).write_bytes(b""), "is empty", id="truncated"),
        pytest.param(_rewind, "behind its marker", id="older-copy"),
        pytest.param(_hand_edit, "holds 0 engaged kill switch(es)", id="rows-deleted"),
        pytest.param(_garbage, "is damaged", id="not-a-database"),
    ],
)
async def test_a_database_that_lost_switches_is_refused(
    tmp_path: Path, clock: Clock, damage: Callable[[Path], object], message: str
) -> None:
    await _held_one_switch(tmp_path, clock)
    damage(tmp_path)
    store = KillSwitchStore(tmp_path, clock=clock)
    with pytest.raises(DataError) as refused:
        await store.open()
    assert message in str(refused.value)
    assert str(tmp_path / DB_NAME) in str(refused.value)
    assert inspect_database(tmp_path) is not None


async def test_a_database_ahead_of_its_marker_is_accepted(tmp_path: Path, clock: Clock) -> None:
    """A crash between the commit and the marker write loses nothing: the start goes on."""
    await _held_one_switch(tmp_path, clock)
    write_marker(tmp_path / MARKER_NAME, Marker(0, 0))
    store = KillSwitchStore(tmp_path, clock=clock)
    await store.open()
    try:
        assert len(store.active()) == 1
        assert counted(tmp_path) == (1, 1)
    finally:
        await store.close()


async def test_a_damaged_marker_is_refused(tmp_path: Path, clock: Clock) -> None:
    await _held_one_switch(tmp_path, clock)
    (tmp_path / MARKER_NAME).write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match=r"marker file .* is damaged"):
        await KillSwitchStore(tmp_path, clock=clock).open()


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        pytest.param("expires_at_ms", "soon", "expires_at_ms='soon'", id="text-expiry"),
        pytest.param("created_at_ms", 1.5, "created_at_ms=1.5", id="float-created"),
        pytest.param("mode", "STOP", "mode='STOP'", id="unknown-mode"),
        pytest.param("scope", "galaxy", "scope='galaxy'", id="unknown-scope"),
        pytest.param("account", None, "account=None", id="account-scope-without-account"),
        pytest.param("symbol", "BTCUSDT", "symbol='BTCUSDT'", id="symbol-on-account-scope"),
    ],
)
async def test_a_row_it_cannot_apply_is_refused_by_name(
    tmp_path: Path, clock: Clock, column: str, value: object, shown: str
) -> None:
    switch_id = await _held_one_switch(tmp_path, clock)
    with closing(sqlite3.connect(tmp_path / DB_NAME)) as db:
        # Literal column names from the parameter list above, not user input.
        db.execute(f"UPDATE kill_switches SET {column} = ?", (value,))  # noqa: S608
        db.commit()
    with pytest.raises(DataError) as refused:
        await KillSwitchStore(tmp_path, clock=clock).open()
    assert f"row id='{switch_id}' has {shown}" in str(refused.value)


async def test_reset_keeps_the_old_files_and_audits(tmp_path: Path, clock: Clock) -> None:
    await _held_one_switch(tmp_path, clock)
    assert reset_database(tmp_path, actor="bob", reason="r", now_ms=T0) is None  # intact
    (tmp_path / DB_NAME).unlink()

    done = reset_database(tmp_path, actor="bob", reason="volume lost", now_ms=T0)

    assert done is not None
    assert "is missing" in done.problem
    assert [p.name for p in done.kept_aside] == [f"{MARKER_NAME}.broken-20251121T080000Z"]
    store = KillSwitchStore(tmp_path, clock=clock)
    await store.open()
    try:
        assert store.active() == ()
        [entry] = await store.audit()
        assert (entry.action, entry.actor, entry.reason) == (
            "kill_switches.reset",
            "bob",
            "volume lost",
        )
    finally:
        await store.close()


async def test_a_database_without_a_marker_is_adopted(tmp_path: Path, clock: Clock) -> None:
    """A database from before the marker existed (or a lost marker): nothing to compare with,
    so the switches it holds load and a marker is written."""
    switch_id = await _held_one_switch(tmp_path, clock)
    (tmp_path / MARKER_NAME).unlink()
    store = KillSwitchStore(tmp_path, clock=clock)
    await store.open()
    try:
        assert [s.id for s in store.active()] == [switch_id]
        assert counted(tmp_path) == (1, 1)
    finally:
        await store.close()
