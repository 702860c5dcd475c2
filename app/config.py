"""Settings: one ``Settings`` class with nested models, read only by the composition root.

Sources, highest priority first: environment variables (``PRETRADE_GUARD_<SECTION>__<FIELD>``),
the YAML file named by ``PRETRADE_GUARD_CONFIG``, then defaults. Secrets are ``SecretStr`` and
can be given inline or as ``*_file`` paths (container secrets). Invalid configuration raises
``ConfigError`` whose message names every offending field.
"""

from __future__ import annotations

import logging
import os
import stat
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app.api.security import Scope
from app.domain import Policy, RateLimit
from app.errors import ConfigError
from app.events.model import EventType
from app.exchanges import EXCHANGES
from app.fleet.model import FleetRole, RedisLossMode

log = logging.getLogger(__name__)

CONFIG_ENV = "PRETRADE_GUARD_CONFIG"

#: Values that mean "somebody forgot to set this"; refused for every secret.
_PLACEHOLDERS = frozenset(
    {"", "changeme", "change-me", "change_me", "secret", "password", "token", "xxx", "todo"}
)
_MIN_TOKEN_LENGTH = 12


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret_file(path: Path, what: str) -> SecretStr:
    try:
        mode = path.stat().st_mode
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {what} file {path}: {exc.strerror}") from None
    if mode & stat.S_IROTH:
        log.warning("secret file is world-readable; chmod 600 it: %s", path)
    return SecretStr(value)


def _resolve_secret(
    inline: SecretStr | None, path: Path | None, what: str, *, min_length: int = 1
) -> SecretStr:
    if (inline is None) == (path is None):
        raise ValueError(f"give exactly one of {what} or {what}_file")
    secret = inline if inline is not None else _read_secret_file(path, what)  # type: ignore[arg-type]
    raw = secret.get_secret_value()
    if raw.strip().lower() in _PLACEHOLDERS or raw.startswith("<"):
        raise ValueError(f"{what} is empty or a placeholder")
    if len(raw) < min_length:
        raise ValueError(f"{what} is too short (at least {min_length} characters)")
    return secret


class ServerSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Which decisions get a log line: every one, only denials, or none.
    decision_log: Literal["all", "denied", "none"] = "all"
    #: Seconds that in-flight requests get to finish after SIGTERM.
    graceful_shutdown_s: float = Field(default=10.0, gt=0)
    #: Where the guard keeps its database (kill switches, audit log); created if missing.
    #: Mount a volume here in a container, or engaged switches do not survive a new one.
    data_dir: Path = Path("var")
    # Limits on what a client may cost (README "Limits"): bodies, slow clients, connections.
    #: Largest request body accepted (413 above it, before it is read). The default fits the
    #: largest valid batch (1000 orders) with room to spare.
    max_body_bytes: int = Field(default=1 << 20, ge=16 << 10, le=64 << 20)
    #: Seconds a client has to send a whole request body (408 after it).
    body_timeout_s: float = Field(default=10.0, gt=0, le=300)
    #: Seconds a client has to send a request's headers, from connecting or from the first
    #: byte of the request (the connection is closed after it: slowloris).
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    #: Seconds an idle keep-alive connection stays open between requests.
    keepalive_timeout_s: float = Field(default=5.0, gt=0, le=300)
    #: Open client connections at most (503 beyond); default: what the file-descriptor limit
    #: leaves after the exchange pollers' connections and the guard's own files.
    max_connections: int | None = Field(default=None, ge=16, le=1_000_000)
    #: Worker processes answering on the one port (``--workers``). More than one only in
    #: fleet mode with role ``api``: embedded mode and roles that poll run one worker.
    workers: int = Field(default=1, ge=1, le=64)


class TokenSettings(_Model):
    name: str = Field(min_length=1, max_length=64)
    token: SecretStr | None = None
    token_file: Path | None = None
    scopes: frozenset[Scope] = Field(min_length=1)

    @model_validator(mode="after")
    def _secret(self) -> Self:
        resolved = _resolve_secret(
            self.token, self.token_file, "token", min_length=_MIN_TOKEN_LENGTH
        )
        object.__setattr__(self, "token", resolved)
        return self

    def secret(self) -> str:
        if self.token is None:  # unreachable: the validator resolved it
            raise ConfigError(f"token {self.name} has no secret")
        return self.token.get_secret_value()


