"""The guard end to end: real simulator process, real guard process, real HTTP on loopback.

Every reason code of the public contract is produced here from exchange state, not from
hand-built objects, and flipping state in the simulator shows up in decisions.
"""

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
from tests.support.guard_fixtures import (
    BASIC_GUARD_ACCOUNTS,
    StartGuard,
    account_entry,
    codes,
    decide_until,
    ready,
)
from tests.support.processes import SimulatorProcess, free_port
from tests.support.sim_control import SimControl
from tests.support.sim_scenarios import HEALTHY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def module_guard(
    _session_simulator: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuardProcess]:
    """One guard for the module (starting one costs ~1.5 s); tests reset the simulator."""
    accounts = {
        name: account_entry(_session_simulator, acc) for name, acc in BASIC_GUARD_ACCOUNTS.items()
    }
    # alpha may still close positions while the exchange restricts it.
    accounts["alpha"]["policy"] = {"reduce_only_statuses": ["RESTRICTED"]}
    config = guard_config(accounts, port=free_port())
    guard = GuardProcess(config, tmp_path_factory.mktemp("guard")).start()
    try:
        yield guard
    finally:
        guard.stop()


@pytest.fixture
def guard(module_guard: GuardProcess, sim_control: SimControl) -> GuardProcess:
    """The module's guard, after the simulator was reset to basic.yaml and the guard saw it."""
    wait_until(lambda: ready(module_guard), timeout=10, what="guard ready after reset")
    return module_guard


@pytest.fixture
def bot(guard: GuardProcess) -> Iterator[httpx.Client]:
    with guard.client(BOT_TOKEN) as client:
        yield client


def allowed(body: dict[str, Any]) -> bool:
    return bool(body["allowed"])


BTC_BUY = {
    "account": "alpha",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "quantity": "0.01",
    "price": "60000",
}


def test_a_fundable_order_on_a_healthy_account_is_allowed(bot: httpx.Client) -> None:
    body = decide_until(bot, BTC_BUY, allowed)
    assert body["reasons"] == []
    assert body["trading_status"] == "NORMAL"
    assert body["account"] == "alpha"
    assert body["symbol"] == "BTCUSDT"
    assert 0 <= body["status_age_ms"] < 1500
    assert 0 <= body["snapshot_age_ms"] < 2000
    other = bot.get("/can-trade", params=BTC_BUY).json()
    assert other["decision_id"] != body["decision_id"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"account": "alpha"}, [], id="bare-call-healthy"),
        pytest.param(
            {"account": "bravo"},
            ["ACCOUNT_NOT_NORMAL", "TRADING_DISABLED"],
            id="restricted-and-cannot-trade",
        ),
        pytest.param({"account": "delta"}, ["TRADING_DISABLED"], id="cantrade-false"),
        pytest.param({"account": "charlie"}, ["MARGIN_RATIO_HIGH"], id="margin-ratio-0.93"),
        pytest.param(
            {**BTC_BUY, "quantity": "10"}, ["INSUFFICIENT_MARGIN"], id="needs-60000-has-7485"
        ),
        pytest.param(
            {
                "account": "alpha",
                "symbol": "BTCUSDT",
                "side": "SELL",
                "quantity": "1",
                "reduce_only": "true",
            },
            ["REDUCE_ONLY_WOULD_INCREASE"],
            id="reduce-only-larger-than-long",
        ),
        pytest.param(
            {
                "account": "alpha",
                "symbol": "BTCUSDT",
                "side": "BUY",
                "quantity": "0.1",
                "reduce_only": "true",
            },
            ["REDUCE_ONLY_WOULD_INCREASE"],
            id="reduce-only-buy-without-short",
        ),
        pytest.param(
            {"account": "alpha", "symbol": "SOLUSDT", "side": "BUY", "quantity": "1"},
            ["PRICE_UNAVAILABLE"],
            id="no-price-no-mark",
        ),
        pytest.param(
            {"account": "alpha", "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01"},
            [],
            id="mark-price-used-when-no-price",
        ),
        pytest.param(
            {
                "account": "charlie",
                "symbol": "ETHUSDT",
                "side": "BUY",
                "quantity": "1",
                "reduce_only": "true",
            },
            [],
            id="reducing-order-skips-margin-checks",
        ),
    ],
)
def test_exchange_state_becomes_reason_codes(
    bot: httpx.Client, params: dict[str, str], expected: list[str]
) -> None:
    body = decide_until(bot, params, lambda b: codes(b) == expected)
    assert body["allowed"] is (expected == [])
    for reason in body["reasons"]:
        assert reason["message"]


