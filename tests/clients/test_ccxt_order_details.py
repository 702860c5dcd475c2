"""The ccxt wrapper's order details (type, positionSide, ...) against a Binance USDⓈ-M guard.

A hedge-mode account on the simulator's Binance face, a guard polling it with
``exchange: binance-usdm`` (market rules, position mode), and ccxt's ``binanceusdm`` pointed
at the simulator: what ccxt would send is judged with the order's details, a denial carries
the guard's suggestion, and the suggested order is accepted by the exchange.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pretrade_guard_client import GuardClient, OrderDenied, ReasonCode
from pretrade_guard_client.ccxt import GuardedExchange

from tests.clients.test_ccxt_guarded import BTC, ORDER_PATH, point_at_simulator
from tests.support.guard import BOT_TOKEN, GuardProcess, guard_config, wait_until
from tests.support.processes import SimulatorProcess, free_port
from tests.support.sim_scenarios import SimAccount

ccxt = pytest.importorskip("ccxt")

pytestmark = pytest.mark.integration

HEDGE = SimAccount("H-1", "sim-key-client-hedge", "sim-secret-client-hedge")


def scenario(path: Path) -> Path:
    account = {
        "id": HEDGE.id,
        "api_key": HEDGE.api_key,
        "api_secret": HEDGE.api_secret,
        "account": {
            "walletBalance": "50000",
            "marginBalance": "50000",
            "availableBalance": "50000",
            "maintenanceMargin": "10",
        },
        "binance": {"dualSidePosition": True, "leverage": {"BTCUSDT": 20}},
    }
    path.write_text(yaml.safe_dump({"accounts": [account]}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hedge_guard(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SimulatorProcess, GuardProcess]]:
    tmp = tmp_path_factory.mktemp("hedge")
    with SimulatorProcess(scenario(tmp / "hedge.yaml"), log_path=tmp / "sim.log") as sim:
        accounts = {
            "hedge": {
                "exchange": "binance-usdm",
                "base_url": sim.base_url,
                "api_key": HEDGE.api_key,
                "api_secret": HEDGE.api_secret,
                "options": {"sapi_base_url": sim.base_url},
            }
        }
        config = guard_config(
            accounts,
            port=free_port(),
            poll={"status_interval_s": 1.0, "snapshot_interval_s": 1.0},
            policy={"max_status_age_s": 30, "max_snapshot_age_s": 30},
        )
        guard = GuardProcess(config, tmp).start()
        try:
            with GuardClient(guard.base_url, BOT_TOKEN, timeout=5) as client:

                def settled() -> bool:
                    probe = client.can_trade(
                        "hedge", "BTCUSDT", "BUY", "0.01", type="MARKET", position_side="LONG"
                    )
                    return probe.allowed

                wait_until(settled, timeout=30, what="guard with market rules and position mode")
            yield sim, guard
        finally:
            guard.stop()


@pytest.fixture
def hedge(hedge_guard: tuple[SimulatorProcess, GuardProcess]) -> Iterator[GuardedExchange]:
    sim, guard = hedge_guard
    exchange = ccxt.binanceusdm(
        {
            "apiKey": HEDGE.api_key,
            "secret": HEDGE.api_secret,
            "timeout": 5000,
            "options": {"fetchCurrencies": False},
        }
    )
    exchange.session.trust_env = False
    with GuardClient(guard.base_url, BOT_TOKEN, timeout=5) as client:
        wrapped = GuardedExchange(point_at_simulator(exchange, sim), client, "hedge")
        wrapped.load_markets()
        yield wrapped


def orders_sent(sim: SimulatorProcess) -> int:
    return sim.control.request_count(api_key=HEDGE.api_key, path=ORDER_PATH)


def test_hedge_mode_needs_the_position_side_and_ccxt_sends_it(
    hedge: GuardedExchange, hedge_guard: tuple[SimulatorProcess, GuardProcess]
) -> None:
    sim, _ = hedge_guard
    before = orders_sent(sim)
    with pytest.raises(OrderDenied) as denied:
        hedge.create_order(BTC, "limit", "buy", 0.01, 60000)
    assert ReasonCode.POSITION_SIDE_REQUIRED in denied.value.codes
    assert orders_sent(sim) == before  # never sent

    order = hedge.create_order(BTC, "limit", "buy", 0.01, 60000, {"positionSide": "LONG"})
    assert (order["status"], order["info"]["positionSide"]) == ("open", "LONG")
    assert orders_sent(sim) == before + 1


def test_a_denial_suggests_an_order_the_exchange_accepts(
    hedge: GuardedExchange, hedge_guard: tuple[SimulatorProcess, GuardProcess]
) -> None:
    sim, _ = hedge_guard
    before = orders_sent(sim)
    params: dict[str, Any] = {"positionSide": "LONG"}
    tick = Decimal(str(hedge.market(BTC)["precision"]["price"]))
    off_tick = Decimal(60000) + tick / 2
    with pytest.raises(OrderDenied) as denied:
        hedge.create_order(BTC, "limit", "buy", 0.01, str(off_tick), params)
    assert ReasonCode.PRICE_NOT_ON_TICK in denied.value.codes
    assert orders_sent(sim) == before
    (suggestion,) = denied.value.suggestions
    assert suggestion.price is not None
    assert suggestion.price % tick == 0
    order = hedge.create_order(BTC, "limit", "buy", 0.01, str(suggestion.price), params)
    assert order["status"] == "open"
    assert Decimal(order["info"]["price"]) == suggestion.price
    assert orders_sent(sim) == before + 1
