"""Binance USD-M client against the documented example bodies (exchanges.md §1.6, §2.3)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.domain import (
    ACCOUNT_SCOPE,
    AccountStatus,
    OpenOrder,
    OrderSide,
    Position,
    PositionSide,
    QuantIndicator,
)
from app.errors import (
    ConfigError,
    ErrorKind,
    ExchangeAuthError,
    ExchangeProtocolError,
    ExchangeRejected,
    ExchangeUnavailable,
)
from app.exchanges import client_class
from app.exchanges.binance_usdm import (
    ACCOUNT_CONFIG_PATH,
    API_RESTRICTIONS_PATH,
    SYMBOL_CONFIG_PATH,
    TRADING_STATUS_PATH,
    BinanceUsdmClient,
)
from app.exchanges.binance_usdm_market import OPEN_ALGO_ORDERS_PATH, OPEN_ORDERS_PATH
from tests.unit.exchanges.fakes import (
    CREDENTIALS,
    NOW_MS,
    FakeExchange,
    RecordingGate,
    fixed_clock,
    reply,
    signature_is_valid,
    split_signed_query,
)
from tests.unit.exchanges.fakes import fixture as load_fixture

FAPI = "https://fapi.binance.test"
SAPI = "https://api.binance.test"
V3_ACCOUNT = "/fapi/v3/account"
V2_ACCOUNT = "/fapi/v2/account"
TIME_PATH = "/fapi/v1/time"


def fixture(name: str) -> Any:
    return load_fixture("binance_usdm", name)


def make(http: httpx.AsyncClient, gate: RecordingGate, **options: Any) -> BinanceUsdmClient:
    client = BinanceUsdmClient(
        base_url=FAPI,
        credentials=CREDENTIALS,
        http=http,
        gate=gate,
        options={"sapi_base_url": SAPI, **options},
    )
    client.wall_clock_ms = fixed_clock(NOW_MS)
    return client


@pytest.fixture
def binance(http: httpx.AsyncClient, gate: RecordingGate) -> BinanceUsdmClient:
    return make(http, gate)


def test_registered_with_capabilities_from_the_docs() -> None:
    cls = client_class("binance-usdm")
    assert cls is BinanceUsdmClient
    caps = cls.capabilities
    assert (caps.has_trading_status, caps.has_quant_rules) == (False, True)
    assert (caps.status_weight, caps.snapshot_weight, caps.time_weight) == (15, 10, 1)
    assert (caps.weight_limit_per_minute, caps.weight_scope) == (2400, "host")


# --------------------------------------------------------------------------- status


async def test_status_with_empty_indicators_has_no_violations(
    exchange: FakeExchange, binance: BinanceUsdmClient, gate: RecordingGate
) -> None:
    exchange.on(ACCOUNT_CONFIG_PATH, reply(fixture("account_config")))
    exchange.on(TRADING_STATUS_PATH, reply(fixture("api_trading_status_empty")))
    status = await binance.fetch_status()
    assert status == AccountStatus(
        trading_status=None,
        reason="",
        can_trade=True,
        futures_enabled=None,
        can_deposit=True,
        can_withdraw=True,
        update_time_ms=1644913304748,
        indicators=(),
        # accountConfig's position and multi-assets modes (binance-order-rules.md §4.1)
        hedge_mode=True,
        multi_assets=False,
    )
    assert status.is_normal
    assert exchange.paths() == [ACCOUNT_CONFIG_PATH, TRADING_STATUS_PATH]
    assert gate.weights == [5, 10]
    assert gate.outcomes() == ["ok", "ok"]
    # No symbol: one call covers every symbol (weight 10 instead of 1 per symbol).
    payload, _ = split_signed_query(exchange.requests[1])
    assert "symbol=" not in payload
    assert all(signature_is_valid(r) for r in exchange.requests)


async def test_per_symbol_lock_keeps_exact_decimal_values(
    exchange: FakeExchange, binance: BinanceUsdmClient
) -> None:
    exchange.on(ACCOUNT_CONFIG_PATH, reply(fixture("account_config")))
    exchange.on(TRADING_STATUS_PATH, reply(fixture("api_trading_status_symbol")))
    status = await binance.fetch_status()
    assert status.indicators == (
        QuantIndicator("BTCUSDT", "UFR", Decimal("0.05"), Decimal("0.995"), True, 1545741270000),
        QuantIndicator("BTCUSDT", "DR", Decimal("0.99"), Decimal("0.99"), True, 1545741270000),
    )


async def test_account_level_tmv_lock_uses_the_account_scope(
    exchange: FakeExchange, binance: BinanceUsdmClient
) -> None:
    exchange.on(ACCOUNT_CONFIG_PATH, reply(fixture("account_config")))
    exchange.on(TRADING_STATUS_PATH, reply(fixture("api_trading_status_account")))
    status = await binance.fetch_status()
    assert status.indicators == (
        QuantIndicator(ACCOUNT_SCOPE, "TMV", Decimal(10), Decimal(1), True, 1644919865000),
    )


async def test_planned_recover_time_is_converted_to_the_local_clock(
    exchange: FakeExchange, binance: BinanceUsdmClient
) -> None:
    # The exchange runs 3 s ahead: its plannedRecoverTime is 3 s earlier on the guard's clock.
    binance.clock_offset_ms = 3_000
    body = fixture("api_trading_status_account")
    body["indicators"]["BTCUSDT"] = [
        {"indicator": "GCR", "value": 0.5, "triggerValue": 0.99, "isLocked": False,
         "plannedRecoverTime": 0}
    ]  # fmt: skip
    exchange.on(ACCOUNT_CONFIG_PATH, reply(fixture("account_config")))
    exchange.on(TRADING_STATUS_PATH, reply(body))
    status = await binance.fetch_status()
    assert [(i.indicator, i.planned_recover_time_ms) for i in status.indicators] == [
        ("TMV", 1644919865000 - 3_000),
        ("GCR", 0),  # "no planned recovery" stays 0
    ]


async def test_cannot_trade_is_reported(exchange: FakeExchange, binance: BinanceUsdmClient) -> None:
    exchange.on(ACCOUNT_CONFIG_PATH, reply({**fixture("account_config"), "canTrade": False}))
    exchange.on(TRADING_STATUS_PATH, reply(fixture("api_trading_status_empty")))
    assert (await binance.fetch_status()).can_trade is False


@pytest.mark.parametrize(
    ("config", "rules", "message"),
    [
        ({"canDeposit": True}, None, "field canTrade is missing"),
        ({"canTrade": "true"}, None, "field canTrade must be a JSON boolean"),
        (None, {"updateTime": 1}, "field indicators is missing"),
        (None, {"indicators": []}, "field indicators must be a JSON object"),
        (None, {"indicators": {"BTCUSDT": {}}}, "indicators.BTCUSDT must be a JSON array"),
        (
            None,
            {
                "indicators": {
                    "BTCUSDT": [
                        {"indicator": "DR", "value": True, "triggerValue": 1, "isLocked": False}
                    ]
                }
            },
            r"indicators\.BTCUSDT\[0\]\.value must be a finite decimal",
        ),
        (
            None,
            {"indicators": {"ETHUSDT": [{"indicator": "DR", "value": 0.1, "triggerValue": 1}]}},
            r"indicators\.ETHUSDT\[0\]\.isLocked is missing",
        ),
    ],
)
async def test_malformed_status_answers_are_protocol_errors(
    exchange: FakeExchange,
    binance: BinanceUsdmClient,
    config: dict[str, Any] | None,
    rules: dict[str, Any] | None,
    message: str,
) -> None:
    exchange.on(ACCOUNT_CONFIG_PATH, reply(config or fixture("account_config")))
    exchange.on(TRADING_STATUS_PATH, reply(rules or fixture("api_trading_status_empty")))
    with pytest.raises(ExchangeProtocolError, match=message):
        await binance.fetch_status()


# --------------------------------------------------------------------------- snapshot (v3)


async def test_v3_snapshot_maps_totals_positions_and_leverage(
    exchange: FakeExchange, binance: BinanceUsdmClient, gate: RecordingGate
) -> None:
    exchange.on(V3_ACCOUNT, reply(fixture("account_v3")))
    exchange.on(SYMBOL_CONFIG_PATH, reply(fixture("symbol_config")))
    exchange.on(OPEN_ORDERS_PATH, reply(fixture("open_orders")))
    exchange.on(OPEN_ALGO_ORDERS_PATH, reply(fixture("open_algo_orders")))
    snap = await binance.fetch_snapshot()
    assert snap.available_balance == Decimal("103.12345678")
    assert snap.margin_balance == Decimal("103.12345678")
    assert snap.maintenance_margin == Decimal("0.00000000")
    assert snap.wallet_balance == Decimal("103.12345678")
    assert snap.initial_margin == Decimal(0)
    assert snap.unrealized_pnl == 0  # totalUnrealizedProfit absent from the example
    assert snap.positions == (
        Position(
            symbol="BTCUSDT",
            side=PositionSide.LONG,
            quantity=Decimal("1.000"),
            leverage=Decimal(21),
            notional=Decimal(0),
            unrealized_pnl=Decimal(0),
            initial_margin=Decimal(0),
            maintenance_margin=Decimal(0),
            margin_type="CROSSED",
        ),
    )
    assert snap.leverage_by_symbol == {"BTCUSDT": Decimal(21)}
    assert snap.leverage_for("BTCUSDT") == 21
    # symbolConfig's maxNotionalValue: the position limit at the current leverage
    assert snap.max_notional_by_symbol == {"BTCUSDT": Decimal(1000000)}
    # The open orders of the one symbol the v3 account lists, at weight 1 (not 40 for all)
    assert snap.open_orders == (
        OpenOrder(
            order_id="1917641",
            symbol="BTCUSDT",
            side=OrderSide.BUY,
            type="TRAILING_STOP_MARKET",
            quantity=Decimal("0.40"),
            price=None,
            reduce_only=False,
            time_ms=1579276756075,
            position_side="SHORT",
        ),
        # The Algo Service's conditional orders (openAlgoOrders), counted toward the limits.
        OpenOrder(
            order_id="2146760",
            symbol="BNBUSDT",
            side=OrderSide.SELL,
            type="TAKE_PROFIT",
            quantity=Decimal("0.01"),
            price=Decimal("750.000"),
            time_ms=1750485492076,
            position_side="BOTH",
            algo=True,
        ),
    )
    # The first snapshot reads every symbol's algo orders at once (weight 40) ...
    assert exchange.paths() == [
        V3_ACCOUNT,
        SYMBOL_CONFIG_PATH,
        OPEN_ORDERS_PATH,
        OPEN_ALGO_ORDERS_PATH,
    ]
    assert gate.weights == [5, 5, 1, 40]
    assert "symbol=BTCUSDT" in split_signed_query(exchange.requests[2])[0]
    assert "symbol=" not in split_signed_query(exchange.requests[3])[0]
    # ... the next ones, until the sweep is due again, the account's symbols and the symbols
    # the sweep found algo orders on (BNBUSDT: no position, no plain order), one call each.
    exchange.requests.clear()
    gate.weights.clear()
    exchange.on(OPEN_ALGO_ORDERS_PATH, reply(fixture("open_algo_orders")), reply([]))
    again = await binance.fetch_snapshot()
    assert [o.order_id for o in again.open_orders if o.algo] == ["2146760"]
    assert exchange.paths()[2:] == [OPEN_ORDERS_PATH, OPEN_ALGO_ORDERS_PATH, OPEN_ALGO_ORDERS_PATH]
    assert gate.weights == [5, 5, 1, 1, 1]
    queries = [split_signed_query(r)[0] for r in exchange.requests[3:]]
    assert ["symbol=BNBUSDT" in queries[0], "symbol=BTCUSDT" in queries[1]] == [True, True]


def _algo_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {**fixture("open_algo_orders")[0], **changes}
    return {k: v for k, v in row.items() if v is not ...}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (_algo_row(algoId=...), r"\[0\]\.algoId is missing \[/fapi/v1/openAlgoOrders\]"),
        (_algo_row(side="HOLD"), r"\[0\]\.side must be BUY or SELL"),
        (_algo_row(quantity="1E+30"), r"\[0\]\.quantity"),
        (_algo_row(triggerPrice="1E+30"), r"\[0\]\.triggerPrice"),
        (_algo_row(price="-5"), r"\[0\]\.price"),
        (_algo_row(orderType=7), r"\[0\]\.orderType"),
    ],
)
async def test_malformed_or_implausible_algo_orders_fail_the_snapshot(
    exchange: FakeExchange, binance: BinanceUsdmClient, row: dict[str, Any], message: str
) -> None:
    exchange.on(V3_ACCOUNT, reply(fixture("account_v3")))
    exchange.on(SYMBOL_CONFIG_PATH, reply(fixture("symbol_config")))
    exchange.on(OPEN_ORDERS_PATH, reply([]))
    exchange.on(OPEN_ALGO_ORDERS_PATH, reply([row]))
    with pytest.raises(ExchangeProtocolError, match=message):
        await binance.fetch_snapshot()


async def test_without_the_algo_sweep_only_the_accounts_symbols_are_read(
    exchange: FakeExchange, http: httpx.AsyncClient, gate: RecordingGate
) -> None:
    client = make(http, gate, algo_orders_sweep_s=0)
    assert client.extra_weight_per_minute() == 0
    assert make(http, gate).extra_weight_per_minute() == 40  # 40 every 60 s by default
    exchange.on(V3_ACCOUNT, reply(fixture("account_v3")))
    exchange.on(SYMBOL_CONFIG_PATH, reply(fixture("symbol_config")))
    exchange.on(OPEN_ORDERS_PATH, reply([]))
    exchange.on(OPEN_ALGO_ORDERS_PATH, reply([]))
    await client.fetch_snapshot()
    assert gate.weights == [5, 5, 1, 1]
    assert "symbol=BTCUSDT" in split_signed_query(exchange.requests[3])[0]


@pytest.mark.parametrize("value", [-1, "60", True, 86_401])
def test_a_bad_algo_sweep_interval_is_refused(
    http: httpx.AsyncClient, gate: RecordingGate, value: Any
) -> None:
    with pytest.raises(ConfigError, match="algo_orders_sweep_s must be a number of seconds"):
        make(http, gate, algo_orders_sweep_s=value)


def v3_row(symbol: str, side: str, amount: str, notional: str = "0") -> dict[str, Any]:
    return {
        "symbol": symbol,
        "positionSide": side,
        "positionAmt": amount,
        "notional": notional,
        "unrealizedProfit": "0",
        "initialMargin": "0",
        "maintMargin": "0",
    }


async def test_hedge_mode_and_one_way_positions(
    exchange: FakeExchange, binance: BinanceUsdmClient
) -> None:
    rows = [
        v3_row("BTCUSDT", "LONG", "0.5", "30150"),  # hedge mode long
        v3_row("BTCUSDT", "SHORT", "-0.2", "-12060"),  # hedge mode short: negative amount
        v3_row("ETHUSDT", "BOTH", "-3", "-9000"),  # one-way short
        v3_row("ADAUSDT", "BOTH", "30", "12.314277"),  # one-way long
        v3_row("XRPUSDT", "BOTH", "0"),  # only open orders: no position
    ]
    exchange.on(V3_ACCOUNT, reply({**fixture("account_v3"), "positions": rows}))
    exchange.on(SYMBOL_CONFIG_PATH, reply([]))
    exchange.on(OPEN_ORDERS_PATH, *[reply([])] * 4)
    exchange.on(OPEN_ALGO_ORDERS_PATH, reply([]))
    snap = await binance.fetch_snapshot()
    got = [(p.symbol, p.side, p.quantity, p.notional, p.mark_price) for p in snap.positions]
    assert got == [
        ("BTCUSDT", PositionSide.LONG, Decimal("0.5"), Decimal(30150), Decimal(60300)),
        ("BTCUSDT", PositionSide.SHORT, Decimal("0.2"), Decimal(12060), Decimal(60300)),
        ("ETHUSDT", PositionSide.SHORT, Decimal(3), Decimal(9000), Decimal(3000)),
        ("ADAUSDT", PositionSide.LONG, Decimal(30), Decimal("12.314277"), Decimal("0.41047590")),
    ]
    assert snap.position("BTCUSDT", PositionSide.SHORT) is not None
    assert all(p.leverage is None for p in snap.positions)  # symbolConfig knew none


@pytest.mark.parametrize(
    ("account", "symbols", "message"),
    [
        ({"totalMarginBalance": ...}, None, "field totalMarginBalance is missing"),
        ({"totalMaintMargin": ...}, None, "field totalMaintMargin is missing"),
        ({"availableBalance": ...}, None, "field availableBalance is missing"),
        ({"positions": ...}, None, "field positions is missing"),
        (
            {"positions": [v3_row("BTCUSDT", "NET", "1")]},
            None,
            r"positions\[0\]\.positionSide must be BOTH, LONG or SHORT",
        ),
        (
            {"positions": [v3_row("BTCUSDT", "BOTH", "one")]},
            None,
            r"positions\[0\]\.positionAmt must be a finite decimal",
        ),
        ({}, {"symbol": "BTCUSDT"}, "must be a JSON array, got dict"),
        ({}, [{"symbol": "BTCUSDT", "leverage": "lots"}], r"\[0\]\.leverage must be a finite"),
    ],
)
async def test_malformed_snapshot_answers_are_protocol_errors(
    exchange: FakeExchange,
    binance: BinanceUsdmClient,
    account: dict[str, Any],
    symbols: Any,
    message: str,
) -> None:
    body = {k: v for k, v in {**fixture("account_v3"), **account}.items() if v is not ...}
    exchange.on(V3_ACCOUNT, reply(body))
    exchange.on(SYMBOL_CONFIG_PATH, reply(fixture("symbol_config") if symbols is None else symbols))
    with pytest.raises(ExchangeProtocolError, match=message):
        await binance.fetch_snapshot()


async def test_a_failed_symbol_config_fails_the_whole_snapshot(
    exchange: FakeExchange, binance: BinanceUsdmClient
) -> None:
    exchange.on(V3_ACCOUNT, reply(fixture("account_v3")))
    exchange.on(SYMBOL_CONFIG_PATH, reply({"code": -1001, "msg": "Internal error"}, status=500))
    with pytest.raises(ExchangeUnavailable) as info:
        await binance.fetch_snapshot()
    assert info.value.endpoint == SYMBOL_CONFIG_PATH


# --------------------------------------------------------------------------- snapshot (v2)


async def test_v2_fallback_takes_leverage_and_entry_price_from_its_positions(
    exchange: FakeExchange, http: httpx.AsyncClient, gate: RecordingGate
) -> None:
    client = make(http, gate, snapshot_endpoint="v2")
    body = fixture("account_v2")
    body["positions"].append(
        {
            "symbol": "ETHUSDT",
            "positionSide": "SHORT",
            "positionAmt": "-2.5",
            "leverage": "20",
            "isolated": False,
            "entryPrice": "3000.5",
            "unrealizedProfit": "-4.1",
            "initialMargin": "375",
            "maintMargin": "30",
            "updateTime": 1625474304765,
        }
    )
    exchange.on(V2_ACCOUNT, reply(body))
    exchange.on(OPEN_ORDERS_PATH, reply([]))
    exchange.on(OPEN_ALGO_ORDERS_PATH, reply([]))
    snap = await client.fetch_snapshot()
    assert snap.available_balance == Decimal("23.72469206")
    assert snap.margin_balance == Decimal("23.72469206")
    assert snap.positions == (
        Position(
            symbol="ETHUSDT",
            side=PositionSide.SHORT,
            quantity=Decimal("2.5"),
            entry_price=Decimal("3000.5"),
            # derived: entry + unrealizedProfit / positionAmt = 3000.5 + (-4.1 / -2.5)
            mark_price=Decimal("3002.14"),
            notional=Decimal("7505.35"),
            leverage=Decimal(20),
            unrealized_pnl=Decimal("-4.1"),
            initial_margin=Decimal(375),
            maintenance_margin=Decimal(30),
            margin_type="CROSSED",
        ),
    )
    # v2 lists every symbol: leverage is known even where there is no position.
    assert snap.leverage_by_symbol == {"BTCUSDT": Decimal(100), "ETHUSDT": Decimal(20)}
    # v2 rows do not tell which symbols have open orders: one all-symbols call (weight 40),
    # for plain and for algo orders.
    assert exchange.paths() == [V2_ACCOUNT, OPEN_ORDERS_PATH, OPEN_ALGO_ORDERS_PATH]
    assert gate.weights == [10, 40, 40]


async def test_retired_endpoint_says_to_switch_snapshot_endpoint(
    exchange: FakeExchange, http: httpx.AsyncClient, gate: RecordingGate
) -> None:
    client = make(http, gate, snapshot_endpoint="v2")
    msg = "GET /fapi/v2/account is retired, please use GET /fapi/v3/account"
    exchange.on(V2_ACCOUNT, reply({"code": -5000, "msg": msg}, status=400))
    with pytest.raises(ExchangeRejected) as info:
        await client.fetch_snapshot()
    assert info.value.code == -5000
    assert "retired" in str(info.value)
    assert "snapshot_endpoint" in str(info.value)
    assert len(exchange.requests) == 1


# --------------------------------------------------------------------------- errors


async def test_keys_locked(exchange: FakeExchange, binance: BinanceUsdmClient) -> None:
    exchange.on(ACCOUNT_CONFIG_PATH, reply({"code": -2017, "msg": "API Keys are locked."}, 401))
    with pytest.raises(ExchangeAuthError, match="API keys locked") as info:
        await binance.fetch_status()
    assert info.value.code == -2017


@pytest.mark.parametrize("code", [-2015, -2014, -1022])
async def test_auth_failures_give_the_likely_causes(
    exchange: FakeExchange, binance: BinanceUsdmClient, code: int
) -> None:
    exchange.on(ACCOUNT_CONFIG_PATH, reply({"code": code, "msg": "rejected"}, 401))
    with pytest.raises(ExchangeAuthError) as info:
        await binance.fetch_status()
    text = str(info.value)
    for cause in ("wrong API key or secret", "IP whitelist", "futures not enabled", "/papi"):
        assert cause in text


@pytest.mark.parametrize(
    "body",
    [
        {"code": -1000, "msg": "Unknown error, please check your request or try again later."},
        {"msg": "Service Unavailable."},
        {"code": -1008, "msg": "Request throttled by system-level protection."},
    ],
)
async def test_503_variants_are_unavailable(
    exchange: FakeExchange, binance: BinanceUsdmClient, gate: RecordingGate, body: Any
) -> None:
    exchange.on(ACCOUNT_CONFIG_PATH, reply(body, status=503))
    with pytest.raises(ExchangeUnavailable) as info:
        await binance.fetch_status()
    assert info.value.kind is ErrorKind.SERVER_ERROR
    assert gate.outcomes() == ["server_error"]


async def test_minus_1021_resyncs_from_fapi_time(
    exchange: FakeExchange, binance: BinanceUsdmClient, gate: RecordingGate
) -> None:
    exchange.on(
        ACCOUNT_CONFIG_PATH,
        reply({"code": -1021, "msg": "ahead"}, 400),
        reply(fixture("account_config")),
    )
    exchange.on(TRADING_STATUS_PATH, reply(fixture("api_trading_status_empty")))
    exchange.on(TIME_PATH, reply({"serverTime": NOW_MS - 1500}))
    await binance.fetch_status()
    assert exchange.paths() == [
        ACCOUNT_CONFIG_PATH,
        TIME_PATH,
        ACCOUNT_CONFIG_PATH,
        TRADING_STATUS_PATH,
    ]
    assert binance.clock_offset_ms == -1500
    assert gate.weights == [5, 1, 5, 10]


async def test_sync_clock_uses_the_documented_example(
    exchange: FakeExchange, binance: BinanceUsdmClient
) -> None:
    exchange.on(TIME_PATH, reply(fixture("time")))
    assert await binance.sync_clock() == 1499827319559 - NOW_MS


# --------------------------------------------------------------------------- key permissions


async def test_permission_check_calls_sapi_and_warns_about_portfolio_margin(
    exchange: FakeExchange, binance: BinanceUsdmClient, gate: RecordingGate
) -> None:
    exchange.on(API_RESTRICTIONS_PATH, reply(fixture("api_restrictions")))
    warnings = await binance.check_permissions()
    assert len(warnings) == 2
    assert "enablePortfolioMarginTrading=true" in warnings[0]
    assert "/papi" in warnings[1]
    (request,) = exchange.requests
    assert str(request.url).startswith(f"{SAPI}{API_RESTRICTIONS_PATH}?")
    assert signature_is_valid(request)
    assert gate.weights == [1]


async def test_read_only_key_gets_no_warning(
    exchange: FakeExchange, binance: BinanceUsdmClient
) -> None:
    body = {**fixture("api_restrictions"), "enablePortfolioMarginTrading": False}
    exchange.on(API_RESTRICTIONS_PATH, reply(body))
    assert await binance.check_permissions() == []


async def test_trading_and_withdrawal_permissions_are_each_warned(
    exchange: FakeExchange, binance: BinanceUsdmClient
) -> None:
    flags = ["enableWithdrawals", "enableFutures", "enableSpotAndMarginTrading"]
    body = {**fixture("api_restrictions"), "enablePortfolioMarginTrading": False}
    exchange.on(API_RESTRICTIONS_PATH, reply({**body, **dict.fromkeys(flags, True)}))
    warnings = await binance.check_permissions()
    assert [f for f in flags if any(f"{f}=true" in w for w in warnings)] == flags
    assert any("withdraw funds" in w for w in warnings)


@pytest.mark.parametrize(
    "responder",
    [
        reply({"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}, 401),
        reply(raw=b"<html>", status=200),
        reply({"enableFutures": "yes"}),
        reply(status=503),
    ],
)
async def test_a_failed_permission_check_is_a_warning_not_an_error(
    exchange: FakeExchange, binance: BinanceUsdmClient, responder: Any
) -> None:
    exchange.on(API_RESTRICTIONS_PATH, responder)
    (warning,) = await binance.check_permissions()
    assert warning.startswith("could not verify the API key's permissions")


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"snapshot_endpoint": "v1"}, "snapshot_endpoint must be 'v3' or 'v2'"),
        ({"snapshot_endpoint": 3}, "snapshot_endpoint must be 'v3' or 'v2'"),
        ({"snapshot": "v2"}, "unknown option.*snapshot.*known options: snapshot_endpoint"),
        ({"sapi_base_url": "api.binance.com"}, "sapi_base_url must be an http"),
        ({"sapi_base_url": 1}, "sapi_base_url must be a string"),
    ],
)
def test_invalid_options_are_refused(
    http: httpx.AsyncClient, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        BinanceUsdmClient(
            base_url=FAPI,
            credentials=CREDENTIALS,
            http=http,
            gate=RecordingGate(),
            options=options,
        )


def test_default_options(http: httpx.AsyncClient) -> None:
    client = BinanceUsdmClient(
        base_url=FAPI, credentials=CREDENTIALS, http=http, gate=RecordingGate()
    )
    assert client.snapshot_endpoint == "v3"
    assert client.sapi_base_url == "https://api.binance.com"


async def test_a_key_that_cannot_read_is_warned(
    exchange: FakeExchange, binance: BinanceUsdmClient
) -> None:
    body = {**fixture("api_restrictions"), "enablePortfolioMarginTrading": False}
    exchange.on(API_RESTRICTIONS_PATH, reply({**body, "enableReading": False}))
    (warning,) = await binance.check_permissions()
    assert "enableReading=false" in warning
