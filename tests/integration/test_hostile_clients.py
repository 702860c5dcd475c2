"""The guard as a hostile or broken client finds it (issue 12): real guard, real simulator,
real HTTP on loopback. Bad input gets a precise 4xx in the JSON error shape, never a 500 and
never a decision made on a value other than the one the client sent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.guard import (
    ADMIN_TOKEN,
    BOT_TOKEN,
    READ_TOKEN,
    GuardProcess,
    guard_config,
    wait_until,
)
from tests.support.guard_fixtures import BASIC_GUARD_ACCOUNTS, account_entry, ready
from tests.support.processes import SimulatorProcess, free_port
from tests.support.sim_control import SimControl
from tests.support.sim_scenarios import HEALTHY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def module_guard(
    _session_simulator: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuardProcess]:
    accounts = {
        name: account_entry(_session_simulator, acc) for name, acc in BASIC_GUARD_ACCOUNTS.items()
    }
    accounts["alpha"]["policy"] = {"max_position_notional": "40000"}
    guard = GuardProcess(
        guard_config(accounts, port=free_port()), tmp_path_factory.mktemp("guard")
    ).start()
    try:
        yield guard
    finally:
        guard.stop()


@pytest.fixture
def guard(module_guard: GuardProcess, sim_control: SimControl) -> GuardProcess:
    wait_until(lambda: ready(module_guard), timeout=10, what="guard ready after reset")
    return module_guard


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The JSON error body of ``response``, which must have ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str)
    assert isinstance(body["error"]["message"], str)
    return dict(body["error"])


def fields_of(error: dict[str, Any]) -> list[str]:
    return [f["field"] for f in error.get("fields") or ()]


# ------------------------------------------------------------------------ Last-Event-ID


@pytest.mark.parametrize(
    "last_event_id",
    [
        "abcd1234-٣".encode(),  # Arabic-Indic digit (isdigit() is true for it)
        "abcd1234-²".encode(),  # a superscript: isdigit() true, int() raises
        b"abcd1234-" + b"9" * 5000,  # more digits than int() converts
        b"no dash at all",
    ],
)
def test_a_malformed_last_event_id_is_a_json_400_not_a_dropped_stream(
    guard: GuardProcess, last_event_id: bytes
) -> None:
    with httpx.Client(base_url=guard.base_url, timeout=5) as client:
        response = client.get(
            "/events",
            headers={
                b"Authorization": f"Bearer {READ_TOKEN}".encode(),
                b"Last-Event-ID": last_event_id,
            },
        )
    error = error_of(response, 400)
    assert error["code"] == "INVALID_LAST_EVENT_ID"
    assert fields_of(error) == ["Last-Event-ID"]
    assert "Traceback" not in guard.logs()


# ------------------------------------------------------------------- rules never raise


def test_a_position_of_1e999999999_is_never_a_500_nor_an_allowed(
    guard: GuardProcess, sim_control: SimControl
) -> None:
    account = sim_control.account(HEALTHY.id)
    position = dict(account["account"]["positions"][0])
    position["quantity"] = "1E+999999999"
    sim_control.patch_account(HEALTHY.id, {"positions": [position]})
    order = {"account": "alpha", "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01"}
    bodies = []
    with guard.client(BOT_TOKEN) as bot:
        # Several snapshot polls (0.3 s each): the guard has taken or refused the snapshot.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            response = bot.get("/can-trade", params={**order, "price": "60000"})
            assert response.status_code == 200, response.text
            bodies.append(response.json())
            time.sleep(0.1)
    last = bodies[-1]
    assert last["allowed"] is False, last
    assert "Traceback" not in guard.logs()


def test_admin_token_still_works_after_hostile_requests(guard: GuardProcess) -> None:
    with guard.client(ADMIN_TOKEN) as ops:
        assert ops.get("/admin/kill-switches").status_code == 200
