"""Injected faults over real HTTP: each kind, and how faults pick and expire their requests."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.support.signing import signed_get
from tests.support.sim_control import SimControl
from tests.support.sim_scenarios import HEALTHY, RESTRICTED

pytestmark = pytest.mark.integration

STATUS = "/v2/private/account/apiTradingStatus"
ACCOUNT = "/v2/account"


def status(
    exchange: httpx.Client, who: tuple[str, str] = (HEALTHY.api_key, HEALTHY.api_secret)
) -> httpx.Response:
    return signed_get(exchange, STATUS, *who)


def test_latency_delays_then_serves_normally(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    sim_control.add_fault("latency", path=STATUS, count=1, params={"latency_ms": 400})
    started = time.monotonic()
    response = status(exchange)
    assert time.monotonic() - started >= 0.4
    assert response.json()["tradingStatus"] == "NORMAL"
    started = time.monotonic()
    status(exchange)
    assert time.monotonic() - started < 0.3


@pytest.mark.parametrize(
    ("params", "expected_status", "expected_body"),
    [
        pytest.param({}, 503, {"code": -1001}, id="default"),
        pytest.param({"status": 502, "body": "Bad Gateway"}, 502, "Bad Gateway", id="text"),
        pytest.param({"status": 500, "body": None}, 500, "", id="empty"),
        pytest.param({"body": {"code": -1000, "msg": "x"}}, 503, {"code": -1000}, id="json"),
    ],
)
def test_http_5xx(
    exchange: httpx.Client,
    sim_control: SimControl,
    params: dict[str, object],
    expected_status: int,
    expected_body: object,
) -> None:
    sim_control.add_fault("http_5xx", path=STATUS, params=params)
    response = status(exchange)
    assert response.status_code == expected_status
    if isinstance(expected_body, dict):
        assert response.json()["code"] == expected_body["code"]
    else:
        assert response.text == expected_body


def test_malformed_json_is_a_200_that_does_not_parse(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    sim_control.add_fault("malformed_json", path=ACCOUNT, count=1)
    response = signed_get(exchange, ACCOUNT, HEALTHY.api_key, HEALTHY.api_secret)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.text.startswith('{"accountId":"A-1001"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_missing_fields_removes_top_level_fields(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    sim_control.add_fault("missing_fields", params={"fields": ["tradingStatus", "canTrade"]})
    body = status(exchange).json()
    assert "tradingStatus" not in body
    assert "canTrade" not in body
    assert body["reason"] == ""


def test_unknown_status_replaces_trading_status(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    sim_control.add_fault("unknown_status", params={"value": "HIBERNATING"})
    assert status(exchange).json()["tradingStatus"] == "HIBERNATING"
    # A fault only counts requests it could alter: the account answer has no tradingStatus.
    signed_get(exchange, ACCOUNT, HEALTHY.api_key, HEALTHY.api_secret)
    assert sim_control.faults()[0]["hits"] == 1


@pytest.mark.parametrize(("kind", "expected_status"), [("rate_limit_429", 429), ("ban_418", 418)])
@pytest.mark.parametrize("retry_after", [7, None])
def test_injected_rate_limits(
    exchange: httpx.Client,
    sim_control: SimControl,
    kind: str,
    expected_status: int,
    retry_after: int | None,
) -> None:
    sim_control.add_fault(kind, count=1, params={"retry_after_s": retry_after})
    response = status(exchange)
    assert response.status_code == expected_status
    assert response.json()["code"] == -1003
    assert response.headers.get("Retry-After") == (None if retry_after is None else "7")
    # Injected answers cost no weight and start no real ban.
    assert status(exchange).status_code == 200


def test_drop_connection_makes_the_client_fail_mid_response(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    sim_control.add_fault("drop_connection", path=STATUS, count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        status(exchange)
    assert status(exchange).status_code == 200
    logged = sim_control.requests(path=STATUS)["recent"]
    assert [entry["fault"] for entry in logged] == ["drop_connection", None]


def test_invalid_timestamp_answers_1021(exchange: httpx.Client, sim_control: SimControl) -> None:
    sim_control.add_fault("invalid_timestamp", count=2)
    responses = [status(exchange) for _ in range(3)]
    assert [r.status_code for r in responses] == [400, 400, 200]
    assert responses[0].json()["code"] == -1021


def test_faults_filter_by_api_key_and_path(exchange: httpx.Client, sim_control: SimControl) -> None:
    sim_control.add_fault("http_5xx", api_key=RESTRICTED.api_key, path="/v2/private")
    assert status(exchange).status_code == 200
    assert status(exchange, (RESTRICTED.api_key, RESTRICTED.api_secret)).status_code == 503
    restricted_account = signed_get(exchange, ACCOUNT, RESTRICTED.api_key, RESTRICTED.api_secret)
    assert restricted_account.status_code == 200


def test_faults_touch_both_faces_but_never_the_control_api(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    sim_control.add_fault("http_5xx")
    assert exchange.get("/v2/time").status_code == 503
    assert exchange.get("/fapi/v1/time").status_code == 503
    assert sim_control.health() == {"status": "ok"}


def test_fault_expires_after_duration(exchange: httpx.Client, sim_control: SimControl) -> None:
    sim_control.add_fault("http_5xx", duration_s=0.3)
    assert exchange.get("/v2/time").status_code == 503
    time.sleep(0.35)
    assert exchange.get("/v2/time").status_code == 200
    assert sim_control.faults() == []


def test_fault_listing_and_removal(sim_control: SimControl) -> None:
    first = sim_control.add_fault("latency", count=3, params={"latency_ms": 5})
    second = sim_control.add_fault("http_5xx", path="/fapi/", duration_s=60)
    listed = {fault["id"]: fault for fault in sim_control.faults()}
    assert listed[first]["count"] == 3
    assert listed[first]["params"] == {"latency_ms": 5.0}
    assert listed[second]["path"] == "/fapi/"
    assert 59 < listed[second]["expires_in_s"] <= 60
    sim_control.remove_fault(first)
    assert [fault["id"] for fault in sim_control.faults()] == [second]
    assert sim_control.clear_faults() == 1
    assert sim_control.faults() == []
