"""Read-only JSON views of cached account state (no secrets: the state holds none)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.domain import (
    AccountSnapshot,
    AccountState,
    AccountStatus,
    Instant,
    Policy,
    RefreshError,
)
from app.markets.store import MarketView


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def freshness(state: AccountState, policy: Policy, now: Instant) -> dict[str, Any]:
    """Ages and whether both parts are within the account's max age."""
    status_age = now.mono - state.status.received_mono if state.status else None
    snapshot_age = now.mono - state.snapshot.received_mono if state.snapshot else None
    fresh = (
        status_age is not None
        and snapshot_age is not None
        and status_age <= policy.max_status_age_s
        and snapshot_age <= policy.max_snapshot_age_s
    )
    return {
        "fresh": fresh,
        "status_age_ms": None if status_age is None else int(status_age * 1000),
        "snapshot_age_ms": None if snapshot_age is None else int(snapshot_age * 1000),
        "last_error": state.last_error,
        "last_error_kind": state.last_error_kind,
        "consecutive_failures": state.consecutive_failures,
        # Each kind of refresh on its own: null while that kind succeeds.
        "refresh_errors": {
            "status": _refresh_error(state.status_error),
            "snapshot": _refresh_error(state.snapshot_error),
        },
    }


def market_readiness(
    view: MarketView,
    accounts: list[str],
    max_rules_age_s: float,
    max_marks_age_s: float,
    now: Instant,
) -> dict[str, Any]:
    """One exchange host's market rules for ``/readyz``: ages, errors, and why it is not
    ready (symbol rules or mark prices missing or older than the strictest account policy
    allows: orders of its accounts are then denied with ``MARKET_RULES_UNAVAILABLE``)."""
    rules_age = now.mono - view.rules.received_mono if view.rules else None
    marks_age = now.mono - view.marks.received_mono if view.marks else None
    problems = []
    if rules_age is None:
        problems.append(
            _with_error("no symbol rules received yet (exchangeInfo)", view.rules_error)
        )
    elif rules_age > max_rules_age_s:
        problems.append(
            _with_error(
                f"symbol rules are {rules_age:.0f} s old (max {max_rules_age_s:g} s)",
                view.rules_error,
            )
        )
    if marks_age is None:
        problems.append(_with_error("no mark prices received yet (premiumIndex)", view.marks_error))
    elif marks_age > max_marks_age_s:
        problems.append(
            _with_error(
                f"mark prices are {marks_age:.0f} s old (max {max_marks_age_s:g} s)",
                view.marks_error,
            )
        )
    return {
        "ready": not problems,
        "reason": "; ".join(problems) or None,
        "accounts": accounts,
        "symbols": len(view.rules.value.symbols) if view.rules else 0,
        "rules_age_ms": None if rules_age is None else int(rules_age * 1000),
        "marks_age_ms": None if marks_age is None else int(marks_age * 1000),
        "rules_error": view.rules_error,
        "marks_error": view.marks_error,
    }


def _with_error(message: str, error: str | None) -> str:
    return f"{message}; last error: {error}" if error else message


def _refresh_error(error: RefreshError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {
        "last_error": error.message,
        "last_error_kind": error.kind,
        "consecutive_failures": error.consecutive_failures,
    }


def status_view(status: AccountStatus) -> dict[str, Any]:
    return {
        "trading_status": status.trading_status,
        "reason": status.reason,
        "can_trade": status.can_trade,
        "futures_enabled": status.futures_enabled,
        "margin_enabled": status.margin_enabled,
        "can_deposit": status.can_deposit,
        "can_withdraw": status.can_withdraw,
        "account_level": status.account_level,
        "trigger_close_status": status.trigger_close_status,
        "update_time_ms": status.update_time_ms,
        "indicators": [
            {
                "scope": i.scope,
                "indicator": i.indicator,
                "value": _dec(i.value),
                "trigger_value": _dec(i.trigger_value),
                "is_locked": i.is_locked,
                "planned_recover_time_ms": i.planned_recover_time_ms,
            }
            for i in status.indicators
        ],
    }


def snapshot_view(snapshot: AccountSnapshot) -> dict[str, Any]:
    return {
        "account_id": snapshot.account_id,
        "asset": snapshot.asset,
        "wallet_balance": _dec(snapshot.wallet_balance),
        "unrealized_pnl": _dec(snapshot.unrealized_pnl),
        "margin_balance": _dec(snapshot.margin_balance),
        "available_balance": _dec(snapshot.available_balance),
        "initial_margin": _dec(snapshot.initial_margin),
        "maintenance_margin": _dec(snapshot.maintenance_margin),
        "margin_ratio": _dec(snapshot.margin_ratio),
        "update_time_ms": snapshot.update_time_ms,
        "positions": [
            {
                "symbol": p.symbol,
                "side": p.side.value,
                "quantity": _dec(p.quantity),
                "entry_price": _dec(p.entry_price),
                "mark_price": _dec(p.mark_price),
                "leverage": _dec(p.leverage),
                "notional": _dec(p.notional),
                "unrealized_pnl": _dec(p.unrealized_pnl),
                "liquidation_price": _dec(p.liquidation_price),
                "margin_type": p.margin_type,
            }
            for p in snapshot.positions
        ],
        "open_orders": [
            {
                "order_id": o.order_id,
                "symbol": o.symbol,
                "side": o.side.value,
                "type": o.type,
                "price": _dec(o.price),
                "quantity": _dec(o.quantity),
                "reduce_only": o.reduce_only,
                "time_ms": o.time_ms,
                "algo": o.algo,
            }
            for o in snapshot.open_orders
        ],
        "funding": None
        if snapshot.funding is None
        else {
            "last_funding_fee": _dec(snapshot.funding.last_funding_fee),
            "last_funding_time_ms": snapshot.funding.last_funding_time_ms,
            "next_funding_time_ms": snapshot.funding.next_funding_time_ms,
        },
    }


def account_view(
    state: AccountState, policy: Policy, now: Instant, *, detail: bool
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "account": state.account,
        "exchange": state.exchange,
        **freshness(state, policy, now),
        "trading_status": state.status.value.trading_status if state.status else None,
        "can_trade": state.status.value.can_trade if state.status else None,
    }
    if state.snapshot:
        snap = state.snapshot.value
        view["available_balance"] = _dec(snap.available_balance)
        view["margin_ratio"] = _dec(snap.margin_ratio)
        view["positions"] = len(snap.positions)
    if detail:
        view["status"] = status_view(state.status.value) if state.status else None
        view["snapshot"] = snapshot_view(state.snapshot.value) if state.snapshot else None
    return view
