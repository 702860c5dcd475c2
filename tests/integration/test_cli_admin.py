"""``pretrade-guard admin``: the installed command against a real guard and simulator.

What an operator types in an incident: the switch is engaged and obeyed, the output says
what is now in force, the exit code tells a script what went wrong, and the token never
shows up anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.guard import ADMIN_TOKEN, BOT_TOKEN, GuardProcess
from tests.support.operator import running_guard
from tests.support.processes import SimulatorProcess, free_port

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "pretrade-guard")
ENTRY = {
    "account": "alpha",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "quantity": "0.01",
    "price": "60000",
}
ETH_ENTRY = {**ENTRY, "symbol": "ETHUSDT", "price": "3000"}
_OURS = ("PRETRADE_GUARD_",)


def run_cli(
    guard: GuardProcess | None,
    *args: str,
    token: str | None = ADMIN_TOKEN,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    extra = {"PRETRADE_GUARD_ACTOR": "alice", **(env or {})}
    if token is not None:
        extra["PRETRADE_GUARD_TOKEN"] = token
    if guard is not None:
        extra["PRETRADE_GUARD_URL"] = guard.base_url
    done = subprocess.run(
        [CLI, "admin", *args],
        env={**clean, **extra},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for secret in (ADMIN_TOKEN, BOT_TOKEN):
        assert secret not in done.stdout + done.stderr
    return done


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def decide(guard: GuardProcess, order: dict[str, Any]) -> dict[str, Any]:
    with guard.client(BOT_TOKEN) as bot:
        body: dict[str, Any] = bot.post("/can-trade", json=order).json()
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [reason["code"] for reason in body["reasons"]]


@pytest.fixture
def guard(shared_simulator: SimulatorProcess, tmp_path: Path) -> Iterator[GuardProcess]:
    with running_guard(shared_simulator, tmp_path) as started:
        yield started


@pytest.fixture(scope="module")
def quiet_guard(
    _session_simulator: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuardProcess]:
    """For the tests that change nothing."""
    with running_guard(_session_simulator, tmp_path_factory.mktemp("cli")) as started:
        yield started


def test_engage_list_release_and_audit_as_an_operator_would(guard: GuardProcess) -> None:
    engaged = run_cli(
        guard, "engage", "account", "alpha", "--mode", "halt", "--reason", "INC-7 exchange"
    )
    assert engaged.returncode == 0, engaged.stderr
    first_line, *rest = engaged.stdout.splitlines()
    assert first_line.startswith("ENGAGED HALT on account alpha (all symbols): ks-")
    assert "by alice, no expiry" in first_line
    assert rest[0] == "now in force (1 kill switch(es)):"
    assert codes(decide(guard, ETH_ENTRY)) == ["KILL_SWITCH"]

    narrow = run_cli(
        guard,
        "engage",
        "symbol",
        "alpha",
        "BTCUSDT",
        "-m",
        "REDUCE-ONLY",
        "-r",
        "BTC feed odd",
        "--expires-in",
        "30m",
    )
    assert narrow.returncode == 0, narrow.stderr
    assert "account alpha, symbol BTCUSDT only" in narrow.stdout
    assert "now in force (2 kill switch(es))" in narrow.stdout

    listed = as_json(run_cli(guard, "switches", "--json"))["kill_switches"]
    halt = next(s for s in listed if s["mode"] == "HALT")
    reduce = next(s for s in listed if s["mode"] == "REDUCE_ONLY")
    assert 1790_000 < reduce["expires_at_ms"] - reduce["created_at_ms"] <= 1800_000

    released = run_cli(guard, "release", halt["id"], "--reason", "exchange back")
    assert released.returncode == 0, released.stderr
    assert released.stdout.splitlines()[0] == (
        f"RELEASED HALT on account alpha (all symbols): {halt['id']}, by alice"
    )
    assert "now in force (1 kill switch(es))" in released.stdout
    assert decide(guard, ETH_ENTRY)["allowed"] is True

    entries = as_json(run_cli(guard, "audit", "--json"))["entries"]
    assert [(e["action"], e["actor"], e["principal"]) for e in entries] == [
        ("kill_switch.release", "alice", "admin"),
        ("kill_switch.engage", "alice", "admin"),
        ("kill_switch.engage", "alice", "admin"),
    ]
    table = run_cli(guard, "audit")
    assert table.stdout.splitlines()[0].split() == [
        "ID",
        "TIME",
        "(UTC)",
        "ACTION",
        "ACTOR",
        "TOKEN",
        "ACCOUNT",
        "SYMBOL",
        "TARGET",
        "REASON",
    ]
    assert "exchange back" in table.stdout


def test_limits_change_what_bots_are_told_and_reset(guard: GuardProcess) -> None:
    assert decide(guard, ENTRY)["allowed"] is True
    changed = run_cli(
        guard,
        "limits",
        "set",
        "alpha",
        "--max-order-notional",
        "100",
        "--order-rate",
        "50/10",
        "-r",
        "tighten during INC-7",
    )
    assert changed.returncode == 0, changed.stderr
    assert "CHANGED max_order_notional, order_rate of account alpha" in changed.stdout
    rows = {line.split()[0]: line.split()[1:] for line in changed.stdout.splitlines()[2:]}
    assert rows["LIMIT"] == ["IN", "FORCE", "CONFIGURED"]
    assert rows["max_order_notional"] == ["100", "none"]
    assert rows["order_rate"] == ["50", "per", "10.0s", "none"]
    assert codes(decide(guard, ENTRY)) == ["ORDER_NOTIONAL_LIMIT"]

    shown = as_json(run_cli(guard, "limits", "show", "alpha", "--json"))
    assert shown["overridden"] is True
    assert shown["limits"]["order_rate"] == {"max_orders": 50, "window_s": 10.0}

    reset = run_cli(guard, "limits", "reset", "alpha", "-r", "incident over")
    assert reset.returncode == 0, reset.stderr
    assert "account alpha: limits as configured" in reset.stdout
    assert decide(guard, ENTRY)["allowed"] is True


def test_account_state_and_freshness(quiet_guard: GuardProcess) -> None:
    [alpha] = as_json(run_cli(quiet_guard, "accounts", "--json"))["accounts"]
    assert (alpha["account"], alpha["fresh"]) == ("alpha", True)

    listing = run_cli(quiet_guard, "accounts")
    assert listing.stdout.splitlines()[1].split()[:2] == ["alpha", "FRESH"]

    detail = run_cli(quiet_guard, "account", "alpha")
    assert detail.returncode == 0, detail.stderr
    assert "data: FRESH" in detail.stdout
    assert "exchange status: NORMAL; can trade: True" in detail.stdout
    assert any(line.startswith("BTCUSDT") for line in detail.stdout.splitlines())


@pytest.mark.parametrize(
    ("args", "token", "exit_code", "says"),
    [
        pytest.param(("switches",), "not-the-token-000", 4, "401", id="unknown-token"),
        pytest.param(("switches",), BOT_TOKEN, 4, "lacks the scope", id="decide-scope-only"),
        pytest.param(("switches",), None, 2, "no token", id="no-token"),
        pytest.param(
            ("release", "ks-0000", "-r", "x"), ADMIN_TOKEN, 5, "KILL_SWITCH_NOT_FOUND", id="404"
        ),
        pytest.param(
            ("engage", "account", "nope", "-m", "halt", "-r", "x"),
            ADMIN_TOKEN,
            5,
            "UNKNOWN_ACCOUNT",
            id="unknown-account",
        ),
        pytest.param(
            ("engage", "account", "-m", "halt", "-r", "x"),
            ADMIN_TOKEN,
            2,
            "scope account takes: engage account ACCOUNT",
            id="scope-without-target",
        ),
        pytest.param(
            ("engage", "alpha", "-m", "halt", "-r", "x"),
            ADMIN_TOKEN,
            2,
            "'alpha' is not one of 'global', 'account', 'symbol'",
            id="scope-left-out",
        ),
        pytest.param(("engage", "global", "-r", "x"), ADMIN_TOKEN, 2, "--mode", id="mode-left-out"),
        pytest.param(
            ("engage", "global", "-m", "halt", "-r", "x", "--expires-in", "0.2s"),
            ADMIN_TOKEN,
            2,
            "at least 1 s",
            id="sub-second-expiry",
        ),
    ],
)
def test_exit_codes_tell_what_went_wrong(
    quiet_guard: GuardProcess, args: tuple[str, ...], token: str | None, exit_code: int, says: str
) -> None:
    done = run_cli(quiet_guard, *args, token=token)
    assert done.returncode == exit_code, done.stderr
    assert says in done.stderr
    assert as_json(run_cli(quiet_guard, "switches", "--json"))["kill_switches"] == []


def test_an_unreachable_guard_is_exit_3_and_json_errors_for_scripts(
    quiet_guard: GuardProcess,
) -> None:
    nobody = run_cli(
        None, "switches", env={"PRETRADE_GUARD_URL": f"http://127.0.0.1:{free_port()}"}
    )
    assert nobody.returncode == 3
    assert "cannot reach the guard at http://127.0.0.1:" in nobody.stderr

    refused = run_cli(quiet_guard, "release", "ks-0000", "-r", "x", "--json")
    assert refused.returncode == 5
    assert json.loads(refused.stdout)["error"]["code"] == "KILL_SWITCH_NOT_FOUND"
    assert json.loads(refused.stdout)["error"]["status"] == 404


def test_the_token_comes_from_a_file(quiet_guard: GuardProcess, tmp_path: Path) -> None:
    token_file = tmp_path / "ops.token"
    token_file.write_text(ADMIN_TOKEN + "\n", encoding="utf-8")
    done = run_cli(quiet_guard, "switches", "--token-file", str(token_file), token=None)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "now in force: NO kill switch is engaged\n"

    missing = run_cli(quiet_guard, "switches", "--token-file", str(tmp_path / "nope"), token=None)
    assert missing.returncode == 2
    assert "cannot read the token file" in missing.stderr
