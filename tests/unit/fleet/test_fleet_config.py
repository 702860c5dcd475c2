"""Fleet configuration: absent means embedded; URL schemes, password file, roles, env vars."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import load_settings
from app.errors import ConfigError
from app.fleet.connection import safe_url
from app.fleet.model import FleetRole, Keys, RedisLossMode
from app.main import check_workers


def test_without_a_redis_url_the_guard_is_embedded() -> None:
    settings = load_settings()
    assert not settings.fleet.enabled
    assert settings.fleet.role is FleetRole.ALL


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://redis.internal:6380/1", "unix:///run/r.sock"]
)
def test_redis_url_schemes(url: str) -> None:
    settings = load_settings(fleet={"redis_url": url})
    assert settings.fleet.enabled
    assert settings.fleet.redis_url == url


def test_an_unknown_scheme_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"fleet\.redis_url"):
        load_settings(fleet={"redis_url": "http://127.0.0.1:6379"})


def test_environment_variables_set_fleet_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRETRADE_GUARD_FLEET__REDIS_URL", "redis://127.0.0.1:6379/2")
    monkeypatch.setenv("PRETRADE_GUARD_FLEET__ROLE", "refresher")
    monkeypatch.setenv("PRETRADE_GUARD_FLEET__NAMESPACE", "desk-b")
    monkeypatch.setenv("PRETRADE_GUARD_FLEET__ON_REDIS_LOSS", "deny")
    fleet = load_settings().fleet
    assert fleet.redis_url == "redis://127.0.0.1:6379/2"
    assert fleet.role is FleetRole.REFRESHER
    assert fleet.namespace == "desk-b"
    assert fleet.on_redis_loss is RedisLossMode.DENY


def test_password_from_a_file_never_shows_in_the_settings(tmp_path: Path) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text("s3cret-redis-pass\n")
    secret.chmod(0o600)
    fleet = load_settings(
        fleet={"redis_url": "redis://127.0.0.1:6379/0", "redis_password_file": str(secret)}
    ).fleet
    assert fleet.password() == "s3cret-redis-pass"
    assert "s3cret" not in repr(fleet)


def test_a_grace_shorter_than_the_lease_is_refused() -> None:
    with pytest.raises(ConfigError, match="fallback_grace_s must be longer than lease_ttl_s"):
        load_settings(
            fleet={"redis_url": "redis://h:1/0", "lease_ttl_s": 10, "fallback_grace_s": 5}
        )


def test_every_key_is_under_the_namespace() -> None:
    keys = Keys("desk-a")
    names = [
        keys.switches,
        keys.limits,
        keys.version,
        keys.released,
        keys.controls_channel,
        keys.audit,
        keys.audit_seq,
        keys.refreshers,
        keys.state_stream,
        keys.lease("acc"),
        keys.fence("acc"),
        keys.state("acc"),
        keys.rate("acc"),
        keys.rate("acc", "BTCUSDT"),
    ]
    assert all(name.startswith("desk-a:") for name in names)
    assert len(set(names)) == len(names)


def test_passwords_are_hidden_in_logged_urls() -> None:
    assert safe_url("redis://user:pw@host:6379/0") == "redis://***@host:6379/0"
    assert safe_url("unix:///run/r.sock") == "unix:///run/r.sock"


@pytest.mark.parametrize(
    ("fleet", "refusal"),
    [
        ({}, "embedded mode (no fleet.redis_url) runs one worker process"),
        ({"redis_url": "redis://127.0.0.1:6379/0"}, "fleet.role is all"),
        ({"redis_url": "redis://127.0.0.1:6379/0", "role": "refresher"}, "fleet.role is refresher"),
    ],
)
def test_several_workers_only_for_the_fleet_api_role(fleet: dict[str, str], refusal: str) -> None:
    with pytest.raises(ConfigError, match=r"server\.workers is 2") as refused:
        check_workers(load_settings(server={"workers": 2}, fleet=fleet))
    assert refusal in str(refused.value)
    check_workers(load_settings(fleet=fleet))  # one worker: every mode and role


def test_the_api_role_may_run_several_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRETRADE_GUARD_SERVER__WORKERS", "4")
    settings = load_settings(fleet={"redis_url": "redis://127.0.0.1:6379/0", "role": "api"})
    assert settings.server.workers == 4
    check_workers(settings)
