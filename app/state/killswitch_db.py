"""The kill-switch database on disk: schema, change generation, and the checks made at open.

A guard that has ever opened its database must not start without the switches it held. At
open (see ``marker.py`` for the generation marker):

- the database file is missing, empty, lost a table, or sits at an older generation than
  the marker (e.g. its ``-wal`` file was lost after a crash): refused, with the file named
  and the way to proceed deliberately (``pretrade-guard reset-kill-switches``, audited);
- the file is not a database or fails SQLite's ``quick_check``: refused the same way;
- an engaged switch row does not hold what the guard wrote (``expires_at_ms='soon'``):
  refused, naming the row and the column, instead of failing every decision later.

``reset_database`` is that deliberate way out: it keeps the old files aside (renamed, never
deleted), creates an empty database and records who reset it and why in its audit log.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.domain import KillSwitch, KillSwitchMode, KillSwitchScope
from app.errors import DataError
from app.state.marker import MARKER_NAME, Marker, read_marker, write_marker

#: File name of the database inside the configured data directory.
DB_NAME = "pretrade-guard.sqlite3"
#: 2: the ``guard_meta`` table (change generation) beside the marker file.
SCHEMA_VERSION = 2
_TABLES = ("kill_switches", "audit", "guard_meta")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kill_switches (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    mode TEXT NOT NULL,
    account TEXT,
    symbol TEXT,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER,
    ended_at_ms INTEGER,
    ended_by TEXT,
    end_reason TEXT
);
CREATE INDEX IF NOT EXISTS kill_switches_active ON kill_switches (ended_at_ms);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    principal TEXT,
    account TEXT,
    symbol TEXT,
    target TEXT,
    reason TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS guard_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO guard_meta (key, value) VALUES ('generation', 0);
"""
SELECT_ENGAGED = (
    "SELECT id, scope, mode, account, symbol, actor, reason, created_at_ms, expires_at_ms "
    "FROM kill_switches WHERE ended_at_ms IS NULL"
)
_BUMP = "UPDATE guard_meta SET value = value + 1 WHERE key = 'generation' RETURNING value"
_GENERATION = "SELECT value FROM guard_meta WHERE key = 'generation'"
RESET_COMMAND = "pretrade-guard reset-kill-switches --actor NAME --reason WHY"


@dataclass(frozen=True, slots=True)
class Opened:
    """An open, checked database: the connection, its generation and its engaged switches."""

    db: sqlite3.Connection
    generation: int
    active: list[KillSwitch]


def paths(data_dir: Path) -> tuple[Path, Path]:
    """The database file and its marker file in ``data_dir``."""
    return data_dir / DB_NAME, data_dir / MARKER_NAME


