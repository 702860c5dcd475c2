"""Kill switches and the operator audit log, persisted in SQLite (stdlib ``sqlite3``).

Durability: WAL journal with ``synchronous=FULL``, and every change is committed (switch row
and audit row in one transaction) before the coroutine returns, so the API acknowledges only
what is on disk; a crash after the answer cannot lose it.

Reads on the decision path never touch SQLite: they come from an in-memory, immutable
snapshot (tuples per account) that is rebuilt after every change.

Blocking: ``sqlite3`` calls block, and an fsync on commit can take milliseconds. They run in a
worker thread (``asyncio.to_thread``) so a slow disk never stalls decisions or pollers; an
``asyncio.Lock`` keeps them one at a time, in order (admin writes are rare, so a queue of
one costs nothing and the snapshot is always rebuilt from the latest commit).

Integrity: every change also bumps a generation counter and then rewrites a marker file beside
the database (``killswitch_db.py``, ``marker.py``); ``open()`` refuses a database that is
missing, damaged, behind its marker, or holds a row it cannot apply.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.domain import KillSwitch, KillSwitchMode, KillSwitchScope
from app.state.killswitch_db import (
    DB_NAME,
    SELECT_ENGAGED,
    bump_generation,
    load_active,
    open_database,
    switch_from_row,
)
from app.state.marker import MARKER_NAME, Marker, write_marker

__all__ = ["DB_NAME", "SYSTEM_ACTOR", "AuditEntry", "KillSwitchChange", "KillSwitchStore"]

log = logging.getLogger(__name__)

# Literal statements (no string building): the only variables are bound parameters.
_INSERT_SWITCH = (
    "INSERT INTO kill_switches (id, scope, mode, account, symbol, actor, reason, "
    "created_at_ms, expires_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_ENGAGED_BY_ID = SELECT_ENGAGED + " AND id = ?"
#: Actor recorded when the guard itself ends a switch at its expiry.
SYSTEM_ACTOR = "pretrade-guard"

ChangeKind = Literal["engaged", "released", "expired"]


def wall_ms() -> int:
    """Wall-clock epoch milliseconds (switch times must survive a restart)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class KillSwitchChange:
    """One switch engaged, released by an operator, or ended by its expiry."""

    kind: ChangeKind
    switch: KillSwitch
    actor: str
    reason: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what, when and why. ``principal`` is the API token's name; ``actor`` the
    person or system the operator named."""

    id: int
    time_ms: int
    action: str
    actor: str
    reason: str
    principal: str | None = None
    account: str | None = None
    symbol: str | None = None
    target: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


Listener = Callable[[KillSwitchChange], None]


def switch_dict(switch: KillSwitch) -> dict[str, Any]:
    """The JSON shape of a switch (API answers, audit details, events)."""
    return {
        "id": switch.id,
        "scope": switch.scope.value,
        "account": switch.account,
        "symbol": switch.symbol,
        "mode": switch.mode.value,
        "actor": switch.actor,
        "reason": switch.reason,
        "created_at_ms": switch.created_at_ms,
        "expires_at_ms": switch.expires_at_ms,
    }


class KillSwitchStore:
    """Engaged kill switches (persisted) with an in-memory snapshot for the decision path."""

    def __init__(self, data_dir: Path, *, clock: Callable[[], int] = wall_ms) -> None:
        """No I/O here: ``open()`` (in the app's lifespan) creates the directory and file."""
        self.data_dir = data_dir
        self.path = data_dir / DB_NAME
        self._marker_path = data_dir / MARKER_NAME
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._listeners: list[Listener] = []
        self._active: tuple[KillSwitch, ...] = ()
        self._global: tuple[KillSwitch, ...] = ()
        self._by_account: dict[str, tuple[KillSwitch, ...]] = {}
        self._next_expiry_ms: int | None = None
        self._generation = 0

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Create the data directory and schema if needed and load the engaged switches."""
        async with self._lock:
            active = await asyncio.to_thread(self._open_sync)
            self._apply(active)

    def _open_sync(self) -> list[KillSwitch]:
        opened = open_database(self.data_dir)  # DataError when switches may have been lost
        self._db = opened.db
        self._generation = opened.generation
        return opened.active

    async def close(self) -> None:
        """Close the database (after the last write; the snapshot stays readable)."""
        async with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                await asyncio.to_thread(db.close)

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(change)`` after every committed change (on the event loop)."""
        self._listeners.append(listener)

    # ------------------------------------------------------------------ hot path (memory only)

    def for_account(self, account: str) -> tuple[KillSwitch, ...]:
        """Switches that may concern ``account``: global ones and the account's own.

        Expired ones may still be listed until the next sweep; the rules ignore them.
        """
        return self._by_account.get(account, self._global)

    def active(self) -> tuple[KillSwitch, ...]:
        """Every engaged switch (including any whose expiry passed since the last sweep)."""
        return self._active

    def due_for_expiry(self, now_ms: int) -> bool:
        """True when some switch's expiry has passed and ``expire_due`` has work to do."""
        return self._next_expiry_ms is not None and self._next_expiry_ms <= now_ms

    def _apply(self, active: Iterable[KillSwitch]) -> None:
        ordered = tuple(sorted(active, key=lambda s: (s.created_at_ms, s.id)))
        glob = tuple(s for s in ordered if s.scope is KillSwitchScope.GLOBAL)
        by_account: dict[str, list[KillSwitch]] = {}
        for switch in ordered:
            if switch.account is not None:
                by_account.setdefault(switch.account, list(glob)).append(switch)
        expiries = [s.expires_at_ms for s in ordered if s.expires_at_ms is not None]
        # Rebind whole objects: a reader on the loop sees the old or the new snapshot.
        self._by_account = {account: tuple(items) for account, items in by_account.items()}
        self._global = glob
        self._active = ordered
        self._next_expiry_ms = min(expiries) if expiries else None

    def _notify(self, changes: Iterable[KillSwitchChange]) -> None:
        for change in changes:
            for listener in self._listeners:
                listener(change)

    # ------------------------------------------------------------------ writes

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
    ) -> KillSwitch:
        """Engage a switch; returns once the switch and its audit row are committed."""
        switch = KillSwitch.new(
            scope=scope,
            mode=mode,
            actor=actor,
            reason=reason,
            created_at_ms=self._clock(),
            account=account,
            symbol=symbol,
            expires_at_ms=expires_at_ms,
        )
        async with self._lock:
            active = await asyncio.to_thread(self._engage_sync, switch, principal)
            self._apply(active)
        self._notify([KillSwitchChange("engaged", switch, actor, reason, switch.created_at_ms)])
        return switch

    def _engage_sync(self, switch: KillSwitch, principal: str | None) -> list[KillSwitch]:
        db = self._require()
        with self._transaction(db):
            db.execute(
                _INSERT_SWITCH,
                (
                    switch.id,
                    switch.scope.value,
                    switch.mode.value,
                    switch.account,
                    switch.symbol,
                    switch.actor,
                    switch.reason,
                    switch.created_at_ms,
                    switch.expires_at_ms,
                ),
            )
            _audit(
                db,
                switch.created_at_ms,
                "kill_switch.engage",
                switch.actor,
                switch.reason,
                principal,
                switch,
                switch_dict(switch),
            )
        return self._after_commit(db)

    async def release(
        self, switch_id: str, *, actor: str, reason: str, principal: str | None = None
    ) -> KillSwitchChange | None:
        """Release an engaged switch; ``None`` when no engaged switch has that id."""
        now = self._clock()
        async with self._lock:
            found, active = await asyncio.to_thread(
                self._end_sync, switch_id, now, actor, reason, principal, "kill_switch.release"
            )
            self._apply(active)
        if found is None:
            return None
        change = KillSwitchChange("released", found, actor, reason, now)
        self._notify([change])
        return change

    async def expire_due(self) -> list[KillSwitch]:
        """End every switch whose expiry has passed (audited as ``kill_switch.expire``)."""
        now = self._clock()
        due = [s for s in self._active if not s.active(now)]
        if not due:
            return []
        ended: list[KillSwitch] = []
        async with self._lock:
            for switch in due:
                found, active = await asyncio.to_thread(
                    self._end_sync,
                    switch.id,
                    now,
                    SYSTEM_ACTOR,
                    "expired",
                    None,
                    "kill_switch.expire",
                )
                self._apply(active)
                if found is not None:
                    ended.append(found)
        self._notify(KillSwitchChange("expired", s, SYSTEM_ACTOR, "expired", now) for s in ended)
        return ended

    def _end_sync(
        self,
        switch_id: str,
        now: int,
        actor: str,
        reason: str,
        principal: str | None,
        action: str,
    ) -> tuple[KillSwitch | None, list[KillSwitch]]:
        db = self._require()
        with self._transaction(db):
            row = db.execute(
                _SELECT_ENGAGED_BY_ID,
                (switch_id,),
            ).fetchone()
            found = None if row is None else switch_from_row(row, self.path)
            if found is not None:
                db.execute(
                    "UPDATE kill_switches SET ended_at_ms = ?, ended_by = ?, end_reason = ? "
                    "WHERE id = ?",
                    (now, actor, reason, switch_id),
                )
                _audit(db, now, action, actor, reason, principal, found, switch_dict(found))
        return found, self._after_commit(db)

    async def record(
        self,
        action: str,
        *,
        actor: str,
        reason: str,
        principal: str | None = None,
        account: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append an audit row for another operator action (e.g. a limit change)."""
        now = self._clock()
        async with self._lock:
            row_id = await asyncio.to_thread(
                self._record_sync, now, action, actor, reason, principal, account, details or {}
            )
        return AuditEntry(
            id=row_id,
            time_ms=now,
            action=action,
            actor=actor,
            reason=reason,
            principal=principal,
            account=account,
            details=dict(details or {}),
        )

    def _record_sync(
        self,
        now: int,
        action: str,
        actor: str,
        reason: str,
        principal: str | None,
        account: str | None,
        details: Mapping[str, Any],
    ) -> int:
        db = self._require()
        with self._transaction(db):
            cursor = db.execute(
                "INSERT INTO audit (time_ms, action, actor, principal, account, reason, details) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (now, action, actor, principal, account, reason, _json(details)),
            )
        self._after_commit(db)
        return int(cursor.lastrowid or 0)

    # ------------------------------------------------------------------ reads (rare)

    async def audit(self, limit: int = 100, *, before_id: int | None = None) -> list[AuditEntry]:
        """The newest ``limit`` audit entries, newest first (older than ``before_id``)."""
        async with self._lock:
            return await asyncio.to_thread(self._audit_sync, limit, before_id)

    def _audit_sync(self, limit: int, before_id: int | None) -> list[AuditEntry]:
        db = self._require()
        rows = db.execute(
            "SELECT id, time_ms, action, actor, reason, principal, account, symbol, target, "
            "details FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before_id if before_id is not None else 2**63 - 1, limit),
        ).fetchall()
        return [
            AuditEntry(
                id=row[0],
                time_ms=row[1],
                action=row[2],
                actor=row[3],
                reason=row[4],
                principal=row[5],
                account=row[6],
                symbol=row[7],
                target=row[8],
                details=json.loads(row[9]),
            )
            for row in rows
        ]

    def _require(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("kill-switch store is not open")
        return self._db

    @contextmanager
    def _transaction(self, db: sqlite3.Connection) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) in autocommit mode; every
        change also counts one more generation, in the same transaction."""
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._generation = bump_generation(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _after_commit(self, db: sqlite3.Connection) -> list[KillSwitch]:
        """The engaged switches, and the marker moved up to the committed generation."""
        active = load_active(db, self.path)
        try:
            write_marker(self._marker_path, Marker(self._generation, len(active)))
        except OSError as exc:
            # The change is committed: failing the request now would report a change that
            # took effect as failed. A marker behind the database is safe (it is accepted
            # at the next start); it only guards less until the next write succeeds.
            log.error("cannot update the marker file %s: %s", self._marker_path, exc.strerror)
        return active


def _audit(
    db: sqlite3.Connection,
    now: int,
    action: str,
    actor: str,
    reason: str,
    principal: str | None,
    switch: KillSwitch,
    details: Mapping[str, Any],
) -> None:
    db.execute(
        "INSERT INTO audit (time_ms, action, actor, principal, account, symbol, target, reason, "
        "details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            now,
            action,
            actor,
            principal,
            switch.account,
            switch.symbol,
            switch.id,
            reason,
            _json(details),
        ),
    )


def _json(details: Mapping[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, default=str)
