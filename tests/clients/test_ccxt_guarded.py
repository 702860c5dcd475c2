"""The ccxt integration end to end: ccxt's ``binanceusdm`` (sync and async) pointed at the
simulator, wrapped so that every order asks the real guard first.

A denied order must never reach the exchange: the simulator's request log (its control API)
shows no order request. An allowed order goes to ccxt unchanged, and the simulator's
``POST /fapi/v1/order`` accepts it (it then rests in the account's open orders).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
from pretrade_guard_client import (
    AsyncGuardClient,
    GuardClient,
    Order,
    OrderDenied,
    OrderType,
    PositionSide,
    ReasonCode,
)
from pretrade_guard_client.ccxt import (
    AsyncGuardedExchange,
    GuardedExchange,
    OrderMapping,
    guard_symbol,
)

from tests.support.guard import BOT_TOKEN, GuardProcess, wait_until
from tests.support.processes import SimulatorProcess
from tests.support.sim_control import SimControl
from tests.support.sim_scenarios import HEALTHY, RESTRICTED, SimAccount

ccxt = pytest.importorskip("ccxt")
ccxt_async = pytest.importorskip("ccxt.async_support")

ORDER_PATH = "/fapi/v1/order"
BTC = "BTC/USDT:USDT"


def point_at_simulator(exchange: Any, simulator: SimulatorProcess) -> Any:
    """Every ccxt API URL on the simulator (keeping its path); nothing may leave loopback."""
    base = simulator.base_url
    assert base.startswith("http://127.0.0.1:")
    api_urls: dict[str, str] = exchange.urls["api"]
    for name, url in api_urls.items():
        api_urls[name] = base + urlsplit(url).path
    assert all(url.startswith(base + "/") for url in api_urls.values())
    return exchange


def binanceusdm(simulator: SimulatorProcess, account: SimAccount) -> Any:
    exchange = ccxt.binanceusdm(
        {
            "apiKey": account.api_key,
            "secret": account.api_secret,
            "timeout": 5000,
            "options": {"fetchCurrencies": False},
        }
    )
    exchange.session.trust_env = False  # no proxy from the environment
    return point_at_simulator(exchange, simulator)


def orders_sent(simulator: SimulatorProcess, account: SimAccount) -> int:
    """Order requests the simulator received from this account's key."""
    return simulator.control.request_count(api_key=account.api_key, path=ORDER_PATH)


@pytest.fixture
def bot(guard: GuardProcess) -> Iterator[GuardClient]:
    with GuardClient(guard.base_url, BOT_TOKEN, timeout=5) as client:
        yield client


@pytest.fixture
def alpha(shared_simulator: SimulatorProcess, bot: GuardClient) -> GuardedExchange:
    """basic.yaml's healthy account (LONG 0.5 BTCUSDT) through the guard, markets loaded."""
    exchange = GuardedExchange(binanceusdm(shared_simulator, HEALTHY), bot, "alpha")
    exchange.load_markets()
    return exchange


def test_a_denied_order_never_reaches_the_exchange(
    shared_simulator: SimulatorProcess, bot: GuardClient
) -> None:
    bravo = GuardedExchange(binanceusdm(shared_simulator, RESTRICTED), bot, "bravo")
    bravo.load_markets()
    with pytest.raises(OrderDenied) as denied:
        bravo.create_order(BTC, "limit", "buy", 0.01, 60000)
    assert ReasonCode.ACCOUNT_NOT_NORMAL in denied.value.codes
    # The unified symbol was mapped to the exchange's market id.
    assert denied.value.decision.symbol == "BTCUSDT"
    assert orders_sent(shared_simulator, RESTRICTED) == 0
    # ccxt did talk to the simulator (markets), so the log is the right one to read.
    assert shared_simulator.control.request_count(api_key=None, path="/fapi/v1/exchangeInfo")


def test_an_allowed_order_goes_to_ccxt_unchanged(
    alpha: GuardedExchange, shared_simulator: SimulatorProcess
) -> None:
    sent: list[tuple[Any, ...]] = []
    create_order = alpha.unguarded.create_order

    def spy(*args: Any) -> Any:
        sent.append(args)
        return create_order(*args)

    alpha.unguarded.create_order = spy
    params = {"timeInForce": "GTC"}
    order = alpha.create_order(BTC, "limit", "buy", 0.01, 60000, params)
    assert sent == [(BTC, "limit", "buy", 0.01, 60000, params)]
    assert (order["status"], order["side"], order["amount"], order["price"]) == (
        "open",
        "buy",
        0.01,
        60000.0,
    )
    assert order["info"]["symbol"] == "BTCUSDT"
    assert order["id"] in [o["id"] for o in alpha.fetch_open_orders(BTC)]
    assert orders_sent(shared_simulator, HEALTHY) == 1