def test_insufficient_margin_reports_limit_and_observed(bot: httpx.Client) -> None:
    body = decide_until(bot, {**BTC_BUY, "quantity": "10"}, lambda b: not b["allowed"])
    (reason,) = body["reasons"]
    assert reason["limit"] == "7485.00"  # availableBalance
    assert reason["observed"] == "60000"  # 10 x 60000 / leverage 10


def test_restricted_flips_to_denied_and_back(bot: httpx.Client, sim_control: SimControl) -> None:
    decide_until(bot, {"account": "alpha"}, allowed)
    sim_control.patch_status(HEALTHY.id, {"tradingStatus": "RESTRICTED", "reason": "KYC check"})
    # One poll interval is 0.2 s here; a generous bound keeps the test stable on a busy CI box.
    body = decide_until(bot, {"account": "alpha"}, lambda b: not b["allowed"], timeout=3)
    assert codes(body) == ["ACCOUNT_NOT_NORMAL"]
    assert "RESTRICTED" in body["reasons"][0]["message"]
    assert "KYC check" in body["reasons"][0]["message"]
    assert body["trading_status"] == "RESTRICTED"
    # Reduce-only orders that really reduce stay allowed: alpha's policy names RESTRICTED.
    close = {
        "account": "alpha",
        "symbol": "BTCUSDT",
        "side": "SELL",
        "quantity": "0.5",
        "reduce_only": "true",
    }
    assert bot.get("/can-trade", params=close).json()["allowed"] is True
    sim_control.patch_status(HEALTHY.id, {"tradingStatus": "NORMAL", "reason": ""})
    decide_until(bot, {"account": "alpha"}, allowed, timeout=3)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param("MARGIN_CLOSED", "MARGIN_CLOSED", id="known-status"),
        pytest.param("FROZEN_BY_NEW_RULE", "FROZEN_BY_NEW_RULE", id="unknown-status-kept"),
    ],
)
def test_any_status_but_normal_denies(
    bot: httpx.Client, sim_control: SimControl, value: str, shown: str
) -> None:
    sim_control.patch_status(HEALTHY.id, {"tradingStatus": value})
    body = decide_until(bot, BTC_BUY, lambda b: b["trading_status"] == shown)
    assert codes(body) == ["ACCOUNT_NOT_NORMAL"]


def test_futures_disabled_denies(bot: httpx.Client, sim_control: SimControl) -> None:
    sim_control.patch_status(HEALTHY.id, {"isFuturesTradingEnabled": False})
    decide_until(bot, BTC_BUY, lambda b: codes(b) == ["FUTURES_DISABLED"])


def test_exchange_errors_turn_data_stale_then_recover(
    guard: GuardProcess, bot: httpx.Client, sim_control: SimControl
) -> None:
    decide_until(bot, BTC_BUY, allowed)
    sim_control.add_fault("http_5xx", api_key=HEALTHY.api_key, params={"status": 503})
    body = decide_until(bot, BTC_BUY, lambda b: codes(b) == ["STALE_DATA"], timeout=10)
    stale = body["reasons"][0]
    assert "503" in stale["message"] or "server" in stale["message"]
    assert int(stale["observed"]) > int(stale["limit"])
    wait_until(lambda: not ready(guard), timeout=5, what="readyz 503 while stale")
    readiness = httpx.get(f"{guard.base_url}/readyz").json()
    assert readiness["accounts"]["alpha"]["fresh"] is False
    assert readiness["accounts"]["alpha"]["last_error_kind"] == "server_error"
    assert readiness["accounts"]["bravo"]["fresh"] is True
    sim_control.clear_faults()
    decide_until(bot, BTC_BUY, allowed, timeout=10)
    wait_until(lambda: ready(guard), timeout=5, what="readyz 200 after recovery")


