"""Value types shared by every layer: what the exchange told us, what a bot asks, what we answer.

Everything here is immutable and imports nothing of ours. Money is ``Decimal``; exchange
times are integer epoch milliseconds; data ages are measured on ``time.monotonic()``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")
_RATIO = Context(prec=28, traps=[])  # margin_ratio: overflow gives Infinity, not an error

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


class OrderPositionSide(StrEnum):
    """An order's ``positionSide``: BOTH in one-way mode, LONG or SHORT in hedge mode."""

    BOTH = "BOTH"
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
    MARGIN_TRADING_DISABLED = "MARGIN_TRADING_DISABLED"
    # Order fidelity: what the exchange would reject for the order itself.
    MARKET_RULES_UNAVAILABLE = "MARKET_RULES_UNAVAILABLE"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    SYMBOL_NOT_TRADING = "SYMBOL_NOT_TRADING"
    ORDER_TYPE_NOT_ALLOWED = "ORDER_TYPE_NOT_ALLOWED"
    POSITION_SIDE_REQUIRED = "POSITION_SIDE_REQUIRED"
    POSITION_SIDE_NOT_ALLOWED = "POSITION_SIDE_NOT_ALLOWED"
    REDUCE_ONLY_NOT_ALLOWED = "REDUCE_ONLY_NOT_ALLOWED"
    PRICE_OUT_OF_RANGE = "PRICE_OUT_OF_RANGE"
    PRICE_NOT_ON_TICK = "PRICE_NOT_ON_TICK"
    QUANTITY_OUT_OF_RANGE = "QUANTITY_OUT_OF_RANGE"
    QUANTITY_NOT_ON_STEP = "QUANTITY_NOT_ON_STEP"
    NOTIONAL_TOO_SMALL = "NOTIONAL_TOO_SMALL"
    PRICE_OUTSIDE_BAND = "PRICE_OUTSIDE_BAND"
    TOO_MANY_OPEN_ORDERS = "TOO_MANY_OPEN_ORDERS"
    POSITION_LIMIT_AT_LEVERAGE = "POSITION_LIMIT_AT_LEVERAGE"
    EXCHANGE_ORDER_RATE = "EXCHANGE_ORDER_RATE"


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
    #: ``False``: the exchange forbids margin orders on the account, which on a futures account
    #: is every order that opens or increases a position (only exits remain). Exchange modules
    #: set it only where that holds; ``None`` (not reported) passes.
    margin_enabled: bool | None = None
    can_deposit: bool | None = None
    can_withdraw: bool | None = None
    account_level: str | None = None
    trigger_close_status: str | None = None
    update_time_ms: int | None = None
    indicators: tuple[QuantIndicator, ...] = ()
    #: Position mode: True = hedge (LONG/SHORT positions), False = one-way; ``None`` when the
    #: exchange does not report it (no mode checks then).
    hedge_mode: bool | None = None
    #: Multi-assets margin mode, when reported.
    multi_assets: bool | None = None

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
    #: BOTH / LONG / SHORT as the exchange reports it (``None``: not reported).
    position_side: str | None = None
    close_position: bool = False
    #: A conditional order resting in the exchange's algo service (Binance
    #: ``openAlgoOrders``): it counts toward MAX_NUM_ORDERS and MAX_NUM_ALGO_ORDERS whatever
    #: its ``type`` says.
    algo: bool = False

    @property
    def closes(self) -> PositionSide | None:
        """The position this resting order closes when it fills: a reduce-only order, a
        close-position order, or a hedge-mode close (SELL+LONG, BUY+SHORT)."""
        if self.position_side == "LONG" and self.side is OrderSide.SELL:
            return PositionSide.LONG
        if self.position_side == "SHORT" and self.side is OrderSide.BUY:
            return PositionSide.SHORT
        if self.reduce_only or self.close_position:
            return PositionSide.LONG if self.side is OrderSide.SELL else PositionSide.SHORT
        return None


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
    #: Maximum position notional at the current leverage, per symbol (Binance
    #: ``symbolConfig.maxNotionalValue``); absent symbols are not limited by it.
    max_notional_by_symbol: Mapping[str, Decimal] = field(default_factory=dict)

    @property
    def margin_ratio(self) -> Decimal | None:
        """Maintenance / margin balance: 0 with no position, ``None`` at or past liquidation."""
        if not self.positions:
            return Decimal(0)
        if self.margin_balance <= 0:
            return None
        # No traps: absurd exchange amounts (1e999999) give Infinity, which denies, not a 500.
        return _RATIO.divide(self.maintenance_margin, self.margin_balance)

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
class RefreshError:
    """The failures of one kind of refresh (status or snapshot) since its last success."""

    message: str  # safe, human-readable; never carries secrets
    kind: str  # an ErrorKind value
    consecutive_failures: int


