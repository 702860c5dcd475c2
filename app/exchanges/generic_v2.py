"""Client of the generic ``/v2`` futures account API (generic-v2-protocol.md, a contract).

Parsing follows the contract's field tables: ``tradingStatus`` and ``canTrade`` are required for
a status, ``availableBalance``, ``marginBalance``, ``maintenanceMargin`` and ``positions`` for a
snapshot; other fields are optional (zero / empty when missing) and unknown ones are ignored.
A present field of the wrong type is an error, never a default: no partial state.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import ClassVar

from app.domain import (
    AccountSnapshot,
    AccountStatus,
    Funding,
    HistoricalOrder,
    OpenOrder,
    OrderSide,
    Position,
    PositionSide,
)
from app.exchanges.base import Capabilities
from app.exchanges.jsondecode import call_without_gc
from app.exchanges.jsonfields import Fields
from app.exchanges.mbx import MbxClient
from app.exchanges.positions import unique_positions

STATUS_PATH = "/v2/private/account/apiTradingStatus"
ACCOUNT_PATH = "/v2/account"
#: The contract is silent on leverage; Binance USD-M (its closest relative) allows 125x.
MAX_LEVERAGE = Decimal(125)


def _position_side(row: Fields, key: str) -> PositionSide:
    value = row.text(key)
    if value not in PositionSide.__members__:
        raise row.error(key, "must be LONG or SHORT")
    return PositionSide(value)


def _order_side(row: Fields, key: str) -> OrderSide:
    value = row.text(key)
    if value not in OrderSide.__members__:
        raise row.error(key, "must be BUY or SELL")
    return OrderSide(value)


def parse_status(body: Fields) -> AccountStatus:
    """Map an ``apiTradingStatus`` answer; unknown ``tradingStatus`` values are kept verbatim."""
    return AccountStatus(
        trading_status=body.text("tradingStatus"),
        reason=body.opt_text("reason") or "",
        can_trade=body.flag("canTrade"),
        futures_enabled=body.opt_flag("isFuturesTradingEnabled"),
        # Every order on a futures account is a margin order: false leaves only exits.
        margin_enabled=body.opt_flag("isMarginTradingEnabled"),
        can_deposit=body.opt_flag("canDeposit"),
        can_withdraw=body.opt_flag("canWithdraw"),
        account_level=body.opt_text("accountLevel"),
        trigger_close_status=body.opt_text("triggerCloseStatus"),
        update_time_ms=body.opt_integer("updateTime"),
    )


def _position(row: Fields) -> Position:
    quantity = row.amount("quantity")
    if quantity <= 0:
        # The contract: "quantity is always positive"; direction is in ``side``.
        raise row.error("quantity", "must be positive")
    return Position(
        symbol=row.text("symbol"),
        side=_position_side(row, "side"),
        quantity=quantity,
        entry_price=row.opt_price_or_zero("entryPrice"),
        mark_price=row.opt_price("markPrice"),
        leverage=row.opt_leverage("leverage", MAX_LEVERAGE),
        notional=row.opt_amount("notional"),
        unrealized_pnl=row.opt_amount("unrealizedPnl"),
        initial_margin=row.opt_amount("initialMargin"),
        maintenance_margin=row.opt_amount("maintenanceMargin"),
        liquidation_price=row.opt_price_or_zero("liquidationPrice"),
        margin_type=row.opt_text("marginType"),
    )


def _order_quantity(row: Fields) -> Decimal:
    quantity = row.amount("quantity")
    if quantity < 0:
        raise row.error("quantity", "must not be negative")
    return quantity


def _open_order(row: Fields) -> OpenOrder:
    return OpenOrder(
        order_id=row.ident("orderId"),
        symbol=row.text("symbol"),
        side=_order_side(row, "side"),
        type=row.text("type"),
        quantity=_order_quantity(row),
        price=row.opt_price_or_zero("price"),
        reduce_only=bool(row.opt_flag("reduceOnly")),
        time_ms=row.opt_integer("time"),
    )


def _historical_order(row: Fields) -> HistoricalOrder:
    return HistoricalOrder(
        order_id=row.ident("orderId"),
        symbol=row.text("symbol"),
        side=_order_side(row, "side"),
        type=row.text("type"),
        status=row.text("status"),
        quantity=_order_quantity(row),
        price=row.opt_price_or_zero("price"),
        time_ms=row.opt_integer("time"),
    )


def _funding(body: Fields) -> Funding | None:
    funding = body.opt_child("funding")
    if funding is None:
        return None
    return Funding(
        last_funding_fee=funding.opt_amount("lastFundingFee"),
        last_funding_time_ms=funding.opt_integer("lastFundingTime"),
        next_funding_time_ms=funding.opt_integer("nextFundingTime"),
    )


def parse_account(body: Fields) -> AccountSnapshot:
    """Map a ``/v2/account`` answer onto the domain snapshot.

    Every number must lie within ``app.exchanges.bounds``, and each symbol and side may have
    one position row only; otherwise the answer is malformed.
    """
    return AccountSnapshot(
        available_balance=body.amount("availableBalance"),
        margin_balance=body.amount("marginBalance"),
        maintenance_margin=body.non_negative_amount("maintenanceMargin"),
        positions=unique_positions((row, _position(row)) for row in body.objects("positions")),
        asset=body.opt_text("asset") or "USDT",
        account_id=body.opt_text("accountId"),
        wallet_balance=body.amount_or_zero("walletBalance"),
        unrealized_pnl=body.amount_or_zero("unrealizedPnl"),
        initial_margin=body.amount_or_zero("initialMargin"),
        open_orders=tuple(_open_order(row) for row in body.objects("openOrders", required=False)),
        order_history=tuple(
            _historical_order(row) for row in body.objects("orderHistory", required=False)
        ),
        funding=_funding(body),
        update_time_ms=body.opt_integer("updateTime"),
    )


class GenericV2Client(MbxClient):
    """One account on a generic-v2 exchange (or the bundled simulator). Takes no options."""

    name: ClassVar[str] = "generic-v2"
    # Weights and the per-key budget come from generic-v2-protocol.md "Rate limits".
    capabilities: ClassVar[Capabilities] = Capabilities(
        has_trading_status=True,
        has_quant_rules=False,
        status_weight=1,
        snapshot_weight=5,
        time_weight=1,
        weight_limit_per_minute=1200,
        weight_scope="key",
        max_leverage=MAX_LEVERAGE,
    )
    time_path: ClassVar[str] = "/v2/time"
    auth_hint: ClassVar[str] = (
        "likely causes: wrong API key or secret (-1022: the signature does not match the "
        "secret); this host's IP is not allowed for the key; the key lacks permission to read "
        "the account (-2015)"
    )

    async def fetch_status(self) -> AccountStatus:
        """Fetch ``apiTradingStatus``; raises an ``ExchangeError`` subclass on any failure."""
        return parse_status(await self.get_object(STATUS_PATH, weight=1))

    async def fetch_snapshot(self) -> AccountSnapshot:
        """Fetch ``/v2/account``; raises an ``ExchangeError`` subclass on any failure.

        Parsed in a worker thread: thousands of rows must not stall other accounts' decisions.
        """
        body = await self.get_object(ACCOUNT_PATH, weight=5)
        return await asyncio.to_thread(call_without_gc, parse_account, body)
