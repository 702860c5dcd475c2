"""Configuration: bad input fails at start naming the field; secrets from files; env wins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import load_settings
from app.errors import ConfigError

ACCOUNT = {
    "exchange": "generic-v2",
    "base_url": "http://127.0.0.1:8081",
    "api_key": "key-123",
    "api_secret": "secret-123",
}


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "guard.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_demo_config_loads() -> None:
    settings = load_settings(Path(__file__).parents[2] / "deploy/demo/guard.yaml")
    assert set(settings.accounts) == {"alpha", "bravo", "charlie", "delta"}
    assert settings.policy_for("bravo").reduce_only_statuses == {"RESTRICTED"}


@pytest.mark.parametrize(
    ("account_changes", "field"),
    [
        pytest.param({"exchange": "kraken"}, "accounts.a.exchange", id="unknown-exchange"),
        pytest.param({"base_url": "ftp://x"}, "accounts.a.base_url", id="bad-url"),
        pytest.param({"api_secret": "changeme"}, "accounts.a", id="placeholder-secret"),
        pytest.param({"api_key": ""}, "accounts.a", id="empty-key"),
        pytest.param({"colour": "red"}, "accounts.a.colour", id="unknown-field"),
        pytest.param(
            {"poll": {"status_interval_s": 0}},
            "accounts.a.poll.status_interval_s",
            id="zero-interval",
        ),
        pytest.param(
            {"poll": {"recv_window_ms": 60001}},
            "accounts.a.poll.recv_window_ms",
            id="recv-window-over-max",
        ),
    ],
)
def test_invalid_account_names_the_field(
    tmp_path: Path, account_changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, {"accounts": {"a": {**ACCOUNT, **account_changes}}}))
    assert field in str(caught.value)


def test_secret_values_never_appear_in_config_errors(tmp_path: Path) -> None:
    bad = {**ACCOUNT, "api_secret": "s3cr3t-value-xyz", "base_url": "nope"}
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, {"accounts": {"a": bad}}))
    assert "s3cr3t-value-xyz" not in str(caught.value)


def test_secrets_are_read_from_files(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    secret_file = tmp_path / "secret"
    key_file.write_text("file-key-1\n")
    secret_file.write_text("file-secret-1\n")
    secret_file.chmod(0o600)
    account = {
        "exchange": "generic-v2",
        "base_url": "http://127.0.0.1:1",
        "api_key_file": str(key_file),
        "api_secret_file": str(secret_file),
    }
    settings = load_settings(write(tmp_path, {"accounts": {"a": account}}))
    acc = settings.accounts["a"]
    assert acc.api_key is not None
    assert acc.api_key.get_secret_value() == "file-key-1"
    assert acc.api_secret is not None
    assert acc.api_secret.get_secret_value() == "file-secret-1"
    assert "file-secret-1" not in repr(settings)


def test_missing_secret_file_is_a_clear_error(tmp_path: Path) -> None:
    account = {**ACCOUNT, "api_secret": None, "api_secret_file": str(tmp_path / "absent")}
    del account["api_secret"]
    with pytest.raises(ConfigError, match="cannot read api_secret file"):
        load_settings(write(tmp_path, {"accounts": {"a": account}}))


def test_both_inline_and_file_secret_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("other-secret")
    account = {**ACCOUNT, "api_secret_file": str(tmp_path / "s")}
    with pytest.raises(ConfigError, match="exactly one of api_secret or api_secret_file"):
        load_settings(write(tmp_path, {"accounts": {"a": account}}))


def test_world_readable_secret_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("file-secret-2")
    secret_file.chmod(0o644)
    account = {**ACCOUNT, "api_secret_file": str(secret_file)}
    del account["api_secret"]
    load_settings(write(tmp_path, {"accounts": {"a": account}}))
    assert "world-readable" in caplog.text
    assert "file-secret-2" not in caplog.text


@pytest.mark.parametrize(
    "token",
    [pytest.param("short", id="too-short"), pytest.param("changeme", id="placeholder")],
)
def test_weak_tokens_are_refused(tmp_path: Path, token: str) -> None:
    auth = {"tokens": [{"name": "bot", "token": token, "scopes": ["decide"]}]}
    with pytest.raises(ConfigError, match=r"auth\.tokens\.0"):
        load_settings(write(tmp_path, {"auth": auth}))


def test_unknown_scope_is_refused(tmp_path: Path) -> None:
    auth = {"tokens": [{"name": "bot", "token": "a-long-enough-token", "scopes": ["trade"]}]}
    with pytest.raises(ConfigError, match=r"auth\.tokens\.0\.scopes"):
        load_settings(write(tmp_path, {"auth": auth}))


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, {"server": {"port": 9000}, "accounts": {"a": ACCOUNT}})
    monkeypatch.setenv("PRETRADE_GUARD_SERVER__PORT", "9100")
    monkeypatch.setenv("PRETRADE_GUARD_CONFIG", str(path))
    settings = load_settings()
    assert settings.server.port == 9100
    assert "a" in settings.accounts


def test_account_overrides_merge_with_defaults(tmp_path: Path) -> None:
    data = {
        "poll": {"status_interval_s": 3, "snapshot_interval_s": 7},
        "policy": {"max_margin_ratio": "0.7"},
        "accounts": {"a": {**ACCOUNT, "poll": {"status_interval_s": 1}}},
    }
    settings = load_settings(write(tmp_path, data))
    poll = settings.poll_for("a")
    assert (poll.status_interval_s, poll.snapshot_interval_s) == (1, 7)
    assert str(settings.policy_for("a").max_margin_ratio) == "0.7"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("accounts: [1, 2", "not valid YAML", id="broken-yaml"),
        pytest.param("- a list", "mapping at the top level", id="not-a-mapping"),
    ],
)
def test_unreadable_config_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "guard.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)