class AuthSettings(_Model):
    tokens: tuple[TokenSettings, ...] = ()
    #: ``/healthz`` and ``/readyz`` answer without a token.
    public_health: bool = True
    #: ``/metrics`` answers without a token (else it needs the ``read`` scope).
    public_metrics: bool = True

    @field_validator("tokens")
    @classmethod
    def _unique(cls, tokens: tuple[TokenSettings, ...]) -> tuple[TokenSettings, ...]:
        names = [t.name for t in tokens]
        if len(names) != len(set(names)):
            raise ValueError("token names must be unique")
        secrets = [t.secret() for t in tokens]
        if len(secrets) != len(set(secrets)):
            raise ValueError("two tokens share the same secret")
        return tokens


class PollSettings(_Model):
    status_interval_s: float = Field(default=2.0, gt=0)
    snapshot_interval_s: float = Field(default=5.0, gt=0)
    timeout_s: float = Field(default=3.0, gt=0)
    recv_window_ms: int = Field(default=5000, ge=1, le=60000)
    #: Each interval is drawn uniformly within +/- this fraction, so accounts do not poll in step.
    jitter_fraction: float = Field(default=0.1, ge=0, lt=1)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    #: After credentials are rejected, wait this long before trying again.
    auth_backoff_s: float = Field(default=300.0, gt=0)
    clock_resync_s: float = Field(default=300.0, gt=0)
    #: Whole exchange call, first byte to last (timeout_s bounds each read only).
    request_deadline_s: float = Field(default=10.0, gt=0, le=600)
    #: Largest exchange answer, raw and after gzip/deflate decompression (default 8 MiB).
    max_response_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=1024**3)
    #: Largest JSON array (positions, orders, symbols) accepted in one exchange answer.
    max_snapshot_rows: int = Field(default=10_000, ge=1, le=1_000_000)
    #: Longest wait a Retry-After (or a ban's "until") may impose; longer ones are capped.
    max_retry_after_s: float = Field(default=600.0, gt=0, le=86_400)


class PollOverrides(_Model):
    status_interval_s: float | None = Field(default=None, gt=0)
    snapshot_interval_s: float | None = Field(default=None, gt=0)
    timeout_s: float | None = Field(default=None, gt=0)
    recv_window_ms: int | None = Field(default=None, ge=1, le=60000)


class RateLimitSettings(_Model):
    """At most ``max_orders`` allowed orders in any ``window_s`` sliding window."""

    max_orders: int = Field(ge=1, le=1_000_000)
    window_s: float = Field(gt=0, le=3600)

    def to_domain(self) -> RateLimit:
        return RateLimit(max_orders=self.max_orders, window_s=self.window_s)


PositiveAmount = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
NonNegativeAmount = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]

#: Limit fields for which an explicit ``null`` in an account's overrides means "no limit"
#: (instead of "inherit the global value").
LIMIT_FIELDS = (
    "max_order_notional",
    "max_position_notional",
    "min_available_after_order",
    "order_rate",
    "symbol_order_rate",
)


class PolicySettings(_Model):
    max_status_age_s: float = Field(default=10.0, gt=0)
    max_snapshot_age_s: float = Field(default=15.0, gt=0)
    max_margin_ratio: Decimal = Field(default=Decimal("0.8"), gt=0, le=1)
    reduce_only_statuses: frozenset[str] = frozenset()
    default_leverage: Decimal = Field(default=Decimal(1), ge=1, le=200)
    quant_warning_fraction: Decimal = Field(default=Decimal("0.8"), gt=0, le=1)
    # Limits shared by every bot of an account (absent = no limit), in the margin asset.
    max_order_notional: PositiveAmount | None = None
    max_position_notional: PositiveAmount | None = None
    min_available_after_order: NonNegativeAmount | None = None
    order_rate: RateLimitSettings | None = None
    symbol_order_rate: RateLimitSettings | None = None
    #: Oldest symbol rules and mark prices the order checks accept (else
    #: MARKET_RULES_UNAVAILABLE).
    max_market_rules_age_s: float = Field(default=900.0, gt=0)
    max_mark_price_age_s: float = Field(default=30.0, gt=0)
    #: Count allowed orders against the exchange's own per-account order limits.
    exchange_order_rate: bool = True


