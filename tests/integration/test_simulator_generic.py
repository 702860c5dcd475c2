"""The generic-v2 face over real HTTP: body shapes, signing, timestamps, weight header."""

from __future__ import annotations

import httpx
import pytest

from tests.support.signing import API_KEY_HEADER, now_ms, signature, signed_get, signed_query
from tests.support.sim_control import SimControl
from tests.support.sim_scenarios import HEALTHY, RESTRICTED, THIN_MARGIN

pytestmark = pytest.mark.integration

STATUS = "/v2/private/account/apiTradingStatus"
ACCOUNT = "/v2/account"
WEIGHT = "X-MBX-USED-WEIGHT-1M"


def error_of(response: httpx.Response) -> tuple[int, int]:
    body = response.json()
    assert set(body) == {"code", "msg"}
    assert isinstance(body["msg"], str)
    return response.status_code, body["code"]


def test_time_is_public_and_close_to_real_time(exchange: httpx.Client) -> None:
    before = now_ms()
    response = exchange.get("/v2/time")
    assert response.status_code == 200
    assert before - 5 <= response.json()["serverTime"] <= now_ms() + 5


def test_trading_status_has_the_contract_fields(exchange: httpx.Client) -> None:
    response = signed_get(exchange, STATUS, HEALTHY.api_key, HEALTHY.api_secret)
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "tradingStatus": "NORMAL",
        "reason": "",
        "isMarginTradingEnabled": True,
        "isFuturesTradingEnabled": True,
        "accountLevel": "LEVEL_2",
        "canDeposit": True,
        "canWithdraw": True,
        "canTrade": True,
        "triggerCloseStatus": "ENABLED",
        "updateTime": body["updateTime"],
    }
    assert isinstance(body["updateTime"], int)
    assert body["updateTime"] > 1_700_000_000_000


def test_restricted_account_reports_its_reason(exchange: httpx.Client) -> None:
    body = signed_get(exchange, STATUS, RESTRICTED.api_key, RESTRICTED.api_secret).json()
    assert (body["tradingStatus"], body["canTrade"]) == ("RESTRICTED", False)
    assert body["reason"] == "Pending KYC review"


def test_account_snapshot_is_served_as_given(exchange: httpx.Client) -> None:
    response = signed_get(exchange, ACCOUNT, THIN_MARGIN.api_key, THIN_MARGIN.api_secret)
    assert response.status_code == 200
    body = response.json()
    assert body["accountId"] == "A-1003"
    assert body["marginBalance"] == "120.00"
    assert body["maintenanceMargin"] == "112.00"
    assert body["availableBalance"] == "3.50"
    position = body["positions"][0]
    assert (position["symbol"], position["side"], position["quantity"]) == (
        "ETHUSDT",
        "SHORT",
        "2.0",
    )
    assert position["leverage"] == 50
    assert body["openOrders"] == []
    assert set(body["funding"]) == {"lastFundingFee", "lastFundingTime", "nextFundingTime"}
    assert isinstance(body["updateTime"], int)


def test_healthy_account_has_orders_history_and_funding(exchange: httpx.Client) -> None:
    body = signed_get(exchange, ACCOUNT, HEALTHY.api_key, HEALTHY.api_secret).json()
    assert body["openOrders"][0]["orderId"] == "9001"
    assert body["orderHistory"][0]["status"] == "FILLED"
    assert body["funding"]["lastFundingFee"] == "-1.20"


def test_signature_is_case_insensitive_and_recv_window_is_signed(exchange: httpx.Client) -> None:
    payload = f"recvWindow=10000&timestamp={now_ms()}"
    upper = signature(payload, HEALTHY.api_secret).upper()
    response = exchange.get(
        f"{STATUS}?{payload}&signature={upper}", headers={API_KEY_HEADER: HEALTHY.api_key}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("api_key", "secret", "expected"),
    [
        pytest.param(HEALTHY.api_key, "wrong-secret", (401, -1022), id="bad-signature"),
        pytest.param("sim-key-nobody", "whatever", (401, -2015), id="unknown-key"),
        pytest.param("bad key!", HEALTHY.api_secret, (401, -2014), id="bad-key-format"),
        pytest.param("", HEALTHY.api_secret, (401, -2014), id="empty-key"),
    ],
)
def test_credential_errors(
    exchange: httpx.Client, api_key: str, secret: str, expected: tuple[int, int]
) -> None:
    assert error_of(signed_get(exchange, ACCOUNT, api_key, secret)) == expected