def test_wrong_credentials_give_no_data_naming_the_cause(
    simulator: SimulatorProcess, start_guard: StartGuard
) -> None:
    # Its own simulator: request counts below must not include other guards' polls.
    wrong = account_entry(simulator, HEALTHY, api_secret="not-the-right-secret")
    guard = start_guard({"ghost": wrong})
    with guard.client() as bot:
        body = decide_until(
            bot, {"account": "ghost"}, lambda b: "last error" in b["reasons"][0]["message"]
        )
    assert codes(body) == ["NO_DATA"]
    assert "-1022" in body["reasons"][0]["message"] or "1022" in body["reasons"][0]["message"]
    assert body["status_age_ms"] is None
    readiness = httpx.get(f"{guard.base_url}/readyz")
    assert readiness.status_code == 503
    assert readiness.json()["accounts"]["ghost"]["last_error_kind"] == "auth"

    # Credentials problems back off long instead of hammering the exchange. Only the refused
    # (401) requests are the ghost's: the module's guard polls the same key successfully.
    def refused() -> int:
        by_status = simulator.control.requests(api_key=HEALTHY.api_key, limit=0)
        return int(by_status["by_status"].get("401", 0))

    before = refused()
    time.sleep(1.0)  # five status intervals: a hammering poller would make ~5 requests
    assert refused() - before <= 2


def test_simulator_restart_goes_stale_then_recovers(
    simulator: SimulatorProcess, start_guard: StartGuard
) -> None:
    guard = start_guard({"alpha": account_entry(simulator, HEALTHY)}, wait_ready=True)
    with guard.client() as bot:
        decide_until(bot, BTC_BUY, allowed)
        simulator.stop()
        body = decide_until(bot, BTC_BUY, lambda b: codes(b) == ["STALE_DATA"], timeout=10)
        assert "network" in body["reasons"][0]["message"]
        assert guard.proc is not None
        assert guard.proc.poll() is None
        simulator.start()
        decide_until(bot, BTC_BUY, allowed, timeout=10)


def test_post_and_batch_answer_like_get(bot: httpx.Client) -> None:
    decide_until(bot, BTC_BUY, allowed)
    posted = bot.post("/can-trade", json={**BTC_BUY, "reduce_only": False})
    assert posted.status_code == 200
    assert posted.json()["allowed"] is True
    orders = [BTC_BUY, {"account": "bravo"}, {**BTC_BUY, "quantity": "10"}]
    batch = bot.post("/can-trade/batch", json={"orders": orders})
    assert batch.status_code == 200
    decisions = batch.json()["decisions"]
    assert [d["account"] for d in decisions] == ["alpha", "bravo", "alpha"]
    assert [codes(d) for d in decisions] == [
        [],
        ["ACCOUNT_NOT_NORMAL", "TRADING_DISABLED"],
        ["INSUFFICIENT_MARGIN"],
    ]
    assert len({d["decision_id"] for d in decisions}) == 3


