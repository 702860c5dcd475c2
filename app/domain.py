"""Value types shared by every layer: what the exchange told us, what a bot asks, what we answer.

Everything here is immutable and imports nothing of ours. Money is ``Decimal``; exchange
times are integer epoch milliseconds; data ages are measured on ``time.monotonic()``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")

#: Key that exchanges use for an account-wide quantitative-rule lock instead of a symbol.
ACCOUNT_SCOPE = "ACCOUNT"


class TradingStatus(StrEnum):
    """Known values of the exchange's account trading status.

    The exchange may send values not listed here; they are kept verbatim as strings and
    treated as "not normal" (fail closed).
    """

    NORMAL = "NORMAL"
    CLOSED = "CLOSED"
    MARGIN_CLOSED = "MARGIN_CLOSED"
    RESTRICTED = "RESTRICTED"
    TRIGGER_CLOSED = "TRIGGER_CLOSED"
    UNDER_REVIEW = "UNDER_REVIEW"


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class PositionSide(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"


class ReasonCode(StrEnum):
    """Why an order is denied. A stable public contract: bots branch on these values.

    The same string is the API field, the log field and the metric label.
    """

    NO_DATA = "NO_DATA"
    STALE_DATA = "STALE_DATA"
    ACCOUNT_NOT_NORMAL = "ACCOUNT_NOT_NORMAL"
    TRADING_DISABLED = "TRADING_DISABLED"
    FUTURES_DISABLED = "FUTURES_DISABLED"
    ACCOUNT_LOCKED = "ACCOUNT_LOCKED"
    SYMBOL_LOCKED = "SYMBOL_LOCKED"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    MARGIN_RATIO_HIGH = "MARGIN_RATIO_HIGH"
    PRICE_UNAVAILABLE = "PRICE_UNAVAILABLE"
    REDUCE_ONLY_WOULD_INCREASE = "REDUCE_ONLY_WOULD_INCREASE"
    KILL_SWITCH = "KILL_SWITCH"
    ORDER_NOTIONAL_LIMIT = "ORDER_NOTIONAL_LIMIT"
    POSITION_LIMIT = "POSITION_LIMIT"
    ORDER_RATE_LIMIT = "ORDER_RATE_LIMIT"


class WarningCode(StrEnum):
    """Advice attached to a decision; never a deny on its own."""

    QUANT_RULE_NEAR_TRIGGER = "QUANT_RULE_NEAR_TRIGGER"


# --------------------------------------------------------------------------- exchange facts


@dataclass(frozen=True, slots=True)
class QuantIndicator:
    """One quantitative-rule indicator (Binance ``apiTradingStatus``), per symbol or account."""

    scope: str  # a symbol, or ACCOUNT_SCOPE
    indicator: str  # e.g. UFR, IFER, GCR, DR, TMV
    value: Decimal
    trigger_value: Decimal
    is_locked: bool
    planned_recover_time_ms: int | None = None


@dataclass(frozen=True, slots=True)
class AccountStatus:
    """What the exchange lets the account do right now.

    ``trading_status`` is the raw exchange string (unknown values kept), or ``None`` when the
    exchange has no such concept (Binance USD-M reports only ``canTrade``).
    """

    trading_status: str | None
    reason: str
    can_trade: bool
    #: ``None`` when the exchange did not report it (only an explicit ``False`` denies).
    futures_enabled: bool | None = None
    margin_enabled: bool | None = None
    can_deposit: bool | None = None
    can_withdraw: bool | None = None
    account_level: str | None = None
    trigger_close_status: str | None = None
    update_time_ms: int | None = None
    indicators: tuple[QuantIndicator, ...] = ()

    @property
    def is_normal(self) -> bool:
        return self.trading_status is None or self.trading_status == TradingStatus.NORMAL


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    side: PositionSide
    quantity: Decimal  # always positive
    entry_price: Decimal | None = None
    mark_price: Decimal | None = None
    leverage: Decimal | None = None
    notional: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    initial_margin: Decimal | None = None
    maintenance_margin: Decimal | None = None
    liquidation_price: Decimal | None = None
    margin_type: str | None = None


@dataclass(frozen=True, slots=True)
class OpenOrder:
    order_id: str
    symbol: str
    side: OrderSide
    type: str
    quantity: Decimal
    price: Decimal | None = None
    reduce_only: bool = False
    time_ms: int | None = None


@dataclass(frozen=True, slots=True)
class HistoricalOrder:
    order_id: str
    symbol: str
    side: OrderSide
    type: str
    status: str
    quantity: Decimal
    price: Decimal | None = None
    time_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Funding:
    last_funding_fee: Decimal | None = None
    last_funding_time_ms: int | None = None
    next_funding_time_ms: int | None = None


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """Balances, margin and positions of one account, in its margin asset."""

    available_balance: Decimal
    margin_balance: Decimal
    maintenance_margin: Decimal
    positions: tuple[Position, ...]
    asset: str = "USDT"
    account_id: str | None = None
    wallet_balance: Decimal = Decimal(0)
    unrealized_pnl: Decimal = Decimal(0)
    initial_margin: Decimal = Decimal(0)
    open_orders: tuple[OpenOrder, ...] = ()
    order_history: tuple[HistoricalOrder, ...] = ()
    funding: Funding | None = None
    update_time_ms: int | None = None
    #: Leverage per symbol when the exchange reports it apart from positions.
    leverage_by_symbol: Mapping[str, Decimal] = field(default_factory=dict)

    @property
    def margin_ratio(self) -> Decimal | None:
        """Maintenance / margin balance: 0 with no position, ``None`` at or past liquidation."""
        if not self.positions:
            return Decimal(0)
        if self.margin_balance <= 0:
            return None
        return self.maintenance_margin / self.margin_balance

    def position(self, symbol: str, side: PositionSide) -> Position | None:
        for pos in self.positions:
            if pos.symbol == symbol and pos.side is side:
                return pos
        return None

    def leverage_for(self, symbol: str) -> Decimal | None:
        for pos in self.positions:
            if pos.symbol == symbol and pos.leverage:
                return pos.leverage
        return self.leverage_by_symbol.get(symbol)

    def mark_price_for(self, symbol: str) -> Decimal | None:
        for pos in self.positions:
            if pos.symbol == symbol and pos.mark_price:
                return pos.mark_price
        return None


# --------------------------------------------------------------------------- cached state


@dataclass(frozen=True, slots=True)
class Observed(Generic[T]):
    """A value and when we received it (monotonic seconds for ages, wall ms for display)."""

    value: T
    received_mono: float
    received_wall_ms: int


@dataclass(frozen=True, slots=True)
class AccountState:
    """Latest known state of one account. Replaced whole on every change, never mutated."""

    account: str
    exchange: str
    status: Observed[AccountStatus] | None = None
    snapshot: Observed[AccountSnapshot] | None = None
    last_error: str | None = None  # safe, human-readable; never carries secrets
    last_error_kind: str | None = None
    consecutive_failures: int = 0
    version: int = 0


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Instant:
    """One reading of both clocks: wall time for exchange timestamps, monotonic for ages."""

    wall_ms: int
    mono: float

    @staticmethod
    def now() -> Instant:
        return Instant(wall_ms=time.time_ns() // 1_000_000, mono=time.monotonic())


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a bot wants to do. Only ``account`` is required: a bare intent asks "may it trade"."""

    account: str
    symbol: str | None = None
    side: OrderSide | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode | WarningCode
    message: str
    retry_after_ms: int | None = None
    limit: str | None = None
    observed: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """Per-account decision policy, built from configuration by the composition root."""

    max_status_age_s: float = 10.0
    max_snapshot_age_s: float = 15.0
    max_margin_ratio: Decimal = Decimal("0.8")
    #: Statuses (besides NORMAL) in which reduce-only orders that really reduce stay allowed.
    reduce_only_statuses: frozenset[str] = frozenset()
    #: Leverage assumed when the exchange reports none for the symbol (1 = most conservative).
    default_leverage: Decimal = Decimal(1)
    #: ``value / triggerValue`` at or above which a quant-rule indicator produces a warning.
    quant_warning_fraction: Decimal = Decimal("0.8")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: tuple[Reason, ...] = ()
    warnings: tuple[Reason, ...] = ()
