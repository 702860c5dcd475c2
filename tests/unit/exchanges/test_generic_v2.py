"""Parsing of the generic-v2 contract's documented bodies, through httpx.MockTransport."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

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
from app.errors import ExchangeProtocolError
from app.exchanges.generic_v2 import ACCOUNT_PATH, STATUS_PATH, GenericV2Client
from tests.unit.exchanges.fakes import FakeExchange, RecordingGate, fixture, reply


def status_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = fixture("generic_v2", "api_trading_status")
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def account_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = fixture("generic_v2", "account")
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


async def fetch_status(exchange: FakeExchange, client: GenericV2Client, body: Any) -> AccountStatus:
    exchange.on(STATUS_PATH, reply(body))
    return await client.fetch_status()


async def fetch_snapshot(
    exchange: FakeExchange, client: GenericV2Client, body: Any
) -> AccountSnapshot:
    exchange.on(ACCOUNT_PATH, reply(body))
    return await client.fetch_snapshot()


# --------------------------------------------------------------------------- status


async def test_documented_status_maps_every_field(
    exchange: FakeExchange, generic: GenericV2Client, gate: RecordingGate
) -> None:
    status = await fetch_status(exchange, generic, status_body())
    assert status == AccountStatus(
        trading_status="NORMAL",
        reason="Account is fully funded",
        can_trade=True,
        futures_enabled=True,
        margin_enabled=True,
        can_deposit=True,
        can_withdraw=True,
        account_level="LEVEL_2",
        trigger_close_status="ENABLED",
        update_time_ms=1763712000000,
    )
    assert status.is_normal
    assert gate.weights == [1]
    assert gate.responses == [(STATUS_PATH, "ok", None)]


async def test_unknown_trading_status_is_kept_verbatim_and_not_normal(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    status = await fetch_status(exchange, generic, status_body(tradingStatus="FROZEN_BY_LAWYERS"))
    assert status.trading_status == "FROZEN_BY_LAWYERS"
    assert not status.is_normal


async def test_extra_fields_are_ignored(exchange: FakeExchange, generic: GenericV2Client) -> None:
    status = await fetch_status(
        exchange, generic, status_body(newField={"x": [1]}, vipLevel=3, canTrade=False)
    )
    assert status.can_trade is False


async def test_minimal_status_leaves_optional_fields_unknown(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    status = await fetch_status(
        exchange, generic, {"tradingStatus": "RESTRICTED", "canTrade": False}
    )
    assert status == AccountStatus(trading_status="RESTRICTED", reason="", can_trade=False)
    assert status.futures_enabled is None


@pytest.mark.parametrize("field", ["tradingStatus", "canTrade"])
async def test_missing_required_status_field_is_a_protocol_error(
    exchange: FakeExchange, generic: GenericV2Client, field: str
) -> None:
    with pytest.raises(ExchangeProtocolError, match=f"field {field} is missing") as info:
        await fetch_status(exchange, generic, status_body(**{field: ...}))
    assert info.value.endpoint == STATUS_PATH


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("tradingStatus", 1, "a string"),
        ("tradingStatus", None, "null"),
        ("canTrade", "true", "a JSON boolean"),
        ("canTrade", 1, "a JSON boolean"),
        ("isFuturesTradingEnabled", "yes", "a JSON boolean"),
        ("reason", 5, "a string"),
        ("updateTime", "soon", "an integer"),
        ("updateTime", True, "an integer"),
    ],
)
async def test_wrong_status_field_types_are_protocol_errors(
    exchange: FakeExchange, generic: GenericV2Client, field: str, value: object, expected: str
) -> None:
    with pytest.raises(ExchangeProtocolError, match=f"field {field} .*{expected}"):
        await fetch_status(exchange, generic, status_body(**{field: value}))


async def test_status_body_that_is_not_an_object_is_a_protocol_error(
    exchange: FakeExchange, generic: GenericV2Client, gate: RecordingGate
) -> None:
    with pytest.raises(ExchangeProtocolError, match="must be a JSON object, got list"):
        await fetch_status(exchange, generic, [status_body()])
    assert gate.outcomes() == ["malformed"]


# --------------------------------------------------------------------------- snapshot


async def test_documented_account_maps_every_field(
    exchange: FakeExchange, generic: GenericV2Client, gate: RecordingGate
) -> None:
    snap = await fetch_snapshot(exchange, generic, account_body())
    assert snap == AccountSnapshot(
        available_balance=Decimal("7485.00"),
        margin_balance=Decimal("10150.00"),
        maintenance_margin=Decimal("301.50"),
        positions=(
            Position(
                symbol="BTCUSDT",
                side=PositionSide.LONG,
                quantity=Decimal("0.5"),
                entry_price=Decimal("60000.0"),
                mark_price=Decimal("60300.0"),
                leverage=Decimal(10),
                notional=Decimal("30150.0"),
                unrealized_pnl=Decimal("150.00"),
                initial_margin=Decimal("3015.00"),
                maintenance_margin=Decimal("301.50"),
                liquidation_price=Decimal("54600.0"),
                margin_type="CROSSED",
            ),
        ),
        asset="USDT",
        account_id="A-1001",
        wallet_balance=Decimal("10000.00"),
        unrealized_pnl=Decimal("150.00"),
        initial_margin=Decimal("2665.00"),
        open_orders=(
            OpenOrder(
                order_id="9001",
                symbol="ETHUSDT",
                side=OrderSide.BUY,
                type="LIMIT",
                quantity=Decimal("1.0"),
                price=Decimal("3000.0"),
                reduce_only=False,
                time_ms=1763711990000,
            ),
        ),
        order_history=(
            HistoricalOrder(
                order_id="8999",
                symbol="BTCUSDT",
                side=OrderSide.BUY,
                type="MARKET",
                status="FILLED",
                quantity=Decimal("0.5"),
                price=Decimal("60000.0"),
                time_ms=1763711000000,
            ),
        ),
        funding=Funding(
            last_funding_fee=Decimal("-1.20"),
            last_funding_time_ms=1763697600000,
            next_funding_time_ms=1763726400000,
        ),
        update_time_ms=1763712000000,
    )
    assert snap.margin_ratio == Decimal("301.50") / Decimal("10150.00")
    assert gate.weights == [5]


async def test_minimal_account_defaults_to_zero_and_empty(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    body = {
        "availableBalance": "1",
        "marginBalance": "2",
        "maintenanceMargin": "0",
        "positions": [],
    }
    snap = await fetch_snapshot(exchange, generic, body)
    assert snap == AccountSnapshot(
        available_balance=Decimal(1),
        margin_balance=Decimal(2),
        maintenance_margin=Decimal(0),
        positions=(),
    )
    assert snap.funding is None
    assert snap.wallet_balance == 0


@pytest.mark.parametrize(
    "field", ["availableBalance", "marginBalance", "maintenanceMargin", "positions"]
)
async def test_missing_required_account_field_is_a_protocol_error(
    exchange: FakeExchange, generic: GenericV2Client, field: str
) -> None:
    with pytest.raises(ExchangeProtocolError, match=f"field {field} is missing"):
        await fetch_snapshot(exchange, generic, account_body(**{field: ...}))


async def test_amounts_accept_ints_and_json_numbers_exactly(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    snap = await fetch_snapshot(
        exchange, generic, account_body(availableBalance=7485, marginBalance=10150.1)
    )
    assert snap.available_balance == Decimal(7485)
    assert snap.margin_balance == Decimal("10150.1")  # no binary-float residue


@pytest.mark.parametrize(
    "value",
    [True, "NaN", "Infinity", "-Infinity", "abc", "", "1,000.00", {"v": "1"}],
    ids=repr,
)
async def test_unusable_amounts_are_protocol_errors(
    exchange: FakeExchange, generic: GenericV2Client, value: object
) -> None:
    with pytest.raises(ExchangeProtocolError, match="field marginBalance must be a finite decimal"):
        await fetch_snapshot(exchange, generic, account_body(marginBalance=value))


@pytest.mark.parametrize("value", ["-0.01", "-1e999999"])
async def test_a_negative_maintenance_margin_is_a_protocol_error(
    exchange: FakeExchange, generic: GenericV2Client, value: str
) -> None:
    # A negative requirement would make the margin ratio look safe: never accept it.
    with pytest.raises(ExchangeProtocolError, match="maintenanceMargin must not be negative"):
        await fetch_snapshot(exchange, generic, account_body(maintenanceMargin=value))


async def test_json_nan_literal_is_a_protocol_error(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    exchange.on(ACCOUNT_PATH, reply(raw=b'{"availableBalance": NaN}'))
    with pytest.raises(ExchangeProtocolError, match="not valid JSON"):
        await generic.fetch_snapshot()


@pytest.mark.parametrize(
    ("position", "message"),
    [
        ({"side": "BOTH"}, r"positions\[0\]\.side must be LONG or SHORT"),
        ({"side": "long"}, r"positions\[0\]\.side must be LONG or SHORT"),
        ({"quantity": "0"}, r"positions\[0\]\.quantity must be positive"),
        ({"quantity": "-0.5"}, r"positions\[0\]\.quantity must be positive"),
        ({"symbol": ...}, r"positions\[0\]\.symbol is missing"),
        ({"leverage": "ten"}, r"positions\[0\]\.leverage must be a finite decimal"),
    ],
)
async def test_invalid_positions_are_protocol_errors(
    exchange: FakeExchange, generic: GenericV2Client, position: dict[str, Any], message: str
) -> None:
    row = {**account_body()["positions"][0], **position}
    row = {k: v for k, v in row.items() if v is not ...}
    with pytest.raises(ExchangeProtocolError, match=message):
        await fetch_snapshot(exchange, generic, account_body(positions=[row]))


async def test_short_position_parses(exchange: FakeExchange, generic: GenericV2Client) -> None:
    row = {"symbol": "ETHUSDT", "side": "SHORT", "quantity": "2"}
    snap = await fetch_snapshot(exchange, generic, account_body(positions=[row]))
    assert snap.positions == (
        Position(symbol="ETHUSDT", side=PositionSide.SHORT, quantity=Decimal(2)),
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("positions", {"BTCUSDT": {}}, "field positions must be a JSON array, got dict"),
        ("positions", ["x"], r"positions\[0\] must be a JSON object, got str"),
        ("openOrders", [{"orderId": "1"}], r"openOrders\[0\]\.symbol is missing"),
        ("orderHistory", "none", "field orderHistory must be a JSON array"),
        ("funding", [], "funding must be a JSON object"),
        ("asset", 1, "field asset must be a string"),
        (
            "orderHistory",
            [
                {
                    "orderId": "1",
                    "symbol": "X",
                    "side": "SELL",
                    "type": "LIMIT",
                    "status": "NEW",
                    "quantity": "-1",
                }
            ],
            r"orderHistory\[0\]\.quantity must not be negative",
        ),
    ],
)
async def test_invalid_optional_sections_are_protocol_errors(
    exchange: FakeExchange, generic: GenericV2Client, field: str, value: object, message: str
) -> None:
    with pytest.raises(ExchangeProtocolError, match=message):
        await fetch_snapshot(exchange, generic, account_body(**{field: value}))


async def test_order_ids_may_be_integers_and_sides_must_be_known(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    order = {**account_body()["openOrders"][0], "orderId": 9001, "reduceOnly": True}
    snap = await fetch_snapshot(exchange, generic, account_body(openOrders=[order]))
    assert snap.open_orders[0].order_id == "9001"
    assert snap.open_orders[0].reduce_only is True
    with pytest.raises(ExchangeProtocolError, match=r"openOrders\[0\]\.side must be BUY or SELL"):
        await fetch_snapshot(
            exchange, generic, account_body(openOrders=[{**order, "side": "HOLD"}])
        )