class PolicyOverrides(_Model):
    max_status_age_s: float | None = Field(default=None, gt=0)
    max_snapshot_age_s: float | None = Field(default=None, gt=0)
    max_margin_ratio: Decimal | None = Field(default=None, gt=0, le=1)
    reduce_only_statuses: frozenset[str] | None = None
    default_leverage: Decimal | None = Field(default=None, ge=1, le=200)
    quant_warning_fraction: Decimal | None = Field(default=None, gt=0, le=1)
    #: For these, absent inherits the global value and an explicit ``null`` removes the limit.
    max_order_notional: PositiveAmount | None = None
    max_position_notional: PositiveAmount | None = None
    min_available_after_order: NonNegativeAmount | None = None
    order_rate: RateLimitSettings | None = None
    symbol_order_rate: RateLimitSettings | None = None
    max_market_rules_age_s: float | None = Field(default=None, gt=0)
    max_mark_price_age_s: float | None = Field(default=None, gt=0)
    exchange_order_rate: bool | None = None


class SymbolRuleSettings(_Model):
    """One symbol's order rules for an exchange without a market-rules endpoint (generic v2).

    Every part is optional; an absent part is not checked. Amounts in the symbol's units.
    """

    tick_size: PositiveAmount | None = None
    min_price: PositiveAmount | None = None
    max_price: PositiveAmount | None = None
    step_size: PositiveAmount | None = None
    min_qty: PositiveAmount | None = None
    max_qty: PositiveAmount | None = None
    min_notional: PositiveAmount | None = None


class MarketSettings(_Model):
    #: How often each exchange host's symbol rules (Binance ``exchangeInfo``) are read.
    rules_interval_s: float = Field(default=300.0, gt=0, le=3600)
    #: How often each host's mark prices are read (one all-symbols call per host).
    marks_interval_s: float = Field(default=3.0, gt=0, le=60)


class AccountSettings(_Model):
    exchange: str
    base_url: str = Field(pattern=r"^https?://[^/\s]+(/.*)?$")
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    api_secret: SecretStr | None = None
    api_secret_file: Path | None = None
    poll: PollOverrides = PollOverrides()
    policy: PolicyOverrides = PolicyOverrides()
    #: Exchange-specific options, validated by the exchange module.
    options: dict[str, Any] = Field(default_factory=dict)
    #: Symbol rules for exchanges without a market-rules endpoint (generic v2), by symbol.
    symbol_rules: dict[str, SymbolRuleSettings] = Field(default_factory=dict)

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, name: str) -> str:
        if name not in EXCHANGES:
            raise ValueError(f"unknown exchange {name!r}; known: {', '.join(sorted(EXCHANGES))}")
        return name

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        object.__setattr__(
            self, "api_key", _resolve_secret(self.api_key, self.api_key_file, "api_key")
        )
        object.__setattr__(
            self, "api_secret", _resolve_secret(self.api_secret, self.api_secret_file, "api_secret")
        )
        return self


class EventSettings(_Model):
    #: How often the watcher looks for data turning stale or fresh and for expired switches.
    watch_interval_s: float = Field(default=0.5, gt=0, le=10)
    #: Comment lines sent on an idle ``/events`` stream so proxies keep it open.
    sse_keepalive_s: float = Field(default=15.0, gt=0, le=300)
    #: Events kept for ``/events`` clients (one log shared by all); a client that falls
    #: further behind is dropped.
    sse_queue_size: int = Field(default=256, ge=1, le=100_000)
    #: Recent events kept for clients that reconnect with ``Last-Event-ID``.
    replay_size: int = Field(default=1000, ge=0, le=100_000)
    #: ``/events`` clients connected at once at most (503 beyond).
    sse_max_subscribers: int = Field(default=1000, ge=1, le=100_000)
    #: Events published within this time reach each ``/events`` client in one write, so the
    #: cost of a burst does not grow with the number of events times clients.
    sse_flush_interval_s: float = Field(default=0.1, ge=0, le=5)
    #: A client that does not take a write for this long is disconnected (counted).
    sse_send_timeout_s: float = Field(default=10.0, gt=0, le=300)