def test_reduce_only_and_hedge_closes_pass_a_restricted_account(
    alpha: GuardedExchange,
    bot: GuardClient,
    sim_control: SimControl,
    shared_simulator: SimulatorProcess,
) -> None:
    # The exchange restricts alpha; its policy still lets it close positions.
    sim_control.patch_status(HEALTHY.id, {"tradingStatus": "RESTRICTED"})
    wait_until(lambda: not bot.can_trade("alpha").allowed, timeout=10, what="alpha denied")

    with pytest.raises(OrderDenied, match="ACCOUNT_NOT_NORMAL"):
        alpha.create_order(BTC, "market", "sell", 0.1)
    # Closing part of the LONG: as ccxt's reduceOnly, and as a hedge-mode close.
    closing = alpha.create_order(BTC, "market", "sell", 0.1, None, {"reduceOnly": True})
    assert (closing["info"]["status"], closing["reduceOnly"]) == ("NEW", True)
    # A hedge-mode close is a reduction too (the simulator's account is in one-way mode, so
    # it may refuse the positionSide: what matters is that the guard let it through).
    with contextlib.suppress(ccxt.ExchangeError):
        alpha.create_order(BTC, "market", "sell", 0.1, None, {"positionSide": "LONG"})
    assert orders_sent(shared_simulator, HEALTHY) == 2
    # More than the position is not a reduction.
    with pytest.raises(OrderDenied) as denied:
        alpha.create_order(BTC, "market", "sell", 0.6, None, {"reduceOnly": True})
    assert ReasonCode.REDUCE_ONLY_WOULD_INCREASE in denied.value.codes
    assert orders_sent(shared_simulator, HEALTHY) == 2


