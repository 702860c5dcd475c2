"""The interface between "what the guard asks an exchange" and "how one exchange answers".

An exchange module turns HTTP and parsing failures into ``app.errors.ExchangeError`` subclasses
at this boundary and nowhere else. Differences between exchanges are declared as data in
``Capabilities``; shared code never checks an exchange's name.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Protocol

import httpx
from pydantic import SecretStr

from app.domain import AccountSnapshot, AccountStatus
from app.markets.model import MarketRules, MarkPrices


@dataclass(frozen=True, slots=True)
class Credentials:
    """API key and secret; both masked in ``repr`` so they never reach a log by accident."""

    api_key: SecretStr
    api_secret: SecretStr


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an exchange protocol offers and what its calls cost, as data."""

    #: The status answer carries an account trading status string (NORMAL, RESTRICTED, ...).
    has_trading_status: bool
    #: The status answer carries quantitative-rule indicators and symbol/account locks.
    has_quant_rules: bool
    #: Request weight of one ``fetch_status`` / ``fetch_snapshot`` / ``sync_clock``.
    status_weight: int
    snapshot_weight: int
    time_weight: int
    #: Documented request-weight limit per minute (per key or per IP, see ``weight_scope``).
    weight_limit_per_minute: int
    #: "key" when the budget is per API key, "host" when every key behind one IP shares it.
    weight_scope: str
    #: Highest leverage the exchange allows; a reported leverage above it is malformed
    #: (``app.exchanges.bounds``).
    max_leverage: Decimal = Decimal(125)


@dataclass(frozen=True, slots=True)
class AnswerLimits:
    """Bounds on every exchange call of one account (``poll.*`` in the configuration)."""

    #: Whole call, connect to last byte: ``timeout_s`` bounds each read, this the total, so a
    #: body that drips one byte at a time or never ends cannot hold a poller.
    deadline_s: float = 10.0
    #: Largest answer body, raw and after gzip/deflate decompression, error answers included.
    max_bytes: int = 8 * 1024 * 1024
    #: Largest JSON array in one answer (positions, orders, symbol rows ...).
    max_rows: int = 10_000
    #: Longest wait a ``Retry-After`` (or "banned until") may impose; longer ones are capped.
    max_retry_after_s: float = 600.0


class CallGate(Protocol):
    """What a client asks before each request and reports after it.

    Implemented by the refresher (shared weight budget, metrics); exchange modules only see
    this protocol, so they never import the refresher or metrics.
    """

    async def before_request(self, weight: int) -> None:
        """Wait until ``weight`` may be spent; raise ``ExchangeRateLimited`` while banned."""

    def after_response(
        self, endpoint: str, outcome: str, elapsed_s: float, used_weight: int | None
    ) -> None:
        """Record one finished request: ``outcome`` is "ok" or an ``ErrorKind`` value."""


class MarketSource(Protocol):
    """Where an exchange host's market rules come from (one per host, shared by its accounts).

    Both fetches raise an ``ExchangeError`` subclass on any failure; never partial data.
    """

    #: Request weight of one ``fetch_rules`` / ``fetch_marks``.
    rules_weight: int
    marks_weight: int

    async def fetch_rules(self) -> MarketRules:
        """Every symbol's status, order types and filters, and the per-account order limits."""

    async def fetch_marks(self) -> MarkPrices:
        """Every symbol's mark price, in one call."""


class ExchangeClient(abc.ABC):
    """One account on one exchange. Stateless apart from the learned clock offset."""

    #: Registry name used in configuration (``exchange: generic-v2``).
    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def __init__(
        self,
        *,
        base_url: str,
        credentials: Credentials,
        http: httpx.AsyncClient,
        gate: CallGate,
        recv_window_ms: int = 5000,
        timeout_s: float = 5.0,
        options: Mapping[str, Any] | None = None,
        limits: AnswerLimits | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.limits = limits or AnswerLimits()
        self.credentials = credentials
        self.http = http
        self.gate = gate
        self.recv_window_ms = recv_window_ms
        self.timeout_s = timeout_s
        self.clock_offset_ms = 0
        #: Exchange-specific options from the account's config; validated by the subclass.
        self.options: Mapping[str, Any] = options or {}

    @abc.abstractmethod
    async def fetch_status(self) -> AccountStatus:
        """Fetch what the account may do now (trading status, permissions, rule locks).

        Raises an ``ExchangeError`` subclass on any failure; never returns partial data.
        """

    @abc.abstractmethod
    async def fetch_snapshot(self) -> AccountSnapshot:
        """Fetch balances, margin, positions, open orders and funding.

        Raises an ``ExchangeError`` subclass on any failure; never returns partial data.
        """

    @abc.abstractmethod
    async def sync_clock(self) -> int:
        """Learn ``clock_offset_ms = serverTime - localTime`` and return it."""

    def extra_weight_per_minute(self) -> float:
        """Request weight per minute spent beyond the status and snapshot refreshes at their
        base intervals (an exchange's periodic extra reads); declared to the budget."""
        return 0.0

    def market_source(self) -> MarketSource | None:
        """The host's market-rules source, read through this client; ``None`` when the
        exchange has no market-rules endpoint (symbol rules may then come from config)."""
        return None

    async def check_permissions(self) -> list[str]:
        """Start-up check of the key's permissions; returns warnings (empty when fine).

        The guard needs read-only keys: a key that can trade or withdraw is worth a loud
        warning. Exchanges without such an endpoint return no warnings.
        """
        return []
