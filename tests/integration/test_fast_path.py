"""The lean paths over real HTTP: they serve the happy path, FastAPI serves everything else,
and both leave the same trace (metrics and one decision line each)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.guard import BOT_TOKEN, GuardProcess, wait_until
from tests.support.guard_fixtures import BASIC_GUARD_ACCOUNTS, StartGuard, account_entry
from tests.support.processes import SimulatorProcess

pytestmark = pytest.mark.integration

ORDER = {
    "account": "alpha",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "quantity": "0.01",
    "price": "60000",
}
FAST = "pretrade_guard_http_fast_path_requests_total"
GET_200 = {"route": "/can-trade", "method": "GET", "status": "200"}
BATCH_200 = {"route": "/can-trade/batch", "method": "POST", "status": "200"}


def _metric(guard: GuardProcess, name: str, labels: dict[str, str] | None = None) -> float:
    return guard.metric(name, labels) or 0.0


def _decision_lines(guard: GuardProcess) -> list[dict[str, object]]:
    lines = []
    for line in guard.logs().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "decision":
            lines.append(event)
    return lines


@pytest.fixture
def guard(start_guard: StartGuard, shared_simulator: SimulatorProcess) -> GuardProcess:
    accounts = {
        name: account_entry(shared_simulator, acc) for name, acc in BASIC_GUARD_ACCOUNTS.items()
    }
    return start_guard(accounts, wait_ready=True)


def test_the_happy_path_is_served_by_the_fast_path(guard: GuardProcess) -> None:
    with guard.client(BOT_TOKEN) as bot:
        ids = [bot.get("/can-trade", params=ORDER).json()["decision_id"] for _ in range(5)]
        batch = bot.post("/can-trade/batch", json={"orders": [ORDER, {"account": "bravo"}]})
    assert batch.status_code == 200
    ids += [d["decision_id"] for d in batch.json()["decisions"]]
    assert _metric(guard, FAST) == 6  # five GETs and one batch
    assert _metric(guard, "pretrade_guard_http_requests_total", GET_200) == 5
    assert _metric(guard, "pretrade_guard_http_requests_total", BATCH_200) == 1
    # One line per decision, in the same log as every other line (written in batches).
    wait_until(
        lambda: {e["decision_id"] for e in _decision_lines(guard)} >= set(ids),
        timeout=5,
        what="decision lines",
    )
    line = next(e for e in _decision_lines(guard) if e["decision_id"] == ids[0])
    assert line["logger"] == "app.decisions"
    assert (line["account"], line["symbol"], line["side"]) == ("alpha", "BTCUSDT", "BUY")


def test_everything_else_goes_the_long_way(guard: GuardProcess) -> None:
    with guard.client(BOT_TOKEN) as bot:
        bad = bot.get("/can-trade", params={**ORDER, "side": "HOLD"})
        unknown = bot.get("/can-trade", params={**ORDER, "account": "nobody"})
        extra = bot.get("/can-trade", params={**ORDER, "colour": "red"})
        encoded = bot.get("/can-trade?account=%61lpha")
        bad_batch = bot.post("/can-trade/batch", json={"orders": [{**ORDER, "quantity": "0"}]})
    anonymous = httpx.get(f"{guard.base_url}/can-trade", params=ORDER, timeout=5)
    assert bad.status_code == 422
    assert bad.json()["error"]["fields"][0]["field"] == "side"
    assert unknown.status_code == 404
    assert extra.status_code == 422
    assert encoded.status_code == 200  # valid, but not plain: FastAPI answers it
    assert bad_batch.status_code == 422
    assert anonymous.status_code == 401
    assert _metric(guard, FAST) == 0
    assert _metric(guard, "pretrade_guard_http_requests_total", GET_200) == 1
