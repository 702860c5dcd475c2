"""Account limits over real HTTP: from config, changed at run time, shared order-rate budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.guard import ADMIN_TOKEN, BOT_TOKEN, GuardProcess
from tests.support.operator import running_guard
from tests.support.processes import SimulatorProcess

pytestmark = pytest.mark.integration

# basic.yaml: A-1001 ("alpha") is NORMAL, long 0.5 BTCUSDT at 10x, 7485 USDT available.
SMALL = {
    "account": "alpha",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "quantity": "0.01",
    "price": "60000",
}
BIG = {**SMALL, "quantity": "0.1"}  # 6 000 USDT notional
HUGE = {**SMALL, "quantity": "100"}  # needs far more margin than the account has


def decide(guard: GuardProcess, order: dict[str, Any]) -> dict[str, Any]:
    with guard.client(BOT_TOKEN) as bot:
        response = bot.post("/can-trade", json=order)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [reason["code"] for reason in body["reasons"]]


def test_limits_changed_at_run_time_apply_to_the_next_decision(
    shared_simulator: SimulatorProcess, tmp_path: Path
) -> None:
    # Config: 50 000 per position. Long 0.5 BTC + a 0.1 buy at 60 000 makes 36 000.
    with (
        running_guard(
            shared_simulator, tmp_path, policy={"max_position_notional": "50000"}
        ) as guard,
        guard.client(ADMIN_TOKEN) as ops,
    ):
        assert decide(guard, BIG)["allowed"]

        patched = ops.patch(
            "/admin/accounts/alpha/limits",
            json={
                "actor": "carol",
                "reason": "volatile market",
                "limits": {"max_order_notional": "5000", "max_position_notional": "30000"},
            },
        )
        assert patched.status_code == 200, patched.text
        view = patched.json()
        assert view["overridden"] is True
        assert view["limits"]["max_order_notional"] == "5000"
        assert view["configured"]["max_position_notional"] == "50000"

        denied = decide(guard, BIG)
        assert codes(denied) == ["ORDER_NOTIONAL_LIMIT", "POSITION_LIMIT"]
        notional = denied["reasons"][0]
        assert (notional["limit"], notional["observed"]) == ("5000", "6000.0")
        position = denied["reasons"][1]
        assert (position["limit"], position["observed"]) == ("30000", "36000.0")
        exit_order = {**SMALL, "side": "SELL", "quantity": "0.5", "reduce_only": True}
        assert decide(guard, exit_order)["allowed"]  # limits never trap an exit

        # PUT replaces: what it leaves out comes back from the configuration.
        put = ops.put(
            "/admin/accounts/alpha/limits",
            json={
                "actor": "carol",
                "reason": "only notional",
                "limits": {"max_order_notional": "1"},
            },
        ).json()
        assert put["limits"]["max_position_notional"] == "50000"
        assert codes(decide(guard, SMALL)) == ["ORDER_NOTIONAL_LIMIT"]

        reset = ops.delete(
            "/admin/accounts/alpha/limits", params={"actor": "carol", "reason": "calm again"}
        ).json()
        assert reset["overridden"] is False
        assert reset["limits"] == reset["configured"]
        assert decide(guard, BIG)["allowed"]

        entries = ops.get("/admin/audit").json()["entries"]
        assert [(e["action"], e["account"], e["reason"]) for e in entries] == [
            ("limits.reset", "alpha", "calm again"),
            ("limits.update", "alpha", "only notional"),
            ("limits.update", "alpha", "volatile market"),
        ]
        assert entries[2]["details"]["after"]["max_order_notional"] == "5000"

        bad = ops.patch(
            "/admin/accounts/alpha/limits",
            json={"actor": "c", "reason": "r", "limits": {"max_margin_ratio": "2"}},
        )
        assert bad.status_code == 422
        assert [f["field"] for f in bad.json()["error"]["fields"]] == ["limits.max_margin_ratio"]
        unknown = ops.get("/admin/accounts/nope/limits")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "UNKNOWN_ACCOUNT"


def test_order_rate_limit_counts_allowed_orders_of_every_bot(
    shared_simulator: SimulatorProcess, tmp_path: Path
) -> None:
    policy = {"order_rate": {"max_orders": 3, "window_s": 30}}
    with running_guard(shared_simulator, tmp_path, policy=policy) as guard:
        for _ in range(4):  # denied orders cost nothing
            assert codes(decide(guard, HUGE)) == ["INSUFFICIENT_MARGIN"]
        # Three "bots" (three connections) share the account's budget.
        for _ in range(3):
            assert decide(guard, SMALL)["allowed"]
        denied = decide(guard, SMALL)
        assert codes(denied) == ["ORDER_RATE_LIMIT"]
        reason = denied["reasons"][0]
        assert (reason["limit"], reason["observed"]) == ("3", "3")
        assert 0 < reason["retry_after_ms"] <= 30_000
        # A question without an order is not an order.
        assert decide(guard, {"account": "alpha"})["allowed"]

        # Loosened at run time: the next order fits again.
        with guard.client(ADMIN_TOKEN) as ops:
            ops.patch(
                "/admin/accounts/alpha/limits",
                json={
                    "actor": "ops",
                    "reason": "exchange raised our limit",
                    "limits": {"order_rate": {"max_orders": 5, "window_s": 30}},
                },
            ).raise_for_status()
        assert decide(guard, SMALL)["allowed"]
        assert (
            guard.metric("pretrade_guard_decision_reasons_total", {"reason": "ORDER_RATE_LIMIT"})
            == 1
        )
