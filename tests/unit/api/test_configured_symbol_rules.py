"""Generic v2 has no market-rules endpoint: symbol rules given in the account's config apply,
and symbols they do not list are not checked (README, "Order checks")."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from app.api.deps import Services
from app.config import load_settings
from app.domain import Instant
from app.main import create_app
from tests.unit.rules.builders import snapshot, status

BOT = "bot-token-0123456789"
ACCOUNT = {
    "exchange": "generic-v2",
    "base_url": "http://127.0.0.1:9",
    "api_key": "key-123",
    "api_secret": "secret-123",
}


def _app(tmp_path: Path) -> FastAPI:
    settings = load_settings(
        None,
        server={"data_dir": str(tmp_path), "decision_log": "none"},
        auth={"tokens": [{"name": "bot", "token": BOT, "scopes": ["decide"]}]},
        accounts={
            "ruled": {
                **ACCOUNT,
                "symbol_rules": {
                    "btcusdt": {"tick_size": "0.1", "step_size": "0.001", "min_notional": "5"}
                },
            },
            "free": ACCOUNT,
        },
    )
    app = create_app(settings, registry=CollectorRegistry())
    services: Services = app.state.services
    now = Instant.now()
    for name in ("ruled", "free"):
        services.store.put_status(name, status(), now)
        services.store.put_snapshot(name, snapshot(available="100000"), now)
    return app


async def _decide(app: FastAPI, **params: str) -> dict[str, object]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://guard") as client:
        answer = await client.get(
            "/can-trade", params=params, headers={"Authorization": f"Bearer {BOT}"}
        )
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


async def test_configured_rules_deny_off_tick_and_suggest(tmp_path: Path) -> None:
    app = _app(tmp_path)
    order = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.0105", "price": "60000.05"}
    body = await _decide(app, account="ruled", **order)
    assert body["allowed"] is False
    reasons = body["reasons"]
    assert isinstance(reasons, list)
    assert [r["code"] for r in reasons] == ["PRICE_NOT_ON_TICK", "QUANTITY_NOT_ON_STEP"]
    assert reasons[0]["suggestion"] == {"price": "60000"}
    assert reasons[1]["suggestion"] == {"quantity": "0.01"}
    # The same order on an account without rules, and an unlisted symbol: not checked.
    assert (await _decide(app, account="free", **order))["allowed"] is True
    other = {**order, "symbol": "ETHUSDT"}
    assert (await _decide(app, account="ruled", **other))["allowed"] is True
