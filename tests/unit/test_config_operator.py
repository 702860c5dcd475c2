"""Operator configuration: account limits, webhooks and the data directory."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import load_settings
from app.domain import RateLimit
from app.errors import ConfigError
from app.events.model import EventType

ACCOUNT = {
    "exchange": "generic-v2",
    "base_url": "http://127.0.0.1:8081",
    "api_key": "key-123",
    "api_secret": "secret-123",
}
HOOK = {"name": "ops", "url": "https://hooks.example.com/guard", "secret": "whsec-0123456789"}


def load(tmp_path: Path, data: dict[str, Any]) -> Any:
    path = tmp_path / "guard.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_settings(path)


def test_limits_default_to_none_and_data_dir_to_var(tmp_path: Path) -> None:
    settings = load(tmp_path, {"accounts": {"a": ACCOUNT}})
    policy = settings.policy_for("a")
    assert (policy.max_order_notional, policy.order_rate, policy.symbol_order_rate) == (
        None,
        None,
        None,
    )
    assert settings.server.data_dir == Path("var")
    assert settings.webhooks == ()


def test_global_limits_with_account_overrides(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        {
            "policy": {
                "max_order_notional": "50000",
                "max_position_notional": "200000",
                "min_available_after_order": "100",
                "order_rate": {"max_orders": 20, "window_s": 1},
            },
            "accounts": {
                "a": ACCOUNT,
                "b": {
                    **ACCOUNT,
                    "policy": {
                        "max_order_notional": "1000",
                        "order_rate": None,  # explicit null: no limit for this account
                        "symbol_order_rate": {"max_orders": 5, "window_s": 10},
                    },
                },
            },
        },
    )
    a, b = settings.policy_for("a"), settings.policy_for("b")
    assert (a.max_order_notional, a.order_rate) == (Decimal(50000), RateLimit(20, 1.0))
    assert (a.max_position_notional, a.min_available_after_order) == (
        Decimal(200000),
        Decimal(100),
    )
    assert (b.max_order_notional, b.order_rate) == (Decimal(1000), None)
    assert b.symbol_order_rate == RateLimit(5, 10.0)
    assert b.max_position_notional == Decimal(200000)  # inherited


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        pytest.param({"max_order_notional": "0"}, "policy.max_order_notional", id="zero-notional"),
        pytest.param(
            {"min_available_after_order": "-1"},
            "policy.min_available_after_order",
            id="negative-minimum",
        ),
        pytest.param(
            {"order_rate": {"max_orders": 0, "window_s": 1}},
            "policy.order_rate.max_orders",
            id="zero-orders",
        ),
        pytest.param(
            {"order_rate": {"max_orders": 1, "window_s": 3601}},
            "policy.order_rate.window_s",
            id="window-over-an-hour",
        ),
    ],
)
def test_invalid_limits_name_the_field(tmp_path: Path, policy: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load(tmp_path, {"policy": policy, "accounts": {"a": ACCOUNT}})


def test_webhook_with_filters_and_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_text("whsec-from-a-file-123\n", encoding="utf-8")
    hook = {
        "name": "ops",
        "url": "http://127.0.0.1:9000/hook",
        "secret_file": str(secret),
        "event_types": ["DATA_STALE", "KILL_SWITCH_ENGAGED"],
        "accounts": ["a"],
    }
    settings = load(tmp_path, {"accounts": {"a": ACCOUNT}, "webhooks": [hook]})
    [loaded] = settings.webhooks
    assert loaded.secret_bytes() == b"whsec-from-a-file-123"
    assert loaded.event_types == {EventType.DATA_STALE, EventType.KILL_SWITCH_ENGAGED}
    assert (loaded.timeout_s, loaded.max_attempts) == (5.0, 5)
    assert "whsec" not in repr(settings)


@pytest.mark.parametrize(
    ("webhooks", "message"),
    [
        pytest.param([{**HOOK, "secret": "changeme"}], "placeholder", id="placeholder-secret"),
        pytest.param([{**HOOK, "secret": "short"}], "too short", id="short-secret"),
        pytest.param(
            [{k: v for k, v in HOOK.items() if k != "secret"}], "exactly one", id="no-secret"
        ),
        pytest.param([{**HOOK, "url": "ftp://x"}], "webhooks.0.url", id="bad-url"),
        pytest.param([{**HOOK, "name": "a b"}], "webhooks.0.name", id="name-not-a-label"),
        pytest.param([HOOK, HOOK], "names must be unique", id="duplicate-names"),
        pytest.param(
            [{**HOOK, "accounts": ["zzz"]}], "unknown accounts ['zzz']", id="unknown-account"
        ),
        pytest.param(
            [{**HOOK, "event_types": ["NOPE"]}], "webhooks.0.event_types", id="unknown-event-type"
        ),
        pytest.param([{**HOOK, "max_attempts": 0}], "max_attempts", id="zero-attempts"),
    ],
)
def test_invalid_webhooks_are_refused(
    tmp_path: Path, webhooks: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(tmp_path, {"accounts": {"a": ACCOUNT}, "webhooks": webhooks})