@pytest.mark.parametrize(
    ("token", "params", "status", "code", "field"),
    [
        pytest.param(None, {"account": "alpha"}, 401, "UNAUTHORIZED", None, id="no-token"),
        pytest.param(
            "wrong-token-xxxxxx", {"account": "alpha"}, 401, "UNAUTHORIZED", None, id="wrong-token"
        ),
        pytest.param(
            READ_TOKEN, {"account": "alpha"}, 403, "FORBIDDEN", None, id="read-scope-cannot-decide"
        ),
        pytest.param(
            BOT_TOKEN, {"account": "nope"}, 404, "UNKNOWN_ACCOUNT", "account", id="unknown-account"
        ),
        pytest.param(BOT_TOKEN, {}, 422, "INVALID_REQUEST", "account", id="missing-account"),
        pytest.param(
            BOT_TOKEN,
            {"account": "alpha", "symbol": "BTCUSDT", "side": "HOLD"},
            422,
            "INVALID_REQUEST",
            "side",
            id="bad-side",
        ),
        pytest.param(
            BOT_TOKEN,
            {**BTC_BUY, "quantity": "-1"},
            422,
            "INVALID_REQUEST",
            "quantity",
            id="negative-quantity",
        ),
        pytest.param(
            BOT_TOKEN,
            {**BTC_BUY, "price": "abc"},
            422,
            "INVALID_REQUEST",
            "price",
            id="price-not-a-number",
        ),
        pytest.param(
            BOT_TOKEN,
            {**BTC_BUY, "quantity": "NaN"},
            422,
            "INVALID_REQUEST",
            "quantity",
            id="nan-quantity",
        ),
        pytest.param(
            BOT_TOKEN,
            {"account": "alpha", "quantity": "1"},
            422,
            "INVALID_REQUEST",
            "(request)",
            id="quantity-without-symbol",
        ),
        pytest.param(
            BOT_TOKEN,
            {"account": "alpha", "reduce_only": "maybe"},
            422,
            "INVALID_REQUEST",
            "reduce_only",
            id="reduce-only-not-bool",
        ),
    ],
)
def test_bad_requests_get_precise_errors(
    guard: GuardProcess,
    token: str | None,
    params: dict[str, str],
    status: int,
    code: str,
    field: str | None,
) -> None:
    with guard.client(token) as client:
        response = client.get("/can-trade", params=params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert field in [f["field"] for f in error["fields"]]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_batch_with_an_unknown_account_names_its_index(bot: httpx.Client) -> None:
    response = bot.post("/can-trade/batch", json={"orders": [BTC_BUY, {"account": "zzz"}]})
    assert response.status_code == 404
    assert response.json()["error"]["fields"] == [
        {"field": "orders.1.account", "message": "unknown account"}
    ]


def test_malformed_json_body_is_a_422_not_a_500(bot: httpx.Client) -> None:
    response = bot.post(
        "/can-trade", content=b'{"account": "alpha",', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


def test_accounts_show_cached_state_without_secrets(guard: GuardProcess) -> None:
    with guard.client(READ_TOKEN) as reader:
        listing = reader.get("/accounts")
        detail = reader.get("/accounts/alpha")
        missing = reader.get("/accounts/nope")
    assert listing.status_code == 200
    names = [a["account"] for a in listing.json()["accounts"]]
    assert names == ["alpha", "bravo", "charlie", "delta"]
    body = detail.json()
    assert body["status"]["trading_status"] == "NORMAL"
    assert body["snapshot"]["positions"][0]["symbol"] == "BTCUSDT"
    assert body["snapshot"]["available_balance"] == "7485.00"
    assert missing.status_code == 404
    text = listing.text + detail.text
    for secret in ("sim-secret-alpha", "sim-key-alpha", "signature"):
        assert secret not in text
    with guard.client(BOT_TOKEN) as bot_client:
        assert bot_client.get("/accounts").status_code == 403
    with guard.client(ADMIN_TOKEN) as admin:
        assert admin.get("/accounts").status_code == 200


def test_metrics_follow_decisions_and_account_state(guard: GuardProcess, bot: httpx.Client) -> None:
    decide_until(bot, BTC_BUY, allowed)
    bot.get("/can-trade", params={"account": "bravo"})
    metric = guard.metric
    assert (metric("pretrade_guard_decisions_total", {"outcome": "allowed"}) or 0) >= 1
    assert (metric("pretrade_guard_decisions_total", {"outcome": "denied"}) or 0) >= 1
    assert (
        metric("pretrade_guard_decision_reasons_total", {"reason": "ACCOUNT_NOT_NORMAL"}) or 0
    ) >= 1
    assert (
        metric(
            "pretrade_guard_account_trading_status", {"account": "bravo", "status": "RESTRICTED"}
        )
        == 1
    )
    assert (
        metric("pretrade_guard_account_trading_status", {"account": "bravo", "status": "NORMAL"})
        == 0
    )
    assert metric("pretrade_guard_account_can_trade", {"account": "delta"}) == 0
    assert metric("pretrade_guard_account_can_trade", {"account": "alpha"}) == 1
    assert metric("pretrade_guard_account_margin_ratio", {"account": "charlie"}) == pytest.approx(
        112 / 120
    )
    assert metric("pretrade_guard_account_available_balance", {"account": "alpha"}) == 7485
    assert (
        metric(
            "pretrade_guard_exchange_requests_total", {"endpoint": "/v2/account", "outcome": "ok"}
        )
        or 0
    ) >= 1
    assert (
        metric(
            "pretrade_guard_refresh_last_success_timestamp_seconds",
            {"account": "alpha", "kind": "status"},
        )
        or 0
    ) > 1.7e9
    assert (metric("pretrade_guard_exchange_used_weight") or 0) > 0
    assert metric("pretrade_guard_account_data_fresh", {"account": "alpha"}) == 1
    assert (
        metric(
            "pretrade_guard_http_requests_total",
            {"route": "/can-trade", "method": "GET", "status": "200"},
        )
        is not None
    )
    assert metric("pretrade_guard_build_info") == 1