def open_database(data_dir: Path) -> Opened:
    """Create or open the database, check it against the marker, load the engaged switches.

    Raises ``DataError`` (a message for the operator) when switches may have been lost.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path, marker_path = paths(data_dir)
    marker = read_marker(marker_path)
    _refuse_missing(path, marker)
    # Autocommit mode with explicit BEGIN/COMMIT; one connection, used one call at a time,
    # from whichever worker thread runs it.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        generation, active = _checked(db, path, marker, create=True)
        write_marker(marker_path, Marker(generation, len(active)))
    except BaseException:
        db.close()
        raise
    return Opened(db, generation, active)


def inspect_database(data_dir: Path) -> DataError | None:
    """The problem ``open_database`` would refuse with, without changing any file."""
    path, marker_path = paths(data_dir)
    try:
        marker = read_marker(marker_path)
        _refuse_missing(path, marker)
        if not path.exists():
            return None
        db = sqlite3.connect(path)  # exists: connect creates nothing but -wal/-shm
        try:
            _checked(db, path, marker, create=False)
        finally:
            db.close()
    except DataError as exc:
        return exc
    return None


def _refuse_missing(path: Path, marker: Marker | None) -> None:
    if marker is not None and not path.exists():
        raise _lost(path, marker, "is missing")


def _checked(
    db: sqlite3.Connection, path: Path, marker: Marker | None, *, create: bool
) -> tuple[int, list[KillSwitch]]:
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise DataError(
                f"{path} has schema version {version}; this guard knows {SCHEMA_VERSION} "
                "(written by a newer guard?)"
            )
        if create:
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit, so a committed change survives a
            # power loss as well as a process crash.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
        tables = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if marker is not None and (missing := [t for t in _TABLES if t not in tables]):
            what = "is empty" if not tables else f"has lost its table(s) {', '.join(missing)}"
            raise _lost(path, marker, what)
        problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise _damaged(path, "; ".join(str(p) for p in problems[:3]))
        if create:
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        generation = _generation(db) if create or "guard_meta" in tables else 0
        active = load_active(db, path) if create or "kill_switches" in tables else []
    except sqlite3.OperationalError:
        raise  # locked, read-only, I/O error: not a verdict on the file's contents
    except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
        raise _damaged(path, str(exc)) from None
    if marker is not None and generation < marker.generation:
        raise _lost(
            path,
            marker,
            f"is at change generation {generation}, behind its marker (committed changes "
            "are missing: was its -wal file lost, or an older copy restored?)",
        )
    if marker is not None and generation == marker.generation and len(active) != marker.engaged:
        raise _lost(
            path,
            marker,
            f"holds {len(active)} engaged kill switch(es) at the marker's generation "
            "(edited by hand?)",
        )
    return generation, active


def _generation(db: sqlite3.Connection) -> int:
    row = db.execute(_GENERATION).fetchone()
    if row is None or type(row[0]) is not int:
        raise sqlite3.DatabaseError("guard_meta holds no valid generation")
    return int(row[0])


def bump_generation(db: sqlite3.Connection) -> int:
    """Count one more committed change (inside the change's own transaction)."""
    return int(db.execute(_BUMP).fetchone()[0])


def _hint(path: Path) -> str:
    return (
        f"\n  Restore {path.name} (with its -wal file) from a backup, or start deliberately with "
        "no kill switches (the old files are kept aside; the reset is audited):\n"
        f"    {RESET_COMMAND}"
    )


def _lost(path: Path, marker: Marker, what: str) -> DataError:
    return DataError(
        f"the kill-switch database {path} {what}, but its marker {path.parent / MARKER_NAME} "
        f"records change generation {marker.generation} with {marker.engaged} engaged kill "
        "switch(es). Engaged kill switches may have been lost; the guard does not start "
        f"without them.{_hint(path)}"
    )


def _damaged(path: Path, detail: str) -> DataError:
    return DataError(
        f"the kill-switch database {path} is damaged ({detail}); engaged kill switches "
        f"cannot be read, so the guard does not start.{_hint(path)}"
    )


# --------------------------------------------------------------------------- rows


def load_active(db: sqlite3.Connection, path: Path) -> list[KillSwitch]:
    """Every engaged switch, each row checked; ``DataError`` naming the first bad row."""
    return [switch_from_row(row, path) for row in db.execute(SELECT_ENGAGED).fetchall()]


def switch_from_row(row: Iterable[Any], path: Path) -> KillSwitch:
    """A switch from its row (``SELECT_ENGAGED`` order), refusing values the guard never
    writes: a row that fails here would otherwise fail every decision of its account."""
    sid, scope, mode, account, symbol, actor, reason, created, expires = row

    def bad(column: str, value: object, expected: str) -> DataError:
        return DataError(
            f"the kill-switch database {path} holds an engaged switch that cannot be applied: "
            f"row id={sid!r} has {column}={value!r} (expected {expected}). Stop the guard and "
            "correct or end that row (sqlite3), or start with no kill switches:\n"
            f"    {RESET_COMMAND}"
        )

    if type(sid) is not str or not sid:
        raise bad("id", sid, "a non-empty text")
    if scope not in set(KillSwitchScope):
        raise bad("scope", scope, f"one of {', '.join(KillSwitchScope)}")
    if mode not in set(KillSwitchMode):
        raise bad("mode", mode, f"one of {', '.join(KillSwitchMode)}")
    for column, value in (("actor", actor), ("reason", reason)):
        if type(value) is not str or not value:
            raise bad(column, value, "a non-empty text")
    if type(created) is not int or created <= 0:
        raise bad("created_at_ms", created, "epoch milliseconds, an integer")
    if expires is not None and (type(expires) is not int or expires <= 0):
        raise bad("expires_at_ms", expires, "epoch milliseconds, an integer, or NULL")
    scope = KillSwitchScope(scope)
    if scope is KillSwitchScope.GLOBAL:
        if account is not None:
            raise bad("account", account, "NULL for a global switch")
    elif type(account) is not str or not account:
        raise bad("account", account, "an account name")
    if scope is KillSwitchScope.SYMBOL:
        if type(symbol) is not str or not symbol:
            raise bad("symbol", symbol, "a symbol")
    elif symbol is not None:
        raise bad("symbol", symbol, "NULL unless the scope is symbol")
    return KillSwitch(
        id=sid,
        scope=scope,
        mode=KillSwitchMode(mode),
        actor=actor,
        reason=reason,
        created_at_ms=created,
        account=account,
        symbol=symbol,
        expires_at_ms=expires,
    )


# --------------------------------------------------------------------------- reset


@dataclass(frozen=True, slots=True)
class ResetResult:
    problem: str
    kept_aside: tuple[Path, ...]
    audit_id: int


def reset_database(data_dir: Path, *, actor: str, reason: str, now_ms: int) -> ResetResult | None:
    """Start over with no kill switches, deliberately: only when ``open_database`` would
    refuse (``None`` and nothing touched when the database is fine). The old database, its
    ``-wal``/``-shm`` files and the marker are renamed with a ``.broken-<time>`` suffix, and
    the new database's audit log starts with a ``kill_switches.reset`` entry."""
    problem = inspect_database(data_dir)
    if problem is None:
        return None
    path, marker_path = paths(data_dir)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_ms / 1000))
    kept: list[Path] = []
    for old in (
        path,
        path.with_name(f"{DB_NAME}-wal"),
        path.with_name(f"{DB_NAME}-shm"),
        marker_path,
    ):
        if old.exists():
            target = old.with_name(f"{old.name}.broken-{stamp}")
            os.replace(old, target)
            kept.append(target)
    opened = open_database(data_dir)
    try:
        details = {"problem": str(problem), "kept_aside": [str(p) for p in kept]}
        opened.db.execute("BEGIN IMMEDIATE")
        cursor = opened.db.execute(
            "INSERT INTO audit (time_ms, action, actor, principal, reason, details) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (now_ms, "kill_switches.reset", actor, "cli", reason, json.dumps(details)),
        )
        generation = bump_generation(opened.db)
        opened.db.execute("COMMIT")
        write_marker(marker_path, Marker(generation, 0))
    finally:
        opened.db.close()
    return ResetResult(str(problem), tuple(kept), int(cursor.lastrowid or 0))
