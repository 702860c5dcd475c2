"""``pretrade-guard check-config``: the installed command, on files an operator would write.

It must judge a file exactly as a start would (same loader, same validators, the same "no
accounts" refusal) and show what the guard would run with, without a single secret.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "pretrade-guard")
SECRETS = {
    "api_key": "key-alpha-9f8e7d6c5b4a",
    "api_secret": "secret-alpha-0a1b2c3d4e5f",
    "bravo_secret_in_file": "secret-bravo-from-file-77",
    "ops_token": "ops-token-5566778899aa",
    "bot_token": "bot-token-1122334455bb",
    "webhook_secret": "whsec-abcdef0123456789",
    "url_password": "hunter2-in-the-url",
}


def write_config(tmp_path: Path) -> Path:
    secret_file = tmp_path / "bravo.secret"
    secret_file.write_text(SECRETS["bravo_secret_in_file"], encoding="utf-8")
    secret_file.chmod(0o600)
    config: dict[str, Any] = {
        "server": {"port": 18080, "data_dir": str(tmp_path / "data")},
        "auth": {
            "tokens": [
                {"name": "ops", "token": SECRETS["ops_token"], "scopes": ["admin", "read"]},
                {"name": "bots", "token": SECRETS["bot_token"], "scopes": ["decide"]},
            ]
        },
        "policy": {"max_order_notional": "5000"},
        "accounts": {
            "alpha": {
                "exchange": "generic-v2",
                "base_url": f"http://ops:{SECRETS['url_password']}@127.0.0.1:9/api?k=v",
                "api_key": SECRETS["api_key"],
                "api_secret": SECRETS["api_secret"],
                "policy": {
                    "max_order_notional": None,
                    "order_rate": {"max_orders": 5, "window_s": 1},
                },
            },
            "bravo": {
                "exchange": "binance-usdm",
                "base_url": "https://fapi.binance.com",
                "api_key": SECRETS["api_key"] + "-b",
                "api_secret_file": str(secret_file),
            },
        },
        "webhooks": [
            {"name": "pager", "url": "https://hooks.example/x", "secret": SECRETS["webhook_secret"]}
        ],
    }
    path = tmp_path / "guard.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRETRADE_GUARD_")}
    done = subprocess.run(
        [CLI, "check-config", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for name, secret in SECRETS.items():
        assert secret not in done.stdout + done.stderr, f"{name} leaked"
    return done


def test_a_valid_file_is_summarised_without_a_secret(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    done = check(str(path))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith(f"OK: {path} is a valid configuration\n")
    rows: dict[str, list[str]] = {}  # first table row per name: accounts before policies
    for line in out.splitlines():
        if line.strip():
            rows.setdefault(line.split()[0], line.split())
    assert rows["alpha"][:3] == ["alpha", "generic-v2", "http://127.0.0.1:9/api"]
    assert rows["bravo"][:3] == ["bravo", "binance-usdm", "https://fapi.binance.com"]
    assert rows["ops"] == ["ops", "admin,read"]
    assert rows["bots"] == ["bots", "decide"]
    assert rows["pager"] == ["pager", "https://hooks.example/x", "all", "all"]

    summary = json.loads(check(str(path), "--json").stdout)
    alpha, bravo = summary["accounts"]["alpha"], summary["accounts"]["bravo"]
    # The account override removed the global order limit and set a rate; bravo inherits.
    assert alpha["policy"]["max_order_notional"] is None
    assert alpha["policy"]["order_rate"] == {"max_orders": 5, "window_s": 1.0}
    assert bravo["policy"]["max_order_notional"] == "5000"
    assert summary["tokens"] == [
        {"name": "ops", "scopes": ["admin", "read"]},
        {"name": "bots", "scopes": ["decide"]},
    ]


def test_the_file_named_by_the_environment_is_the_default(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    done = check(env={"PRETRADE_GUARD_CONFIG": str(path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"OK: {path}")


def test_an_invalid_file_is_exit_2_naming_each_field(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["accounts"]["alpha"]["api_secret"] = "changeme"
    config["accounts"]["bravo"]["exchange"] = "kraken"
    config["auth"]["tokens"][0]["scopes"] = ["root"]
    path.write_text(yaml.safe_dump(config), encoding="utf-8")

    done = check(str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[:2] == [f"INVALID: {path}", "invalid configuration:"]
    assert "  accounts.alpha: Value error, api_secret is empty or a placeholder" in lines
    assert any(
        line.startswith("  accounts.bravo.exchange: Value error, unknown exchange 'kraken'")
        for line in lines
    )
    assert any(line.startswith("  auth.tokens.0.scopes.0:") for line in lines)

    as_json = json.loads(check(str(path), "--json").stdout)
    assert as_json["valid"] is False
    assert "api_secret is empty or a placeholder" in as_json["error"]


def test_no_accounts_is_invalid_as_at_a_start(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("server: {port: 18080}\n", encoding="utf-8")
    done = check(str(path))
    assert done.returncode == 2
    assert "no accounts configured" in done.stderr
    missing = check(str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert "cannot read config file" in missing.stderr
