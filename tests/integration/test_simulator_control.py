"""The control API: state changes show up on the exchange, bad input is a 4xx, never a 500."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.support.processes import SimulatorProcess
from tests.support.signing import signed_get
from tests.support.sim_control import SimControl
from tests.support.sim_scenarios import BASIC_ACCOUNTS, HEALTHY, RESTRICTED

pytestmark = pytest.mark.integration

STATUS = "/v2/private/account/apiTradingStatus"
ACCOUNT = "/v2/account"


def status(exchange: httpx.Client) -> dict[str, Any]:
    response = signed_get(exchange, STATUS, HEALTHY.api_key, HEALTHY.api_secret)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_health(sim_control: SimControl) -> None:
    assert sim_control.health() == {"status": "ok"}


def test_accounts_are_listed_without_secrets(sim_control: SimControl) -> None:
    accounts = sim_control.accounts()
    assert [account["id"] for account in accounts] == [account.id for account in BASIC_ACCOUNTS]
    healthy = sim_control.account(HEALTHY.id)
    assert healthy["api_key"] == HEALTHY.api_key
    assert HEALTHY.api_secret not in str(accounts)
    assert healthy["status"]["tradingStatus"] == "NORMAL"
    assert healthy["account"]["walletBalance"] == "10000.00"


def test_patched_status_shows_up_with_a_new_update_time(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    before = status(exchange)
    time.sleep(0.01)
    sim_control.patch_status(
        HEALTHY.id, {"tradingStatus": "MARGIN_CLOSED", "reason": "Liquidated", "extra": 1}
    )
    after = status(exchange)
    assert (after["tradingStatus"], after["reason"], after["extra"]) == (
        "MARGIN_CLOSED",
        "Liquidated",
        1,
    )
    assert after["canTrade"] is True  # untouched fields keep their values
    assert after["updateTime"] > before["updateTime"]


def test_a_new_trading_status_without_a_reason_clears_the_old_reason(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    sim_control.patch_status(
        HEALTHY.id, {"tradingStatus": "RESTRICTED", "reason": "Pending KYC review"}
    )
    assert status(exchange)["reason"] == "Pending KYC review"
    sim_control.patch_status(HEALTHY.id, {"tradingStatus": "NORMAL"})
    after = status(exchange)
    assert (after["tradingStatus"], after["reason"]) == ("NORMAL", "")
    # A patch that leaves the status alone keeps the reason; one that names both sets both.
    sim_control.patch_status(HEALTHY.id, {"tradingStatus": "UNDER_REVIEW", "reason": "Audit"})
    sim_control.patch_status(HEALTHY.id, {"canTrade": False})
    assert status(exchange)["reason"] == "Audit"


def test_null_removes_a_field_and_update_time_can_be_set(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    sim_control.patch_status(HEALTHY.id, {"canTrade": None, "updateTime": 1_600_000_000_000})
    body = status(exchange)
    assert "canTrade" not in body
    assert body["updateTime"] == 1_600_000_000_000


def test_patched_account_replaces_lists_whole(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    sim_control.patch_account(
        HEALTHY.id, {"availableBalance": "12.34", "positions": [], "walletBalance": 99}
    )
    body = signed_get(exchange, ACCOUNT, HEALTHY.api_key, HEALTHY.api_secret).json()
    assert body["availableBalance"] == "12.34"
    assert body["walletBalance"] == 99  # served as given, even a wrong type
    assert body["positions"] == []
    assert body["openOrders"][0]["orderId"] == "9001"


def test_rotated_secret_makes_old_signatures_invalid(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    sim_control.set_credentials(HEALTHY.id, api_secret="rotated")
    old = signed_get(exchange, STATUS, HEALTHY.api_key, HEALTHY.api_secret)
    assert (old.status_code, old.json()["code"]) == (401, -1022)
    assert signed_get(exchange, STATUS, HEALTHY.api_key, "rotated").status_code == 200


def test_request_log_counts_and_filters(exchange: httpx.Client, sim_control: SimControl) -> None:
    for _ in range(3):
        status(exchange)
    signed_get(exchange, ACCOUNT, RESTRICTED.api_key, RESTRICTED.api_secret)
    exchange.get("/fapi/v1/time")
    assert sim_control.request_count() == 5
    assert sim_control.request_count(api_key=HEALTHY.api_key) == 3
    assert sim_control.request_count(path="/v2/") == 4
    summary = sim_control.requests(api_key=RESTRICTED.api_key, limit=5)
    assert summary["by_path"] == {ACCOUNT: 1}
    assert summary["by_status"] == {"200": 1}
    (entry,) = summary["recent"]
    assert entry.keys() >= {"time_ms", "api_key", "path", "status", "code"}
    assert (entry["api_key"], entry["path"], entry["status"], entry["code"]) == (
        RESTRICTED.api_key,
        ACCOUNT,
        200,
        None,
    )
    sim_control.clear_requests()
    assert sim_control.request_count() == 0


def test_errors_are_logged_with_their_code(exchange: httpx.Client, sim_control: SimControl) -> None:
    signed_get(exchange, STATUS, HEALTHY.api_key, "wrong")
    (entry,) = sim_control.requests()["recent"]
    assert (entry["status"], entry["code"]) == (401, -1022)


def test_reset_restores_the_scenario(exchange: httpx.Client, sim_control: SimControl) -> None:
    sim_control.patch_status(HEALTHY.id, {"tradingStatus": "CLOSED"})
    sim_control.add_fault("latency", params={"latency_ms": 1})
    sim_control.set_clock(10_000)
    sim_control.reset()
    assert status(exchange)["tradingStatus"] == "NORMAL"
    assert sim_control.faults() == []
    assert sim_control.set_clock(0)["offset_ms"] == 0
    assert sim_control.request_count() == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        pytest.param("GET", "/_sim/accounts/NOPE", None, 404, id="unknown-account"),
        pytest.param("PATCH", "/_sim/accounts/NOPE/status", {}, 404, id="patch-unknown-account"),
        pytest.param("PATCH", "/_sim/accounts/A-1001/status", b"{nope", 400, id="bad-json"),
        pytest.param("PATCH", "/_sim/accounts/A-1001/status", [1], 422, id="not-an-object"),
        pytest.param("PUT", "/_sim/accounts/A-1001/indicators", {"X": 1}, 422, id="bad-indicators"),
        pytest.param(
            "PATCH", "/_sim/accounts/A-1001/credentials", {"api_key": "a b"}, 422, id="bad-key"
        ),
        pytest.param(
            "PATCH",
            "/_sim/accounts/A-1001/credentials",
            {"api_key": "sim-key-bravo"},
            409,
            id="key-taken",
        ),
        pytest.param("POST", "/_sim/faults", {"kind": "meteor"}, 422, id="unknown-fault-kind"),
        pytest.param("POST", "/_sim/faults", {"kind": "latency"}, 422, id="missing-param"),
        pytest.param(
            "POST",
            "/_sim/faults",
            {"kind": "http_5xx", "params": {"status": 200}},
            422,
            id="5xx-status-out-of-range",
        ),
        pytest.param(
            "POST", "/_sim/faults", {"kind": "http_5xx", "count": 0}, 422, id="zero-count"
        ),
        pytest.param(
            "POST", "/_sim/faults", {"kind": "http_5xx", "path": "v2"}, 422, id="relative-path"
        ),
        pytest.param("DELETE", "/_sim/faults/f999", None, 404, id="unknown-fault"),
        pytest.param("PUT", "/_sim/clock", {"offset_ms": "soon"}, 422, id="bad-clock"),
        pytest.param("PUT", "/_sim/clock", {}, 422, id="empty-clock"),
        pytest.param("GET", "/_sim/requests?limit=abc", None, 400, id="bad-limit"),
        pytest.param("GET", "/_sim/nothing", None, 404, id="unknown-path"),
        pytest.param("DELETE", "/_sim/health", None, 405, id="wrong-method"),
    ],
)
def test_bad_control_input_is_a_4xx_with_a_json_problem(
    shared_simulator: SimulatorProcess, method: str, path: str, body: object, expected: int
) -> None:
    content = body if isinstance(body, bytes) else None
    json_body = None if body is None or isinstance(body, bytes) else body
    with httpx.Client(base_url=shared_simulator.base_url) as client:
        response = client.request(method, path, content=content, json=json_body)
    assert response.status_code == expected, response.text
    assert isinstance(response.json()["error"], str)