def test_missing_key_header_is_a_key_format_error(exchange: httpx.Client) -> None:
    query = signed_query(HEALTHY.api_secret)
    assert error_of(exchange.get(f"{STATUS}?{query}")) == (401, -2014)


@pytest.mark.parametrize(
    ("query", "append_signature"),
    [
        pytest.param("recvWindow=5000", True, id="no-timestamp"),
        pytest.param("timestamp={ts}", False, id="no-signature"),
        pytest.param("timestamp={ts}&signature=", False, id="empty-signature"),
        pytest.param("signature={sig}&timestamp={ts}", False, id="signature-not-last"),
        pytest.param("timestamp=soon", True, id="timestamp-not-a-number"),
        pytest.param("timestamp={ts}&timestamp={ts}", True, id="repeated-parameter"),
        pytest.param("recvWindow=60001&timestamp={ts}", True, id="recv-window-too-large"),
        pytest.param("recvWindow=abc&timestamp={ts}", True, id="recv-window-not-a-number"),
        pytest.param("timestamp={ts}&&x=1", True, id="malformed-query"),
    ],
)
def test_missing_or_malformed_parameters_are_1102(
    exchange: httpx.Client, query: str, append_signature: bool
) -> None:
    payload = query.format(ts=now_ms(), sig="0" * 64)
    if append_signature:
        payload = f"{payload}&signature={signature(payload, HEALTHY.api_secret)}"
    response = exchange.get(f"{STATUS}?{payload}", headers={API_KEY_HEADER: HEALTHY.api_key})
    assert error_of(response) == (400, -1102)


@pytest.mark.parametrize(
    ("offset_ms", "recv_window", "expected_status"),
    [
        pytest.param(-4_000, None, 200, id="4s-late-default-window"),
        pytest.param(-6_000, None, 400, id="6s-late-default-window"),
        pytest.param(-6_000, 10_000, 200, id="6s-late-10s-window"),
        pytest.param(-2_000, 1_000, 400, id="2s-late-1s-window"),
        pytest.param(900, None, 200, id="900ms-ahead"),
        pytest.param(1_500, None, 400, id="1500ms-ahead"),
        pytest.param(5_000, 60_000, 400, id="5s-ahead-big-window"),
    ],
)
def test_timestamp_window(
    exchange: httpx.Client, offset_ms: int, recv_window: int | None, expected_status: int
) -> None:
    response = signed_get(
        exchange,
        STATUS,
        HEALTHY.api_key,
        HEALTHY.api_secret,
        timestamp_ms=now_ms() + offset_ms,
        recv_window=recv_window,
    )
    assert response.status_code == expected_status
    if expected_status == 400:
        assert response.json()["code"] == -1021


def test_clock_offset_moves_server_time_and_timestamp_checks(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    sim_control.set_clock(30_000)
    assert exchange.get("/v2/time").json()["serverTime"] - now_ms() >= 29_900
    stale = signed_get(exchange, STATUS, HEALTHY.api_key, HEALTHY.api_secret)
    assert error_of(stale) == (400, -1021)
    synced = signed_get(
        exchange,
        STATUS,
        HEALTHY.api_key,
        HEALTHY.api_secret,
        timestamp_ms=now_ms() + 30_000,
    )
    assert synced.status_code == 200


def test_used_weight_header_counts_per_api_key(exchange: httpx.Client) -> None:
    def used(response: httpx.Response) -> int:
        return int(response.headers[WEIGHT])

    assert used(signed_get(exchange, STATUS, HEALTHY.api_key, HEALTHY.api_secret)) == 1
    assert used(signed_get(exchange, ACCOUNT, HEALTHY.api_key, HEALTHY.api_secret)) == 6
    assert used(signed_get(exchange, STATUS, HEALTHY.api_key, HEALTHY.api_secret)) == 7
    # Another key has its own budget; failed requests still cost weight.
    assert used(signed_get(exchange, ACCOUNT, RESTRICTED.api_key, "wrong")) == 5
    time_response = exchange.get("/v2/time", headers={API_KEY_HEADER: HEALTHY.api_key})
    assert used(time_response) == 8


def test_unknown_path_and_method_answer_exchange_errors(exchange: httpx.Client) -> None:
    missing = exchange.get("/v2/nothing")
    assert error_of(missing) == (404, -1099)
    assert WEIGHT in missing.headers
    assert exchange.post("/v2/time").status_code == 405
