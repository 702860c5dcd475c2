"""Fixtures that start the exchange simulator as a real process on loopback."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.support.processes import SimulatorProcess, StartSimulator
from tests.support.sim_control import SimControl
from tests.support.sim_scenarios import BASIC_SCENARIO


@pytest.fixture
def start_simulator(tmp_path: Path) -> Iterator[StartSimulator]:
    """Start simulators from any scenario (``extra_args`` go to the CLI); all stop at teardown."""
    started: list[SimulatorProcess] = []

    def start(scenario: Path = BASIC_SCENARIO, extra_args: Sequence[str] = ()) -> SimulatorProcess:
        log_path = tmp_path / f"simulator-{len(started)}.log"
        process = SimulatorProcess(scenario, log_path=log_path, extra_args=extra_args)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.close()


@pytest.fixture
def simulator(start_simulator: StartSimulator) -> SimulatorProcess:
    """A fresh simulator process serving tests/fixtures/sim/basic.yaml, for this test only."""
    return start_simulator()


@pytest.fixture(scope="session")
def _session_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    log_path = tmp_path_factory.mktemp("sim") / "simulator.log"
    with SimulatorProcess(BASIC_SCENARIO, log_path=log_path) as process:
        yield process


@pytest.fixture
def shared_simulator(_session_simulator: SimulatorProcess) -> SimulatorProcess:
    """One basic.yaml simulator for the whole session, reset to the scenario before each test.

    Much faster than ``simulator``; use it unless the test is about the process itself.
    """
    if not _session_simulator.running:
        _session_simulator.start()
    _session_simulator.control.reset()
    return _session_simulator


@pytest.fixture
def sim_control(shared_simulator: SimulatorProcess) -> SimControl:
    return shared_simulator.control


@pytest.fixture
def exchange(shared_simulator: SimulatorProcess) -> Iterator[httpx.Client]:
    """A plain HTTP client on the shared simulator's exchange faces."""
    with httpx.Client(base_url=shared_simulator.base_url, timeout=5.0) as client:
        yield client