def test_batch_create_orders_sends_nothing_unless_all_are_allowed(
    alpha: GuardedExchange, shared_simulator: SimulatorProcess
) -> None:
    orders = [
        {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": 60000},
        {"symbol": BTC, "type": "limit", "side": "buy", "amount": 1000, "price": 60000},
    ]
    with pytest.raises(OrderDenied, match="INSUFFICIENT_MARGIN"):
        alpha.create_orders(orders)
    for path in (ORDER_PATH, "/fapi/v1/batchOrders"):
        assert shared_simulator.control.request_count(api_key=HEALTHY.api_key, path=path) == 0


def test_order_placing_shortcuts_cannot_bypass_the_guard(alpha: GuardedExchange) -> None:
    for name in (
        "create_limit_buy_order",
        "createMarketSellOrder",
        "edit_order",
        "fapiPrivatePostOrder",
        "fapiprivate_post_batchorders",
    ):
        with pytest.raises(AttributeError, match="without asking the guard"):
            getattr(alpha, name)
    # Reading goes through.
    assert alpha.fetch_balance()["USDT"]["total"] == 10150.0
    assert alpha.unguarded.create_limit_buy_order  # on purpose, through .unguarded


def test_symbols_map_to_market_ids_with_a_fallback() -> None:
    listed = SimpleNamespace(markets={"1000PEPE/USDT:USDT": {"id": "1000PEPEUSDT"}})
    assert guard_symbol(listed, "1000PEPE/USDT:USDT") == "1000PEPEUSDT"
    not_loaded = SimpleNamespace(markets=None)
    assert guard_symbol(not_loaded, BTC) == "BTCUSDT"
    assert guard_symbol(not_loaded, "ETH/USDT") == "ETHUSDT"
    assert guard_symbol(not_loaded, "btcusdt") == "BTCUSDT"
    with pytest.raises(ValueError, match="load_markets"):
        guard_symbol(not_loaded, "BTC/USDT:USDT-260327")


def test_order_details_map_ccxt_params_to_the_guards_fields() -> None:
    exchange = SimpleNamespace(markets={BTC: {"id": "BTCUSDT"}})
    detailed = OrderMapping("alpha", order_details=True)
    params = {"positionSide": "short", "stopPrice": "61000", "timeInForce": "gtc"}
    order = detailed.order(exchange, BTC, "stop_market", "buy", 0.3, None, params)
    assert order == Order(
        "alpha",
        "BTCUSDT",
        "BUY",
        quantity=order.quantity,
        type=OrderType.STOP_MARKET,
        position_side=PositionSide.SHORT,
        stop_price=order.stop_price,
        time_in_force="GTC",
    )
    assert order.fields()["quantity"] == "0.3"
    assert order.fields()["stop_price"] == "61000"
    # A market order's price is not a limit price.
    market = OrderMapping("alpha").order(exchange, BTC, "market", "sell", "1", 60000)
    assert market.fields() == {
        "account": "alpha",
        "symbol": "BTCUSDT",
        "side": "SELL",
        "quantity": "1",
        "type": "MARKET",
    }
    # For a guard without the order-detail fields: none are sent, a hedge close is reduce-only.
    basic = OrderMapping("alpha", order_details=False)
    close = basic.order(exchange, BTC, "market", "sell", "1", None, {"positionSide": "LONG"})
    assert close.fields() == {
        "account": "alpha",
        "symbol": "BTCUSDT",
        "side": "SELL",
        "quantity": "1",
        "reduce_only": True,
    }
    opening = basic.order(exchange, BTC, "limit", "buy", "1", 60000, {"positionSide": "LONG"})
    assert "reduce_only" not in opening.fields()
    with pytest.raises(ValueError, match="side"):
        detailed.order(exchange, BTC, "limit", "long", 1, 1)
    with pytest.raises(ValueError, match="reduceOnly"):
        detailed.order(exchange, BTC, "limit", "buy", 1, 1, {"reduceOnly": "maybe"})


async def test_sync_and_async_wrappers_refuse_the_other_kind(bot: GuardClient) -> None:
    async_exchange = ccxt_async.binanceusdm()
    async with AsyncGuardClient("http://127.0.0.1:9", "token") as async_guard:
        with pytest.raises(TypeError, match="AsyncGuardedExchange"):
            GuardedExchange(async_exchange, bot, "alpha")
        with pytest.raises(TypeError, match="needs GuardedExchange"):
            AsyncGuardedExchange(ccxt.binanceusdm(), async_guard, "alpha")
    await async_exchange.close()


@pytest.fixture
async def async_ccxt(shared_simulator: SimulatorProcess) -> AsyncIterator[dict[str, Any]]:
    exchanges = {
        "alpha": point_at_simulator(
            ccxt_async.binanceusdm(
                {
                    "apiKey": HEALTHY.api_key,
                    "secret": HEALTHY.api_secret,
                    "timeout": 5000,
                    "options": {"fetchCurrencies": False},
                }
            ),
            shared_simulator,
        ),
        "bravo": point_at_simulator(
            ccxt_async.binanceusdm(
                {
                    "apiKey": RESTRICTED.api_key,
                    "secret": RESTRICTED.api_secret,
                    "timeout": 5000,
                    "options": {"fetchCurrencies": False},
                }
            ),
            shared_simulator,
        ),
    }
    try:
        yield exchanges
    finally:
        for exchange in exchanges.values():
            await exchange.close()


async def test_async_ccxt_denied_never_sent_and_allowed_sent(
    guard: GuardProcess, shared_simulator: SimulatorProcess, async_ccxt: dict[str, Any]
) -> None:
    async with AsyncGuardClient(guard.base_url, BOT_TOKEN, timeout=5) as client:
        bravo = AsyncGuardedExchange(async_ccxt["bravo"], client, "bravo")
        alpha = AsyncGuardedExchange(async_ccxt["alpha"], client, "alpha")
        await bravo.load_markets()
        await alpha.load_markets()
        with pytest.raises(OrderDenied) as denied:
            await bravo.create_order(BTC, "limit", "buy", 0.01, 60000)
        assert denied.value.decision.symbol == "BTCUSDT"
        assert ReasonCode.ACCOUNT_NOT_NORMAL in denied.value.codes
        order = await alpha.create_order(BTC, "limit", "buy", 0.01, 60000)
        assert (order["status"], order["info"]["symbol"]) == ("open", "BTCUSDT")
        with pytest.raises(AttributeError, match="without asking the guard"):
            _ = alpha.create_market_buy_order
    assert orders_sent(shared_simulator, RESTRICTED) == 0
    assert orders_sent(shared_simulator, HEALTHY) == 1