class WebhookSettings(_Model):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    url: str = Field(pattern=r"^https?://[^/\s]+(/\S*)?$")
    secret: SecretStr | None = None
    secret_file: Path | None = None
    #: Per attempt (connect, send, wait for the answer).
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_base_s: float = Field(default=0.5, gt=0, le=60)
    backoff_max_s: float = Field(default=30.0, gt=0, le=600)
    #: Events waiting for delivery; when full, the oldest is dropped (and counted).
    queue_size: int = Field(default=1000, ge=1, le=100_000)
    #: Only these event types (absent = all).
    event_types: frozenset[EventType] | None = None
    #: Only events of these accounts, plus global ones (absent = all).
    accounts: frozenset[str] | None = None

    @model_validator(mode="after")
    def _secret(self) -> Self:
        object.__setattr__(
            self,
            "secret",
            _resolve_secret(self.secret, self.secret_file, "secret", min_length=_MIN_TOKEN_LENGTH),
        )
        return self

    def secret_bytes(self) -> bytes:
        if self.secret is None:  # unreachable: the validator resolved it
            raise ConfigError(f"webhook {self.name} has no secret")
        return self.secret.get_secret_value().encode()


class BudgetSettings(_Model):
    #: Fraction of the exchange's documented weight limit the guard allows itself to use.
    weight_target_fraction: float = Field(default=0.8, gt=0, le=1)


