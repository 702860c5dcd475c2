"""Answers no real account gives are malformed on every exchange: duplicate position rows,
numbers outside the plausibility bounds (app/exchanges/bounds.py), non-ASCII digits.

Each case below was taken as real data before: the guard then allowed orders sized by it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.domain import PositionSide
from app.errors import ExchangeProtocolError
from app.exchanges.base import AnswerLimits
from app.exchanges.binance_usdm import SYMBOL_CONFIG_PATH, BinanceUsdmClient
from app.exchanges.binance_usdm_market import OPEN_ALGO_ORDERS_PATH, OPEN_ORDERS_PATH
from app.exchanges.generic_v2 import ACCOUNT_PATH, STATUS_PATH, GenericV2Client
from app.exchanges.jsonfields import Fields, parse_decimal
from tests.unit.exchanges.fakes import (
    CREDENTIALS,
    FakeExchange,
    RecordingGate,
    fixture,
    reply,
)

V3_ACCOUNT = "/fapi/v3/account"
V2_ACCOUNT = "/fapi/v2/account"


def generic_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(fixture("generic_v2", "account")["positions"][0])
    row.update(changes)
    return row


def generic_account(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = fixture("generic_v2", "account")
    body.update(changes)
    return body


def binance(http: httpx.AsyncClient, gate: RecordingGate, **options: Any) -> BinanceUsdmClient:
    return BinanceUsdmClient(
        base_url="https://fapi.binance.test",
        credentials=CREDENTIALS,
        http=http,
        gate=gate,
        options={"sapi_base_url": "https://api.binance.test", **options},
    )


def v3_row(symbol: str, side: str, amount: str, notional: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "positionSide": side,
        "positionAmt": amount,
        "notional": notional,
        "unrealizedProfit": "0",
        "initialMargin": "0",
        "maintMargin": "0",
    }


# --------------------------------------------------------------------------- duplicate rows


async def test_generic_v2_duplicate_position_rows_are_malformed(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    # The case: only the first row was used, so a 10 BTC position looked like 0.1.
    rows = [
        generic_row(symbol="BTCUSDT", side="LONG", quantity="0.1"),
        generic_row(symbol="BTCUSDT", side="LONG", quantity="10"),
    ]
    exchange.on(ACCOUNT_PATH, reply(generic_account(positions=rows)))
    with pytest.raises(
        ExchangeProtocolError, match=r"positions\[1\]\.symbol repeats the LONG position of BTCUSDT"
    ):
        await generic.fetch_snapshot()


async def test_generic_v2_hedge_mode_long_and_short_are_not_duplicates(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    rows = [
        generic_row(symbol="BTCUSDT", side="LONG", quantity="0.1"),
        generic_row(symbol="BTCUSDT", side="SHORT", quantity="10"),
    ]
    exchange.on(ACCOUNT_PATH, reply(generic_account(positions=rows)))
    snap = await generic.fetch_snapshot()
    assert [(p.side, p.quantity) for p in snap.positions] == [
        (PositionSide.LONG, Decimal("0.1")),
        (PositionSide.SHORT, Decimal(10)),
    ]


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param(
            [v3_row("BTCUSDT", "LONG", "0.1", "6000"), v3_row("BTCUSDT", "LONG", "10", "600000")],
            id="hedge-long-twice",
        ),
        pytest.param(
            [v3_row("BTCUSDT", "BOTH", "0.1", "6000"), v3_row("BTCUSDT", "BOTH", "10", "600000")],
            id="one-way-long-twice",
        ),
        pytest.param(
            [v3_row("BTCUSDT", "BOTH", "-1", "-60000"), v3_row("BTCUSDT", "SHORT", "-2", "-1")],
            id="one-way-and-hedge-short",
        ),
    ],
)
async def test_binance_duplicate_position_rows_are_malformed(
    exchange: FakeExchange, http: httpx.AsyncClient, gate: RecordingGate, rows: list[Any]
) -> None:
    exchange.on(V3_ACCOUNT, reply({**fixture("binance_usdm", "account_v3"), "positions": rows}))
    exchange.on(SYMBOL_CONFIG_PATH, reply([]))
    exchange.on(OPEN_ORDERS_PATH, reply([]))
    with pytest.raises(ExchangeProtocolError, match=r"positions\[1\]\.symbol repeats the"):
        await binance(http, gate).fetch_snapshot()


async def test_binance_hedge_mode_long_and_short_are_not_duplicates(
    exchange: FakeExchange, http: httpx.AsyncClient, gate: RecordingGate
) -> None:
    rows = [v3_row("BTCUSDT", "LONG", "0.1", "6000"), v3_row("BTCUSDT", "SHORT", "-10", "-6e5")]
    exchange.on(V3_ACCOUNT, reply({**fixture("binance_usdm", "account_v3"), "positions": rows}))
    exchange.on(SYMBOL_CONFIG_PATH, reply([]))
    exchange.on(OPEN_ORDERS_PATH, reply([]))
    exchange.on(OPEN_ALGO_ORDERS_PATH, reply([]))
    snap = await binance(http, gate).fetch_snapshot()
    assert [p.side for p in snap.positions] == [PositionSide.LONG, PositionSide.SHORT]


async def test_binance_duplicate_symbol_config_rows_are_malformed(
    exchange: FakeExchange, http: httpx.AsyncClient, gate: RecordingGate
) -> None:
    exchange.on(V3_ACCOUNT, reply(fixture("binance_usdm", "account_v3")))
    exchange.on(
        SYMBOL_CONFIG_PATH,
        reply([{"symbol": "BTCUSDT", "leverage": 100}, {"symbol": "BTCUSDT", "leverage": 2}]),
    )
    with pytest.raises(ExchangeProtocolError, match=r"\[1\]\.symbol repeats BTCUSDT"):
        await binance(http, gate).fetch_snapshot()


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"availableBalance": "1e400"}, "availableBalance is out of the plausible range"),
        ({"marginBalance": "1E+999999999"}, "marginBalance is out of the plausible range"),
        ({"availableBalance": "-1e16"}, "availableBalance is out of the plausible range"),
        ({"maintenanceMargin": "1e16"}, "maintenanceMargin is out of the plausible range"),
        ({"walletBalance": "1e20"}, "walletBalance is out of the plausible range"),
        (
            {"positions": [generic_row(leverage="1E+30")]},
            r"positions\[0\]\.leverage is out of the plausible range \[1, 125\]",
        ),
        ({"positions": [generic_row(leverage="0.5")]}, r"positions\[0\]\.leverage is out of"),
        ({"positions": [generic_row(leverage=126)]}, r"positions\[0\]\.leverage is out of"),
        ({"positions": [generic_row(markPrice="1E-30")]}, r"positions\[0\]\.markPrice is out of"),
        ({"positions": [generic_row(markPrice="0")]}, r"positions\[0\]\.markPrice is out of"),
        ({"positions": [generic_row(markPrice="1e13")]}, r"positions\[0\]\.markPrice is out of"),
        ({"positions": [generic_row(quantity="1e16")]}, r"positions\[0\]\.quantity is out of"),
        ({"positions": [generic_row(notional="1e300")]}, r"positions\[0\]\.notional is out of"),
        ({"positions": [generic_row(entryPrice="-1")]}, r"positions\[0\]\.entryPrice is out of"),
    ],
)
async def test_generic_v2_implausible_numbers_are_malformed(
    exchange: FakeExchange, generic: GenericV2Client, changes: dict[str, Any], message: str
) -> None:
    exchange.on(ACCOUNT_PATH, reply(generic_account(**changes)))
    with pytest.raises(ExchangeProtocolError, match=message):
        await generic.fetch_snapshot()


async def test_generic_v2_bounds_admit_real_extremes(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    # 125x, a sub-cent mark price, a whale's balance: all real, all kept.
    row = generic_row(leverage=125, markPrice="0.0000012", quantity="5e9", entryPrice="0")
    body = generic_account(positions=[row], availableBalance="9e14", marginBalance="-5000")
    snap = await generic_fetch(exchange, generic, body)
    position = snap.positions[0]
    assert (position.leverage, position.mark_price) == (Decimal(125), Decimal("0.0000012"))
    assert snap.available_balance == Decimal("9e14")


async def generic_fetch(exchange: FakeExchange, generic: GenericV2Client, body: Any) -> Any:
    exchange.on(ACCOUNT_PATH, reply(body))
    return await generic.fetch_snapshot()


@pytest.mark.parametrize(
    ("positions", "symbols", "message"),
    [
        (
            [v3_row("BTCUSDT", "BOTH", "1", "1E-30")],
            [],
            r"positions\[0\]\.notional gives an implausible mark price",
        ),
        (
            [v3_row("BTCUSDT", "BOTH", "1E+20", "1")],
            [],
            r"positions\[0\]\.positionAmt is out of the plausible range",
        ),
        (
            [v3_row("BTCUSDT", "BOTH", "1", "60000")],
            [{"symbol": "BTCUSDT", "leverage": "1E+30"}],
            r"\[0\]\.leverage is out of the plausible range \[1, 125\]",
        ),
    ],
)
async def test_binance_implausible_numbers_are_malformed(
    exchange: FakeExchange,
    http: httpx.AsyncClient,
    gate: RecordingGate,
    positions: list[Any],
    symbols: list[Any],
    message: str,
) -> None:
    body = {**fixture("binance_usdm", "account_v3"), "positions": positions}
    exchange.on(V3_ACCOUNT, reply(body))
    exchange.on(SYMBOL_CONFIG_PATH, reply(symbols))
    exchange.on(OPEN_ORDERS_PATH, reply([]))
    with pytest.raises(ExchangeProtocolError, match=message):
        await binance(http, gate).fetch_snapshot()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"availableBalance": "1e400"}, "availableBalance is out of the plausible range"),
        ({"totalMarginBalance": "1E+999999999"}, "totalMarginBalance is out of the plausible"),
    ],
)
async def test_binance_v2_implausible_totals_and_leverage_are_malformed(
    exchange: FakeExchange,
    http: httpx.AsyncClient,
    gate: RecordingGate,
    changes: dict[str, Any],
    message: str,
) -> None:
    exchange.on(V2_ACCOUNT, reply({**fixture("binance_usdm", "account_v2"), **changes}))
    exchange.on(OPEN_ORDERS_PATH, reply([]))
    with pytest.raises(ExchangeProtocolError, match=message):
        await binance(http, gate, snapshot_endpoint="v2").fetch_snapshot()


async def test_binance_v2_row_leverage_above_125_is_malformed(
    exchange: FakeExchange, http: httpx.AsyncClient, gate: RecordingGate
) -> None:
    body = fixture("binance_usdm", "account_v2")
    body["positions"][0]["leverage"] = "1E+30"
    exchange.on(V2_ACCOUNT, reply(body))
    exchange.on(OPEN_ORDERS_PATH, reply([]))
    with pytest.raises(ExchangeProtocolError, match=r"positions\[0\]\.leverage is out of"):
        await binance(http, gate, snapshot_endpoint="v2").fetch_snapshot()


# --------------------------------------------------------------------------- strict digits


@pytest.mark.parametrize(
    "value",
    ["١٠٠", "１００", "٣", "1٠", "1.٥", "1e٢", "𝟙"],
)
def test_non_ascii_digits_are_not_amounts(value: str) -> None:
    assert Decimal(value) is not None  # Decimal itself would read every one of these
    assert parse_decimal(value) is None


async def test_arabic_indic_balance_is_a_protocol_error(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    exchange.on(ACCOUNT_PATH, reply(generic_account(availableBalance="١٠٠")))
    with pytest.raises(ExchangeProtocolError, match="availableBalance must be a finite decimal"):
        await generic.fetch_snapshot()


@pytest.mark.parametrize(
    "value", ["١٧٦٣٧١٢٠٠٠٠٠٠", "1" * 20, "9" * 5000, Decimal("1E+999999999"), 2**70]
)
def test_integers_are_ascii_and_int64_sized(value: object) -> None:
    with pytest.raises(ExchangeProtocolError, match="updateTime must be an integer"):
        Fields.of({"updateTime": value}, endpoint="/e").integer("updateTime")


async def test_status_update_time_in_other_digits_is_a_protocol_error(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    body = fixture("generic_v2", "api_trading_status")
    body["updateTime"] = "١٧٦٣٧١٢٠٠٠٠٠٠"
    exchange.on(STATUS_PATH, reply(body))
    with pytest.raises(ExchangeProtocolError, match="updateTime must be an integer"):
        await generic.fetch_status()


# --------------------------------------------------------------------------- row cap


async def test_an_array_over_the_row_cap_is_malformed(
    exchange: FakeExchange, http: httpx.AsyncClient, gate: RecordingGate
) -> None:
    client = GenericV2Client(
        base_url="http://exchange.test",
        credentials=CREDENTIALS,
        http=http,
        gate=gate,
        limits=AnswerLimits(max_rows=3),
    )
    rows = [generic_row(symbol=f"S{i}USDT") for i in range(4)]
    exchange.on(ACCOUNT_PATH, reply(generic_account(positions=rows)))
    with pytest.raises(
        ExchangeProtocolError, match="field positions has 4 rows, over the cap of 3"
    ):
        await client.fetch_snapshot()
    exchange.on(ACCOUNT_PATH, reply(generic_account(positions=rows[:3])))
    assert len((await client.fetch_snapshot()).positions) == 3
