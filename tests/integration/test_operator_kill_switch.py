"""Kill switches over real HTTP: engaged, obeyed, persisted across a crash, released, audited."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.guard import ADMIN_TOKEN, BOT_TOKEN, READ_TOKEN, GuardProcess
from tests.support.operator import crash, running_guard, wait_ready
from tests.support.processes import SimulatorProcess

pytestmark = pytest.mark.integration

# basic.yaml: A-1001 ("alpha") is NORMAL and long 0.5 BTCUSDT.
ENTRY = {
    "account": "alpha",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "quantity": "0.01",
    "price": "60000",
}
EXIT = {
    "account": "alpha",
    "symbol": "BTCUSDT",
    "side": "SELL",
    "quantity": "0.1",
    "reduce_only": True,
}


@pytest.fixture
def guard(shared_simulator: SimulatorProcess, tmp_path: Path) -> Iterator[GuardProcess]:
    """A guard of its own, for tests that engage switches."""
    with running_guard(shared_simulator, tmp_path) as started:
        yield started


@pytest.fixture(scope="module")
def checked_guard(
    _session_simulator: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuardProcess]:
    """One guard for the tests that change nothing (auth and validation refusals)."""
    with running_guard(_session_simulator, tmp_path_factory.mktemp("guard")) as started:
        yield started


def decide(guard: GuardProcess, order: dict[str, Any]) -> dict[str, Any]:
    with guard.client(BOT_TOKEN) as bot:
        response = bot.post("/can-trade", json=order)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [reason["code"] for reason in body["reasons"]]


def admin(guard: GuardProcess) -> httpx.Client:
    return guard.client(ADMIN_TOKEN)


def test_reduce_only_switch_survives_a_crash_and_still_lets_exits_out(
    guard: GuardProcess,
) -> None:
    assert decide(guard, ENTRY)["allowed"]
    with admin(guard) as ops:
        engaged = ops.post(
            "/admin/kill-switches",
            json={
                "scope": "account",
                "account": "alpha",
                "mode": "REDUCE_ONLY",
                "actor": "alice",
                "reason": "exchange incident #42",
            },
        )
    assert engaged.status_code == 201, engaged.text
    switch = engaged.json()
    assert (switch["scope"], switch["mode"], switch["actor"]) == ("account", "REDUCE_ONLY", "alice")

    # Crash right after the acknowledgement: nothing gets a chance to flush anything.
    crash(guard)
    guard.start()
    wait_ready(guard)

    with admin(guard) as ops:
        listed = ops.get("/admin/kill-switches").json()["kill_switches"]
    assert [s["id"] for s in listed] == [switch["id"]]
    denied = decide(guard, ENTRY)
    assert codes(denied) == ["KILL_SWITCH"]
    message = denied["reasons"][0]["message"]
    assert "REDUCE_ONLY" in message
    assert "account alpha" in message
    assert "alice" in message
    assert "exchange incident #42" in message
    exit_decision = decide(guard, EXIT)
    assert exit_decision["allowed"], exit_decision
    assert guard.metric("pretrade_guard_kill_switches_engaged", {"scope": "account"}) == 1

    with admin(guard) as ops:
        released = ops.delete(
            f"/admin/kill-switches/{switch['id']}",
            params={"actor": "bob", "reason": "incident over"},
        )
        assert released.status_code == 200, released.text
        assert released.json()["released_by"] == "bob"
        assert (
            ops.delete(
                f"/admin/kill-switches/{switch['id']}", params={"actor": "bob", "reason": "again"}
            ).json()["error"]["code"]
            == "KILL_SWITCH_NOT_FOUND"
        )
        entries = ops.get("/admin/audit", params={"limit": 10}).json()["entries"]
    assert decide(guard, ENTRY)["allowed"]
    assert [(e["action"], e["actor"], e["reason"], e["principal"]) for e in entries] == [
        ("kill_switch.release", "bob", "incident over", "admin"),
        ("kill_switch.engage", "alice", "exchange incident #42", "admin"),
    ]
    assert guard.metric("pretrade_guard_kill_switches_engaged", {"scope": "account"}) == 0


def test_global_halt_stops_even_exits_and_a_symbol_switch_only_its_symbol(
    guard: GuardProcess,
) -> None:
    eth_entry = {**ENTRY, "symbol": "ETHUSDT", "price": "3000"}
    with admin(guard) as ops:
        symbol_switch = ops.post(
            "/admin/kill-switches",
            json={
                "scope": "symbol",
                "account": "alpha",
                "symbol": "btcusdt",
                "mode": "HALT",
                "actor": "risk-bot",
                "reason": "BTC circuit breaker",
            },
        ).json()
        assert symbol_switch["symbol"] == "BTCUSDT"
        assert codes(decide(guard, ENTRY)) == ["KILL_SWITCH"]
        assert codes(decide(guard, EXIT)) == ["KILL_SWITCH"]
        assert decide(guard, eth_entry)["allowed"]

        ops.post(
            "/admin/kill-switches",
            json={
                "scope": "global",
                "mode": "HALT",
                "actor": "alice",
                "reason": "all stop",
                "expires_in_s": 1.0,
            },
        ).raise_for_status()
        halted = decide(guard, eth_entry)
        assert codes(halted) == ["KILL_SWITCH"]
        assert 0 < halted["reasons"][0]["retry_after_ms"] <= 1000

        # The global switch expires by itself; the symbol switch stays.
        time.sleep(1.3)
        assert decide(guard, eth_entry)["allowed"]
        assert [s["id"] for s in ops.get("/admin/kill-switches").json()["kill_switches"]] == [
            symbol_switch["id"]
        ]
        actions = [e["action"] for e in ops.get("/admin/audit").json()["entries"]]
    assert actions[:3] == ["kill_switch.expire", "kill_switch.engage", "kill_switch.engage"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/admin/kill-switches", id="list"),
        pytest.param("POST", "/admin/kill-switches", id="engage"),
        pytest.param("DELETE", "/admin/kill-switches/ks-1", id="release"),
        pytest.param("GET", "/admin/audit", id="audit"),
        pytest.param("GET", "/admin/accounts/alpha/limits", id="get-limits"),
        pytest.param("PATCH", "/admin/accounts/alpha/limits", id="patch-limits"),
    ],
)
def test_admin_api_needs_the_admin_scope(
    checked_guard: GuardProcess, method: str, path: str
) -> None:
    for token, status in ((None, 401), (BOT_TOKEN, 403), (READ_TOKEN, 403)):
        with checked_guard.client(token) as client:
            response = client.request(method, path, json={})
        assert response.status_code == status, (token, response.text)
        assert response.json()["error"]["code"] in {"UNAUTHORIZED", "FORBIDDEN"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"scope": "account", "mode": "HALT"}, "actor", id="missing-actor"),
        pytest.param(
            {"scope": "account", "mode": "HALT", "actor": "a"}, "reason", id="missing-reason"
        ),
        pytest.param(
            {"scope": "account", "mode": "STOP", "actor": "a", "reason": "r", "account": "alpha"},
            "mode",
            id="unknown-mode",
        ),
        pytest.param(
            {"scope": "account", "mode": "HALT", "actor": "a", "reason": "r"},
            "(request)",
            id="account-scope-without-account",
        ),
        pytest.param(
            {"scope": "symbol", "mode": "HALT", "actor": "a", "reason": "r", "account": "alpha"},
            "(request)",
            id="symbol-scope-without-symbol",
        ),
        pytest.param(
            {"scope": "global", "mode": "HALT", "actor": "a", "reason": "r", "account": "alpha"},
            "(request)",
            id="global-with-account",
        ),
        pytest.param(
            {"scope": "global", "mode": "HALT", "actor": "a", "reason": "r", "expires_in_s": 0},
            "expires_in_s",
            id="zero-expiry",
        ),
        pytest.param(
            {
                "scope": "global",
                "mode": "HALT",
                "actor": "a",
                "reason": "r",
                "expires_in_s": 1e-300,
            },
            "expires_in_s",
            id="already-expired-duration",
        ),
        pytest.param(
            {"scope": "global", "mode": "HALT", "actor": "a", "reason": "r", "expires_in_s": 0.5},
            "expires_in_s",
            id="sub-second-duration",
        ),
        pytest.param(
            {"scope": "global", "mode": "HALT", "actor": "a", "reason": "r", "expires_at_ms": 1},
            "expires_at_ms",
            id="expiry-in-the-past",
        ),
        pytest.param(
            {"scope": "global", "mode": "HALT", "actor": "", "reason": "r"},
            "actor",
            id="empty-actor",
        ),
    ],
)
def test_engage_validation_names_the_field(
    checked_guard: GuardProcess, body: dict[str, Any], field: str
) -> None:
    with admin(checked_guard) as ops:
        response = ops.post("/admin/kill-switches", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert field in [f["field"] for f in error["fields"]], error


def test_unknown_account_and_missing_release_reason(checked_guard: GuardProcess) -> None:
    with admin(checked_guard) as ops:
        unknown = ops.post(
            "/admin/kill-switches",
            json={
                "scope": "account",
                "account": "nope",
                "mode": "HALT",
                "actor": "a",
                "reason": "r",
            },
        )
        no_reason = ops.delete("/admin/kill-switches/ks-1", params={"actor": "bob"})
        body_release = ops.request(
            "DELETE", "/admin/kill-switches/ks-1", json={"actor": "bob", "reason": "via body"}
        )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "UNKNOWN_ACCOUNT"
    assert no_reason.status_code == 422
    assert [f["field"] for f in no_reason.json()["error"]["fields"]] == ["reason"]
    assert body_release.status_code == 404  # well-formed, but no such switch
    assert body_release.json()["error"]["code"] == "KILL_SWITCH_NOT_FOUND"
