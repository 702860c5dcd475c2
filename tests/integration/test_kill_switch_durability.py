"""A guard that held kill switches never starts silently without them (real guard processes).

Each way the database used to vanish (deleted, truncated, a dropped table, the ``-wal`` file
lost after a SIGKILL) gave a normal start with 0 switches and ``allowed: true``. Now the
guard refuses to start (exit 2), names the file and the way out; ``reset-kill-switches``
is that way out, audited. A row it cannot apply stops the start naming the row.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.support.guard import ADMIN_TOKEN, BOT_TOKEN, REPO, GuardProcess
from tests.support.operator import crash, running_guard, wait_ready
from tests.support.processes import SimulatorProcess

pytestmark = pytest.mark.integration

DB = "pretrade-guard.sqlite3"
ENTRY = {"account": "alpha", "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01"}
HALT_ALPHA = {
    "scope": "account",
    "account": "alpha",
    "mode": "HALT",
    "actor": "alice",
    "reason": "exchange incident #42",
}


def decide(guard: GuardProcess) -> dict[str, Any]:
    with guard.client(BOT_TOKEN) as bot:
        body: dict[str, Any] = bot.post("/can-trade", json=ENTRY).json()
    return body


def engage(guard: GuardProcess, body: dict[str, Any] = HALT_ALPHA) -> str:
    with guard.client(ADMIN_TOKEN) as ops:
        response = ops.post("/admin/kill-switches", json=body)
    assert response.status_code == 201, response.text
    switch_id: str = response.json()["id"]
    return switch_id


def exit_of(guard: GuardProcess) -> int:
    """Start the guard again and wait for it to give up (it must not start serving)."""
    guard.start(wait=False)
    assert guard.proc is not None
    try:
        return guard.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        guard.stop()
        raise AssertionError(f"the guard started:\n{guard.logs()}") from None
    finally:
        guard.proc = None


def _delete(data: Path) -> None:
    (data / DB).unlink()


def _truncate(data: Path) -> None:
    (data / DB).write_bytes(b"")


def _drop_table(data: Path) -> None:
    with closing(sqlite3.connect(data / DB)) as db:
        db.execute("DROP TABLE kill_switches")
        db.commit()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_delete, id="deleted"),
        pytest.param(_truncate, id="truncated"),
        pytest.param(_drop_table, id="table-dropped"),
    ],
)
def test_a_lost_database_stops_the_start_naming_the_file(
    shared_simulator: SimulatorProcess, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    data = tmp_path / "data"
    with running_guard(shared_simulator, tmp_path) as guard:
        engage(guard)
        assert decide(guard)["allowed"] is False
    damage(data)

    assert exit_of(guard) == 2
    logs = guard.logs()
    assert f"the kill-switch database {data / DB}" in logs
    assert "1 engaged kill switch(es)" in logs
    assert "pretrade-guard reset-kill-switches --actor NAME --reason WHY" in logs
    assert "guard started" not in logs.split("guard stopped")[-1]


def test_switches_only_in_the_lost_wal_file_stop_the_start(
    shared_simulator: SimulatorProcess, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with running_guard(shared_simulator, tmp_path) as guard:
        engage(guard)
        crash(guard)  # SIGKILL: no checkpoint, the switch lives only in the -wal file
        wal = data / f"{DB}-wal"
        assert wal.stat().st_size > 0
        wal.unlink()

        assert exit_of(guard) == 2
    assert "behind its marker" in guard.logs() or "is empty" in guard.logs()
    assert "-wal" in guard.logs()


def test_a_crash_with_the_wal_file_intact_keeps_the_switch(
    shared_simulator: SimulatorProcess, tmp_path: Path
) -> None:
    with running_guard(shared_simulator, tmp_path) as guard:
        switch_id = engage(guard)
        crash(guard)
        guard.start()
        wait_ready(guard)
        with guard.client(ADMIN_TOKEN) as ops:
            listed = ops.get("/admin/kill-switches").json()["kill_switches"]
        assert [s["id"] for s in listed] == [switch_id]
        assert decide(guard)["allowed"] is False


def test_a_row_with_a_wrong_type_stops_the_start_naming_the_row(
    shared_simulator: SimulatorProcess, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with running_guard(shared_simulator, tmp_path) as guard:
        switch_id = engage(guard)
    with closing(sqlite3.connect(data / DB)) as db:
        db.execute("UPDATE kill_switches SET expires_at_ms = 'soon' WHERE id = ?", (switch_id,))
        db.commit()

    assert exit_of(guard) == 2
    logs = guard.logs()
    assert f"row id='{switch_id}' has expires_at_ms='soon'" in logs
    assert str(data / DB) in logs


def reset(guard: GuardProcess, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app", "reset-kill-switches"]
    return subprocess.run(
        [*command, "--config", str(guard.config_path), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_reset_starts_deliberately_with_no_switches_and_is_audited(
    shared_simulator: SimulatorProcess, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with running_guard(shared_simulator, tmp_path) as guard:
        engage(guard)
        # While the database is intact, there is nothing to reset: the guard keeps its switch.
        refused = reset(guard, "--actor", "bob", "--reason", "just because")
        assert refused.returncode == 1, refused.stderr
        assert "nothing to reset" in refused.stderr
        assert decide(guard)["allowed"] is False
    _delete(data)
    assert exit_of(guard) == 2

    done = reset(guard, "--actor", "bob", "--reason", "db volume lost in INC-7")
    assert done.returncode == 0, done.stderr
    assert "NO kill switches are engaged" in done.stdout
    assert "kept aside" in done.stdout  # the old marker, renamed, not deleted

    guard.start()
    try:
        wait_ready(guard)
        assert decide(guard)["allowed"] is True
        with guard.client(ADMIN_TOKEN) as ops:
            [entry] = ops.get("/admin/audit").json()["entries"]
        assert (entry["action"], entry["actor"], entry["reason"]) == (
            "kill_switches.reset",
            "bob",
            "db volume lost in INC-7",
        )
        assert "is missing" in entry["details"]["problem"]
    finally:
        guard.stop()


def test_help_prints_usage_and_starts_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("Usage: pretrade-guard [OPTIONS] [COMMAND]")
    for command in ("check-config", "reset-kill-switches", "serve"):
        assert command in done.stdout


def test_a_guard_without_accounts_refuses_to_start(tmp_path: Path) -> None:
    config = tmp_path / "empty.yaml"
    config.write_text("server: {port: 1}\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=REPO,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("PRETRADE_GUARD_")},
            "PRETRADE_GUARD_CONFIG": str(config),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "no accounts configured" in done.stderr
    assert f"PRETRADE_GUARD_CONFIG (now: {config})" in done.stderr