@dataclass(frozen=True, slots=True)
class AccountState:
    """Latest known state of one account. Replaced whole on every change, never mutated.

    ``status_error`` / ``snapshot_error`` track each kind of refresh on its own: a good
    snapshot does not clear a failing status's error. ``last_error`` and its kind are the most
    recent failure of a kind that is still failing, ``consecutive_failures`` the longer streak.
    """

    account: str
    exchange: str
    status: Observed[AccountStatus] | None = None
    snapshot: Observed[AccountSnapshot] | None = None
    last_error: str | None = None  # safe, human-readable; never carries secrets
    last_error_kind: str | None = None
    consecutive_failures: int = 0
    version: int = 0
    status_error: RefreshError | None = None
    snapshot_error: RefreshError | None = None

    def error_message(self, refresh: str) -> str | None:
        """The error of a ``refresh`` kind ("status" or "snapshot") while it is failing;
        otherwise the last error of the other kind, if that one is failing (one poller runs
        both kinds in turn: a snapshot can age while the poller keeps failing on the status).
        Every message names its kind ("status: ...")."""
        own = self.status_error if refresh == "status" else self.snapshot_error
        return own.message if own is not None else self.last_error


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Instant:
    """One reading of both clocks: wall time for exchange timestamps, monotonic for ages."""

    wall_ms: int
    mono: float

    @staticmethod
    def now() -> Instant:
        # Every decision reads the clock, and a frozen dataclass's __init__ sets each field
        # through object.__setattr__ (~0.5 us, twice the clock reads): the fields are set
        # through their slots instead, the same object (tests/unit/test_domain_instant.py).
        instant = _new_instant(Instant)
        _set_wall_ms(instant, time.time_ns() // 1_000_000)
        _set_mono(instant, time.monotonic())
        return instant


_new_instant = object.__new__
_set_wall_ms = Instant.__dict__["wall_ms"].__set__
_set_mono = Instant.__dict__["mono"].__set__


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a bot wants to do. Only ``account`` is required: a bare intent asks "may it trade".

    ``order_type`` is the exchange's type name (LIMIT, MARKET, STOP, ...); ``None`` means
    LIMIT with a price and MARKET without (see ``effective_type``).
    """

    account: str
    symbol: str | None = None
    side: OrderSide | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    reduce_only: bool = False
    order_type: str | None = None
    position_side: OrderPositionSide | None = None
    stop_price: Decimal | None = None
    time_in_force: str | None = None
    close_position: bool = False

    @property
    def effective_type(self) -> str:
        if self.order_type is not None:
            return self.order_type
        return "LIMIT" if self.price is not None else "MARKET"

    @property
    def hedge_close(self) -> PositionSide | None:
        """The hedge-mode position this order closes (SELL+LONG, BUY+SHORT), if any."""
        if self.position_side is OrderPositionSide.LONG and self.side is OrderSide.SELL:
            return PositionSide.LONG
        if self.position_side is OrderPositionSide.SHORT and self.side is OrderSide.BUY:
            return PositionSide.SHORT
        return None


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A nearby order the exchange would accept, for the bot to resend (set parts only)."""

    price: str | None = None
    stop_price: str | None = None
    quantity: str | None = None
    position_side: str | None = None
    reduce_only: bool | None = None

    def as_dict(self) -> dict[str, str | bool]:
        return {
            key: value
            for key, value in (
                ("price", self.price),
                ("stop_price", self.stop_price),
                ("quantity", self.quantity),
                ("position_side", self.position_side),
                ("reduce_only", self.reduce_only),
            )
            if value is not None
        }


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode | WarningCode
    message: str
    retry_after_ms: int | None = None
    limit: str | None = None
    observed: str | None = None
    suggestion: Suggestion | None = None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``max_orders`` allowed orders in any sliding window of ``window_s`` seconds."""

    max_orders: int
    window_s: float


@dataclass(frozen=True, slots=True)
class RateCount:
    """Allowed orders already counted in the current window (this order not included).

    ``retry_after_ms`` is when one more would fit, computed by the counter for its limit.
    """

    observed: int
    retry_after_ms: int | None = None


@dataclass(frozen=True, slots=True)
class OrderRate:
    """What the order-rate counter saw for one decision: per account and per symbol."""

    account: RateCount | None = None
    symbol: RateCount | None = None


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
    # Limits shared by every bot of the account; ``None`` means no limit.
    #: Largest notional (quantity × price) of one order.
    max_order_notional: Decimal | None = None
    #: Largest notional of the position on the order's side of a symbol after the order.
    max_position_notional: Decimal | None = None
    #: Available balance that must remain after the order's initial margin.
    min_available_after_order: Decimal | None = None
    #: Allowed orders per window for the whole account (every bot together).
    order_rate: RateLimit | None = None
    #: Allowed orders per window for one symbol of the account.
    symbol_order_rate: RateLimit | None = None
    #: Oldest symbol rules (``exchangeInfo``) and mark prices the order checks accept.
    max_market_rules_age_s: float = 900.0
    max_mark_price_age_s: float = 30.0
    #: Keep the account's bots together under the exchange's own per-account order limits
    #: (``exchangeInfo`` ``rateLimits`` of type ORDERS).
    exchange_order_rate: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: tuple[Reason, ...] = ()
    warnings: tuple[Reason, ...] = ()


# --------------------------------------------------------------------------- operator controls


class KillSwitchScope(StrEnum):
    GLOBAL = "global"
    ACCOUNT = "account"
    SYMBOL = "symbol"  # one symbol of one account


class KillSwitchMode(StrEnum):
    #: Deny every order, reduce-only included.
    HALT = "HALT"
    #: Deny every order except reduce-only orders that really shrink a position.
    REDUCE_ONLY = "REDUCE_ONLY"


@dataclass(frozen=True, slots=True)
class KillSwitch:
    """An operator's stop, engaged through the admin API; audited and persisted.

    ``account`` is set for the account and symbol scopes, ``symbol`` for the symbol scope.
    Times are wall-clock epoch milliseconds (they must survive a restart).
    """

    id: str
    scope: KillSwitchScope
    mode: KillSwitchMode
    actor: str
    reason: str
    created_at_ms: int
    account: str | None = None
    symbol: str | None = None
    expires_at_ms: int | None = None

    @classmethod
    def new(
        cls,
        *,
        scope: KillSwitchScope,
        mode: KillSwitchMode,
        actor: str,
        reason: str,
        created_at_ms: int,
        account: str | None = None,
        symbol: str | None = None,
        expires_at_ms: int | None = None,
    ) -> KillSwitch:
        """A switch being engaged now, with a fresh random id (``ks-`` and 16 hex digits)."""
        return cls(
            id=f"ks-{secrets.token_hex(8)}",
            scope=scope,
            mode=mode,
            actor=actor,
            reason=reason,
            created_at_ms=created_at_ms,
            account=account,
            symbol=symbol,
            expires_at_ms=expires_at_ms,
        )

    def active(self, now_wall_ms: int) -> bool:
        """False once the expiry has passed (an expired switch holds nothing)."""
        return self.expires_at_ms is None or now_wall_ms < self.expires_at_ms

    def covers(self, account: str, symbol: str | None) -> bool:
        """Whether the switch applies to an order of ``account`` on ``symbol``.

        A symbol switch applies only to orders naming its symbol: a bare "may it trade"
        question about the account is not about that symbol.
        """
        if self.scope is KillSwitchScope.GLOBAL:
            return True
        if self.account != account:
            return False
        return self.scope is KillSwitchScope.ACCOUNT or self.symbol == symbol

    def describe(self) -> str:
        """``account acc-1 symbol BTCUSDT``-style text naming the scope."""
        if self.scope is KillSwitchScope.GLOBAL:
            return "global"
        if self.scope is KillSwitchScope.ACCOUNT:
            return f"account {self.account}"
        return f"account {self.account} symbol {self.symbol}"
