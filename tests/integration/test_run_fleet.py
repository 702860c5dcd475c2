"""``make run-fleet`` (``python -m scripts.run_fleet``): the fleet it starts keeps its printed
promise. The script starts a real redis-server, the simulator, a refresher and two api
replicas; the curl block it prints is then run as printed (bash + curl): a switch engaged on
replica A denies alpha's order on replica B, and released, the order is allowed again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT, free_port
from tests.support.scripts import running_script

pytestmark = pytest.mark.integration

STARTUP_TIMEOUT_S = 120


def _need(command: str, package: str) -> None:
    if shutil.which(command) is not None:
        return
    message = f"{command} is not installed (apt-get install {package})"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{message}; CI must install it")
    pytest.skip(message)


@pytest.fixture
def fleet_demo(tmp_path: Path) -> Iterator[tuple[list[str], subprocess.Popen[str]]]:
    """The script, started; yields the lines it printed up to 'Ctrl-C stops them all.'"""
    _need("redis-server", "redis-server")
    ports = {
        name: str(free_port())
        for name in ("GUARD_PORT", "GUARD_B_PORT", "REFRESHER_PORT", "REDIS_PORT", "SIM_PORT")
    }
    env = {**os.environ, **ports, "DEMO_LOG_DIR": str(tmp_path / "logs")}
    with running_script(
        [sys.executable, "-m", "scripts.run_fleet"],
        env,
        "Ctrl-C stops them all.",
        STARTUP_TIMEOUT_S,
    ) as started:
        yield started


def _printed_example(lines: list[str]) -> list[str]:
    start = lines.index("Try it (copy-paste):") + 2
    end = lines.index("", start)
    return lines[start:end]


def test_a_switch_engaged_on_replica_a_denies_on_replica_b_as_printed(
    fleet_demo: tuple[list[str], subprocess.Popen[str]], tmp_path: Path
) -> None:
    _need("curl", "curl")
    lines, proc = fleet_demo
    assert any("the fleet is ready" in line for line in lines), "\n".join(lines)
    example = _printed_example(lines)
    script = tmp_path / "example.sh"
    script.write_text("set -eu\n" + "\n".join(example) + "\n", encoding="utf-8")
    ran = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr
    answers = [json.loads(line) for line in ran.stdout.splitlines() if line.startswith("{")]
    decisions = [a for a in answers if "allowed" in a]
    # B allows, B denies (A's switch), A allows (released on B), in the printed order.
    assert [d["allowed"] for d in decisions] == [True, False, True], ran.stdout
    denied = decisions[1]
    assert [r["code"] for r in denied["reasons"]] == ["KILL_SWITCH"], denied
    assert proc.poll() is None  # the fleet still runs: the example stopped nothing


def test_without_redis_server_on_path_it_says_how_to_get_one(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "scripts.run_fleet"],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": str(bare), "DEMO_LOG_DIR": str(tmp_path / "logs")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "redis-server is not on PATH" in done.stdout
    assert "apt-get install redis-server" in done.stdout
