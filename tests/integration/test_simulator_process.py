"""The simulator as a program: start-up, readiness, clean shutdown, restart, bad scenarios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import REPO_ROOT, SimulatorProcess, StartSimulator
from tests.support.sim_scenarios import BASIC_SCENARIO, HEALTHY

pytestmark = pytest.mark.integration


def test_logs_a_ready_line_and_stops_cleanly_on_sigterm(simulator: SimulatorProcess) -> None:
    assert f"simulator ready on {simulator.base_url}" in simulator.logs()
    assert simulator.stop() == 0
    assert "simulator stopped" in simulator.logs()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{simulator.base_url}/_sim/health")


def test_restart_keeps_the_port_and_returns_to_the_scenario(simulator: SimulatorProcess) -> None:
    simulator.control.patch_status(HEALTHY.id, {"tradingStatus": "CLOSED"})
    simulator.restart()
    assert simulator.running
    assert simulator.control.account(HEALTHY.id)["status"]["tradingStatus"] == "NORMAL"


def test_cli_overrides_window_and_ban(start_simulator: StartSimulator) -> None:
    process = start_simulator(BASIC_SCENARIO, ["--weight-window-s", "5", "--ban-s", "7"])
    per_key = process.control.weight()["per_key"]
    assert per_key["window_s"] == 5.0
    assert per_key["limit"] == 1200


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("accounts: [", "not valid YAML", id="not-yaml"),
        pytest.param("accounts: []", "accounts", id="no-accounts"),
        pytest.param(
            "accounts: [{id: A, api_key: 'bad key', api_secret: s}]", "api_key", id="bad-key"
        ),
        pytest.param(
            "accounts: [{id: A, api_key: k, api_secret: s}, {id: A, api_key: j, api_secret: t}]",
            "duplicate account id",
            id="duplicate-id",
        ),
        pytest.param(
            "weight_limit: 5\naccounts: [{id: A, api_key: k, api_secret: s}]",
            "weight_limit",
            id="unknown-setting",
        ),
    ],
)
def test_bad_scenario_exits_2_naming_the_problem(
    tmp_path: Path, content: str, message: str
) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(content, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "--scenario", str(scenario), "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_missing_scenario_file_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "--scenario", str(tmp_path / "none.yaml")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "cannot read scenario" in result.stderr
