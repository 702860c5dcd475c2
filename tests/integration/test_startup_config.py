"""The guard refuses placeholder secrets and warns about world-readable secret files, at start.

``tests/unit/test_config.py`` covers the validators; these run the real ``python -m app`` and
check what an operator sees: the exit code and a message naming the field.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.guard import GuardProcess, guard_config, wait_until
from tests.support.guard_fixtures import account_entry, ready
from tests.support.processes import SimulatorProcess, free_port
from tests.support.sim_scenarios import CANNOT_TRADE, HEALTHY, RESTRICTED, THIN_MARGIN

pytestmark = pytest.mark.integration


def _exit_of(guard: GuardProcess) -> int:
    guard.start(wait=False)
    assert guard.proc is not None
    try:
        return guard.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        guard.stop()
        raise AssertionError(f"the guard started:\n{guard.logs()}") from None


def test_placeholder_secrets_stop_the_start_naming_each_field(
    shared_simulator: SimulatorProcess, tmp_path: Path
) -> None:
    accounts = {
        "alpha": account_entry(shared_simulator, HEALTHY, api_secret="changeme"),
        "bravo": account_entry(shared_simulator, RESTRICTED, api_key="<your-api-key>"),
        "charlie": account_entry(shared_simulator, THIN_MARGIN, api_secret=""),
        "delta": account_entry(shared_simulator, CANNOT_TRADE),  # fine
    }
    config = guard_config(accounts, port=free_port())
    config["auth"]["tokens"][1]["token"] = "<read-token>"
    guard = GuardProcess(config, tmp_path)
    assert _exit_of(guard) == 2
    output = guard.logs().splitlines()
    assert output[0] == "pretrade-guard: invalid configuration:"
    assert sorted(output[1:]) == [
        "  accounts.alpha: Value error, api_secret is empty or a placeholder",
        "  accounts.bravo: Value error, api_key is empty or a placeholder",
        "  accounts.charlie: Value error, api_secret is empty or a placeholder",
        "  auth.tokens.1: Value error, token is empty or a placeholder",
    ]


def _secret_file(tmp_path: Path, name: str, secret: str, mode: int) -> Path:
    path = tmp_path / f"{name}.secret"
    path.write_text(secret + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


def test_a_world_readable_secret_file_is_warned_about_and_a_private_one_is_not(
    shared_simulator: SimulatorProcess, tmp_path: Path
) -> None:
    shared = _secret_file(tmp_path, "alpha", HEALTHY.api_secret, 0o644)
    private = _secret_file(tmp_path, "bravo", RESTRICTED.api_secret, 0o600)
    accounts = {}
    for name, acc, path in (("alpha", HEALTHY, shared), ("bravo", RESTRICTED, private)):
        accounts[name] = account_entry(shared_simulator, acc, api_secret_file=str(path))
        del accounts[name]["api_secret"]
    config = guard_config(accounts, port=free_port())
    guard = GuardProcess(config, tmp_path).start()
    try:
        # Both secrets were read and work: the accounts get data.
        wait_until(lambda: ready(guard), timeout=15, what="guard ready")
    finally:
        guard.stop()
    logs = guard.logs()
    warnings = [
        json.loads(line) for line in logs.splitlines() if "world-readable" in line
    ]  # a structured (JSON) line like every other, though logged while the config loads
    assert [(w["level"], w["event"]) for w in warnings] == [
        ("warning", f"secret file is world-readable; chmod 600 it: {shared}")
    ]
    assert HEALTHY.api_secret not in logs
    assert RESTRICTED.api_secret not in logs
