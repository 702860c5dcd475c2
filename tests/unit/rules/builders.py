"""Small builders for rule inputs. Every value a test relies on is passed explicitly.

Defaults describe a healthy account: NORMAL, may trade, fresh data, no positions and
10 000 USDT available. Times: data is received at mono 1000.0 and decided at ``NOW``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from app.domain import (
    AccountSnapshot,
    AccountState,
    AccountStatus,
    Instant,
    Observed,
    OrderIntent,
    OrderSide,
    Position,
    PositionSide,
    QuantIndicator,
)

ACCOUNT = "acc-1"
RECEIVED_MONO = 1000.0
#: Decision time: wall clock 2025-11-21T08:00:00Z, 1 s after the data arrived.
NOW = Instant(wall_ms=1_763_712_000_000, mono=RECEIVED_MONO + 1.0)

D = Decimal


def status(
    trading_status: str | None = "NORMAL",
    *,
    reason: str = "",
    can_trade: bool = True,
    futures_enabled: bool | None = True,
    indicators: tuple[QuantIndicator, ...] = (),
) -> AccountStatus:
    return AccountStatus(
        trading_status=trading_status,
        reason=reason,
        can_trade=can_trade,
        futures_enabled=futures_enabled,
        indicators=indicators,
    )


def position(
    symbol: str = "BTCUSDT",
    side: PositionSide = PositionSide.LONG,
    quantity: str = "1",
    *,
    mark_price: str | None = "60000",
    leverage: str | None = "10",
) -> Position:
    return Position(
        symbol=symbol,
        side=side,
        quantity=D(quantity),
        mark_price=None if mark_price is None else D(mark_price),
        leverage=None if leverage is None else D(leverage),
    )


def snapshot(
    *positions: Position,
    available: str = "10000",
    margin_balance: str = "10000",
    maintenance: str = "0",
    leverage_by_symbol: Mapping[str, Decimal] | None = None,
) -> AccountSnapshot:
    return AccountSnapshot(
        available_balance=D(available),
        margin_balance=D(margin_balance),
        maintenance_margin=D(maintenance),
        positions=positions,
        leverage_by_symbol=leverage_by_symbol or {},
    )


def state(
    account_status: AccountStatus | None = None,
    account_snapshot: AccountSnapshot | None = None,
    *,
    status_age_s: float = 1.0,
    snapshot_age_s: float = 1.0,
    last_error: str | None = None,
) -> AccountState:
    """A state whose parts were received ``*_age_s`` seconds before ``NOW``.

    Missing parts default to healthy ones; use ``AccountState`` directly for a state
    that lacks a part.
    """
    return AccountState(
        account=ACCOUNT,
        exchange="generic-v2",
        status=Observed(account_status or status(), NOW.mono - status_age_s, 0),
        snapshot=Observed(account_snapshot or snapshot(), NOW.mono - snapshot_age_s, 0),
        last_error=last_error,
    )


def order(
    symbol: str | None = "BTCUSDT",
    side: OrderSide | None = OrderSide.BUY,
    quantity: str | None = "0.01",
    *,
    price: str | None = "60000",
    reduce_only: bool = False,
) -> OrderIntent:
    return OrderIntent(
        account=ACCOUNT,
        symbol=symbol,
        side=side,
        quantity=None if quantity is None else D(quantity),
        price=None if price is None else D(price),
        reduce_only=reduce_only,
    )


def bare() -> OrderIntent:
    """An intent that only names the account: "may it trade at all?"."""
    return OrderIntent(account=ACCOUNT)


def indicator(
    scope: str = "BTCUSDT",
    name: str = "DR",
    value: str = "0.99",
    trigger: str = "0.99",
    *,
    locked: bool = True,
    recover_ms: int | None = NOW.wall_ms + 60_000,
) -> QuantIndicator:
    return QuantIndicator(
        scope=scope,
        indicator=name,
        value=D(value),
        trigger_value=D(trigger),
        is_locked=locked,
        planned_recover_time_ms=recover_ms,
    )
