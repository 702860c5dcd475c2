"""The scenario file: which accounts exist, what they hold, and how strict the limits are.

A scenario is read once at start-up; ``POST /_sim/reset`` returns the simulator to it. Account
fields (``status``, ``account``, ``indicators``) are kept as plain JSON-like data and served as
given, so tests control every value the guard sees, including wrong ones.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from simulator.markets import DEFAULT_MARKETS, MarketSpec

#: What an API key may look like; anything else is answered with -2014 (bad key format).
API_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


def check_api_key(value: str) -> str:
    """``value`` if it is a plausible API key; ``ValueError`` otherwise (for validators)."""
    if not API_KEY_PATTERN.fullmatch(value):
        raise ValueError("api_key must be 1-128 characters of A-Z a-z 0-9 _ -")
    return value


class ScenarioError(Exception):
    """The scenario file cannot be read or does not describe a valid scenario."""


class BinanceConfigSpec(BaseModel):
    """An account's Binance settings: position mode, multi-assets mode, leverage per symbol."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    #: Hedge mode (LONG and SHORT positions per symbol) when true; one-way (BOTH) when false.
    dual_side_position: bool = False
    multi_assets_margin: bool = False
    #: Leverage per symbol; a symbol not listed uses its position's ``leverage``, else 20.
    leverage: dict[str, PositiveInt] = Field(default_factory=dict)


class OrderRateLimits(BaseModel):
    """Binance's per-account ``ORDERS`` limits (``exchangeInfo.rateLimits``; -1015)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_10s: PositiveInt = 300
    per_minute: PositiveInt = 1200


class AccountSpec(BaseModel):
    """One exchange account as the scenario file declares it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    api_key: str
    api_secret: str = Field(min_length=1)
    key_permissions: dict[str, Any] = Field(default_factory=dict)
    status: dict[str, Any] = Field(default_factory=dict)
    account: dict[str, Any] = Field(default_factory=dict)
    indicators: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    binance: BinanceConfigSpec = Field(default_factory=BinanceConfigSpec)

    @field_validator("key_permissions", "status", "account", "indicators", mode="before")
    @classmethod
    def _empty_when_null(cls, value: object) -> object:
        # ``status:`` with nothing after it is YAML null; treat it as "no overrides".
        return {} if value is None else value

    @field_validator("api_key")
    @classmethod
    def _key_format(cls, value: str) -> str:
        return check_api_key(value)


class Scenario(BaseModel):
    """The whole scenario file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: generic-v2 face: weight budget per API key and window.
    weight_limit_per_minute: PositiveInt = 1200
    #: Binance face: weight budget per client IP and window (shared by every key).
    binance_weight_limit_per_minute: PositiveInt = 2400
    #: Length of the rolling weight window; 60 like the exchanges, shorter in tests.
    weight_window_s: PositiveFloat = 60.0
    #: How long a client that kept calling after a 429 stays banned (418).
    ban_s: PositiveFloat = 120.0
    #: Requests arriving this soon after the first 429 get another 429, not a ban: they were
    #: already in flight when the client was told to wait.
    ban_grace_s: NonNegativeFloat = 0.5
    #: How many recent requests ``GET /_sim/requests`` keeps.
    request_log_size: PositiveInt = 1000
    #: Binance symbols and their rules (exchangeInfo, brackets, mark prices, order checks).
    markets: dict[str, MarketSpec] = Field(default_factory=lambda: dict(DEFAULT_MARKETS))
    #: More market symbols, with default rules (held/ordered/judged symbols are added too).
    symbols: tuple[str, ...] = ()
    #: Per-account ORDERS limits of the Binance face.
    order_rate_limits: OrderRateLimits = Field(default_factory=OrderRateLimits)
    #: Conditional types (STOP*, TAKE_PROFIT*, TRAILING_STOP_MARKET) on ``/fapi/v1/order``:
    #: false = accepted (the classic API); true = -4120, as Binance since 2025-12-02 (Algo
    #: Service).
    algo_service: bool = False
    #: Whether v3 account and v3 positionRisk list a symbol whose only open orders are algo
    #: orders (``openAlgoOrders``). Binance documents "symbols with a position or open orders"
    #: without saying whether algo orders count: false models the case where they do not.
    v3_lists_algo_symbols: bool = True
    accounts: list[AccountSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Scenario:
        for attribute in ("id", "api_key"):
            seen: set[str] = set()
            for spec in self.accounts:
                value = getattr(spec, attribute)
                if value in seen:
                    raise ValueError(f"duplicate account {attribute}: {value!r}")
                seen.add(value)
        return self


def parse_scenario(data: object) -> Scenario:
    """Validate already-parsed YAML/JSON data; raise ``ScenarioError`` naming every problem."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ScenarioError(f"invalid scenario: {problems}") from exc


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"scenario {path} is not valid YAML: {exc}") from exc
    try:
        return parse_scenario(data)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc.__cause__
