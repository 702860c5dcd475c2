"""A real guard on the session's simulator (basic.yaml), shared by the client tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration import conftest as integration
from tests.support.guard import GuardProcess, guard_config, wait_until
from tests.support.guard_fixtures import BASIC_GUARD_ACCOUNTS, account_entry, ready
from tests.support.processes import SimulatorProcess, free_port
from tests.support.sim_control import SimControl

# The simulator fixtures of the integration tests: one simulator per session, reset per test.
_session_simulator = integration._session_simulator
shared_simulator = integration.shared_simulator
sim_control = integration.sim_control


@pytest.fixture(scope="package")
def package_guard(
    _session_simulator: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuardProcess]:
    """alpha (healthy, LONG 0.5 BTCUSDT), bravo (RESTRICTED), charlie (thin margin), delta
    (canTrade false). alpha may still close positions while the exchange restricts it."""
    accounts = {
        name: account_entry(_session_simulator, acc) for name, acc in BASIC_GUARD_ACCOUNTS.items()
    }
    accounts["alpha"]["policy"] = {"reduce_only_statuses": ["RESTRICTED"]}
    guard = GuardProcess(
        guard_config(accounts, port=free_port()), tmp_path_factory.mktemp("guard")
    ).start()
    try:
        yield guard
    finally:
        guard.stop()


@pytest.fixture
def guard(package_guard: GuardProcess, sim_control: SimControl) -> GuardProcess:
    """The package's guard after the simulator was reset to basic.yaml and the guard saw it."""
    wait_until(lambda: ready(package_guard), timeout=10, what="guard ready after reset")
    # Ready is not enough: a test before this one may have restricted alpha, and the guard
    # keeps that (fresh) status until its next poll after the reset.
    with package_guard.client() as client:
        wait_until(
            lambda: client.get("/can-trade", params={"account": "alpha"}).json()["allowed"],
            timeout=10,
            what="alpha allowed again after the reset",
        )
    return package_guard