class FleetSettings(_Model):
    """Fleet mode: several guards sharing state through Redis. Absent ``redis_url``: embedded."""

    #: ``redis://host:port/db``, ``rediss://`` (TLS) or ``unix:///path/to/socket``.
    redis_url: str | None = Field(default=None, pattern=r"^(redis|rediss|unix)://\S+$")
    redis_password: SecretStr | None = None
    redis_password_file: Path | None = None
    #: Prefix of every key and channel, so several fleets can share one Redis.
    namespace: str = Field(default="pretrade-guard", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    role: FleetRole = FleetRole.ALL
    #: Lease on one account's polling; renewed every third of it.
    lease_ttl_s: float = Field(default=5.0, ge=0.3, le=300)
    #: Redis unreachable (or no live refresher) this long: api replicas poll locally, or
    #: deny (``on_redis_loss: deny``). Must exceed ``lease_ttl_s``.
    fallback_grace_s: float = Field(default=15.0, gt=0, le=3600)
    on_redis_loss: RedisLossMode = RedisLossMode.KEEP_TRADING
    #: Bound on the order-rate round trip; no answer within it denies the order.
    rate_limit_timeout_s: float = Field(default=0.1, gt=0, le=5)
    #: Every replica re-reads the shared kill switches and limits at least this often.
    control_poll_s: float = Field(default=1.0, gt=0, le=60)
    #: Every api replica re-reads every account's stored latest state this often (recovers
    #: anything missed on the stream).
    resync_s: float = Field(default=5.0, gt=0, le=600)
    #: Entries kept on the state stream (approximate trim).
    stream_maxlen: int = Field(default=10_000, ge=100, le=10_000_000)
    #: Redis socket timeout for every command but the order-rate check.
    redis_timeout_s: float = Field(default=2.0, gt=0, le=60)
    #: Entries kept on the fleet's event stream (approximate trim): how far back
    #: ``Last-Event-ID`` can resume, and how long an undelivered webhook event survives.
    events_maxlen: int = Field(default=10_000, ge=100, le=10_000_000)
    #: Events an api process holds while Redis is unreachable (oldest dropped, counted).
    events_outbox_size: int = Field(default=1000, ge=1, le=100_000)
    #: A webhook delivery idle this long in its consumer group (its replica died or was cut
    #: off from Redis) is taken over by another replica. The replica working on it refreshes
    #: it every third of this while it retries, so only a stalled replica loses it.
    webhook_claim_idle_s: float = Field(default=30.0, ge=0.5, le=3600)
    #: Events a replica reads from each webhook's group at a time.
    webhook_batch: int = Field(default=10, ge=1, le=1000)

    @model_validator(mode="after")
    def _checks(self) -> Self:
        if self.redis_password is not None or self.redis_password_file is not None:
            object.__setattr__(
                self,
                "redis_password",
                _resolve_secret(self.redis_password, self.redis_password_file, "redis_password"),
            )
        if self.fallback_grace_s <= self.lease_ttl_s:
            raise ValueError("fallback_grace_s must be longer than lease_ttl_s")
        return self

    @property
    def enabled(self) -> bool:
        return self.redis_url is not None

    def password(self) -> str | None:
        return None if self.redis_password is None else self.redis_password.get_secret_value()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PRETRADE_GUARD_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    poll: PollSettings = PollSettings()
    policy: PolicySettings = PolicySettings()
    budget: BudgetSettings = BudgetSettings()
    markets: MarketSettings = MarketSettings()
    events: EventSettings = EventSettings()
    webhooks: tuple[WebhookSettings, ...] = ()
    fleet: FleetSettings = FleetSettings()
    accounts: dict[str, AccountSettings] = Field(default_factory=dict)

    @field_validator("accounts")
    @classmethod
    def _names(cls, accounts: dict[str, AccountSettings]) -> dict[str, AccountSettings]:
        for name in accounts:
            if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"account name {name!r}: use 1-64 letters, digits, '-' or '_'")
        return accounts

    @model_validator(mode="after")
    def _webhooks(self) -> Self:
        names = [hook.name for hook in self.webhooks]
        if len(names) != len(set(names)):
            raise ValueError("webhooks: names must be unique")
        for hook in self.webhooks:
            unknown = sorted((hook.accounts or frozenset()) - set(self.accounts))
            if unknown:
                raise ValueError(f"webhooks.{hook.name}.accounts: unknown accounts {unknown}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the YAML file (passed as init kwargs), so one value can be
        # changed per container without editing the file.
        return (env_settings, init_settings)

    def poll_for(self, account: str) -> PollSettings:
        overrides = self.accounts[account].poll.model_dump(exclude_none=True)
        return self.poll.model_copy(update=overrides)

    def policy_for(self, account: str) -> Policy:
        overrides = self.accounts[account].policy
        update = overrides.model_dump(exclude_none=True)
        for name in LIMIT_FIELDS:  # an explicit null removes a global limit
            if name in overrides.model_fields_set and getattr(overrides, name) is None:
                update[name] = None
        merged = self.policy.model_copy(update=update)
        return Policy(
            max_status_age_s=merged.max_status_age_s,
            max_snapshot_age_s=merged.max_snapshot_age_s,
            max_margin_ratio=merged.max_margin_ratio,
            reduce_only_statuses=frozenset(s.upper() for s in merged.reduce_only_statuses),
            default_leverage=merged.default_leverage,
            quant_warning_fraction=merged.quant_warning_fraction,
            max_order_notional=merged.max_order_notional,
            max_position_notional=merged.max_position_notional,
            min_available_after_order=merged.min_available_after_order,
            order_rate=_rate(merged.order_rate),
            symbol_order_rate=_rate(merged.symbol_order_rate),
            max_market_rules_age_s=merged.max_market_rules_age_s,
            max_mark_price_age_s=merged.max_mark_price_age_s,
            exchange_order_rate=merged.exchange_order_rate,
        )


def _rate(value: RateLimitSettings | dict[str, Any] | None) -> RateLimit | None:
    # model_copy(update=...) does not validate, so an override arrives as a plain dict.
    if value is None:
        return None
    if isinstance(value, dict):
        value = RateLimitSettings(**value)
    return value.to_domain()


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "invalid configuration:\n" + "\n".join(lines)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read the YAML file (``path`` or ``$PRETRADE_GUARD_CONFIG``), then the environment."""
    if path is None and os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        data = loaded or {}
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
