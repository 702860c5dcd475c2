"""Weight budgets over real HTTP: 429 with Retry-After, then 418 bans for clients that go on.

Uses tests/fixtures/sim/tight_limits.yaml: 10 weight per key (generic-v2), 12 per IP (Binance),
a 2 s rolling window, a 3 s ban, no grace.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import SimulatorProcess, StartSimulator
from tests.support.signing import now_ms, signed_get
from tests.support.sim_scenarios import SIM_FIXTURES

pytestmark = pytest.mark.integration

TIGHT = SIM_FIXTURES / "tight_limits.yaml"
ONE = ("tight-key-one", "tight-secret-one")
TWO = ("tight-key-two", "tight-secret-two")
WEIGHT = "X-MBX-USED-WEIGHT-1M"


@pytest.fixture
def tight(start_simulator: StartSimulator) -> SimulatorProcess:
    return start_simulator(TIGHT)


@pytest.fixture
def client(tight: SimulatorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tight.base_url, timeout=5.0) as http:
        yield http


def account(client: httpx.Client, key: tuple[str, str]) -> httpx.Response:
    return signed_get(client, "/v2/account", *key)  # weight 5


def test_full_budget_answers_429_then_418_for_a_client_that_goes_on(
    client: httpx.Client, tight: SimulatorProcess
) -> None:
    assert [account(client, ONE).status_code for _ in range(2)] == [200, 200]

    limited = account(client, ONE)
    assert limited.status_code == 429
    assert limited.json()["code"] == -1003
    assert 1 <= int(limited.headers["Retry-After"]) <= 2
    assert limited.headers[WEIGHT] == "10"
    # Another key's budget is untouched.
    assert account(client, TWO).status_code == 200

    banned = account(client, ONE)
    assert banned.status_code == 418
    assert banned.headers["Retry-After"] == "3"
    message = banned.json()["msg"]
    match = re.search(r"IP banned until (\d+)\.", message)
    assert match is not None, message
    assert abs(int(match.group(1)) - (now_ms() + 3000)) < 1000
    assert tight.control.weight()["per_key"]["banned_s"].keys() == {ONE[0]}

    # Still banned after the window has freed up: the ban lasts ban_s.
    time.sleep(2.1)
    still = account(client, ONE)
    assert still.status_code == 418
    assert int(still.headers["Retry-After"]) == 1

    time.sleep(1.0)
    assert account(client, ONE).status_code == 200


def test_a_client_that_honours_retry_after_is_not_banned(client: httpx.Client) -> None:
    account(client, ONE)
    account(client, ONE)
    limited = account(client, ONE)
    assert limited.status_code == 429
    time.sleep(int(limited.headers["Retry-After"]))
    recovered = account(client, ONE)
    assert recovered.status_code == 200
    assert int(recovered.headers[WEIGHT]) <= 10


def test_binance_budget_is_per_ip_and_shared_by_every_key(client: httpx.Client) -> None:
    first = signed_get(client, "/fapi/v2/account", *ONE)  # weight 10
    assert (first.status_code, first.headers[WEIGHT]) == (200, "10")
    other_key = signed_get(client, "/fapi/v3/account", *TWO)  # weight 5 > 2 left
    assert other_key.status_code == 429
    assert other_key.headers[WEIGHT] == "10"
    assert "IP(127.0.0.1)" in other_key.json()["msg"]
    # Calling on while told to wait bans the IP, even for a request that would fit...
    cheap = signed_get(client, "/fapi/v1/apiTradingStatus", *TWO, {"symbol": "BTCUSDT"})
    assert cheap.status_code == 418
    # ...but the generic face has its own per-key budgets.
    assert account(client, TWO).status_code == 200


def test_requests_already_in_flight_get_429_not_a_ban(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    scenario = tmp_path / "grace.yaml"
    scenario.write_text(
        TIGHT.read_text().replace("ban_grace_s: 0", "ban_grace_s: 5"), encoding="utf-8"
    )
    process = start_simulator(scenario)
    with httpx.Client(base_url=process.base_url, timeout=5.0) as http:
        statuses = [account(http, ONE).status_code for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]


def test_weight_endpoint_reports_usage_per_key_and_ip(
    client: httpx.Client, tight: SimulatorProcess
) -> None:
    account(client, ONE)
    signed_get(client, "/fapi/v3/account", *TWO)
    weight = tight.control.weight()
    assert weight["per_key"]["used"] == {ONE[0]: 5}
    assert weight["per_key"]["limit"] == 10
    assert weight["per_ip"]["used"] == {"127.0.0.1": 5}
    assert weight["per_ip"]["window_s"] == 2.0
