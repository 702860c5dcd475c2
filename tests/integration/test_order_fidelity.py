"""Order fidelity, end to end: the guard denies what Binance would reject for the order itself.

The real guard polls the real simulator's Binance face (exchangeInfo, premiumIndex, the
accounts' modes, positions, leverage limits and open orders). Then

* the issue's examples are answered with the right reason codes and suggestions a bot can
  resend, and a hedge-mode close passes a quantitative-rule lock as on Binance;
* a fidelity run: 10,000+ generated orders (every symbol of the simulator's market, both
  sides, all order types, prices and quantities on and off the filters, one-way and
  hedge-mode accounts, reduce-only orders and hedge closes, open orders and open algo
  orders (``POST /fapi/v1/algoOrder``, listed by ``openAlgoOrders`` only) at the limits) are
  asked of the guard (batches) and of the simulator's ``POST /fapi/v1/order/test`` (which
  validates exactly as binance-order-rules.md describes) on the same, unchanging state. The
  answers must agree on at least 99.9 % of the orders, and the guard must allow **no** order
  that the simulator rejects for an order-level rule. Remaining disagreements are logged with
  the simulator's code and the guard's reasons.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.guard import BOT_TOKEN, READ_TOKEN, GuardProcess, guard_config, wait_until
from tests.support.processes import SimulatorProcess, free_port
from tests.support.signing import API_KEY_HEADER, signed_query
from tests.support.sim_scenarios import SimAccount

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

#: One-way account: a BTCUSDT long with a resting reduce-only take-profit, an ETHUSDT short,
#: two resting SOLUSDT orders (the symbol allows 3), one resting DOGEUSDT stop (1 allowed),
#: one XRPUSDT algo order (2 allowed: one more conditional order fits).
ONE_WAY = SimAccount("F-1", "sim-key-fid-oneway", "sim-secret-fid-oneway")
#: Hedge-mode account: BTCUSDT long and short at once (a resting close on the long), an
#: ETHUSDT long, three resting SOLUSDT orders (at the limit), two XRPUSDT algo orders (at the
#: MAX_NUM_ALGO_ORDERS limit, on a symbol without a position or plain order).
HEDGE = SimAccount("F-2", "sim-key-fid-hedge", "sim-secret-fid-hedge")
#: One-way account with little margin: margin decides many of its orders; three BNBUSDT algo
#: orders (at the MAX_NUM_ORDERS limit of 3: no order of any type fits).
SMALL = SimAccount("F-3", "sim-key-fid-small", "sim-secret-fid-small")
#: Algo orders placed through ``POST /fapi/v1/algoOrder`` before the guard starts:
#: (account, symbol, side, position side, trigger price, quantity).
ALGO_ORDERS = [
    (ONE_WAY, "XRPUSDT", "SELL", "BOTH", "0.5000", "20"),
    (HEDGE, "XRPUSDT", "SELL", "SHORT", "0.5000", "20"),
    (HEDGE, "XRPUSDT", "BUY", "LONG", "0.6000", "20"),
    (SMALL, "BNBUSDT", "SELL", "BOTH", "550.00", "0.05"),
    (SMALL, "BNBUSDT", "SELL", "BOTH", "540.00", "0.05"),
    (SMALL, "BNBUSDT", "BUY", "BOTH", "650.00", "0.05"),
]
NAMES = {ONE_WAY.id: "oneway", HEDGE.id: "hedge", SMALL.id: "small"}
KEYS = {NAMES[a.id]: a for a in (ONE_WAY, HEDGE, SMALL)}

ORDERS = 10_000
BATCH = 500
#: Simulator codes of rules about the order itself (binance-order-rules.md §6): an order the
#: simulator rejects with one of these must never be allowed by the guard.
ORDER_LEVEL = {
    -1111,
    -1115,
    -1116,
    -1121,
    -1122,
    -4141,
    -4061,
    -1106,
    -4002,
    -4007,
    -4013,
    -4014,
    -4004,
    -4005,
    -4023,
    -4016,
    -4024,
    -4164,
    -2025,
    -4045,
    -2022,
    -2027,
    -2019,
}


def _position(symbol: str, side: str, quantity: str, mark: str, leverage: int) -> dict[str, Any]:
    notional = str(Decimal(quantity) * Decimal(mark))
    return {
        "symbol": symbol,
        "side": side,
        "quantity": quantity,
        "entryPrice": mark,
        "markPrice": mark,
        "leverage": leverage,
        "notional": notional,
        "unrealizedPnl": "0",
        "initialMargin": "0",
        "maintenanceMargin": "1",
        "marginType": "CROSSED",
    }


def _order(
    order_id: int, symbol: str, side: str, kind: str, qty: str, **extra: Any
) -> dict[str, Any]:
    return {
        "orderId": str(order_id),
        "symbol": symbol,
        "side": side,
        "type": kind,
        "quantity": qty,
        "price": extra.pop("price", "0"),
        "time": 1700000000000,
        **extra,
    }


def _account(acc: SimAccount, available: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": acc.id,
        "api_key": acc.api_key,
        "api_secret": acc.api_secret,
        "account": {
            "walletBalance": available,
            "marginBalance": available,
            "availableBalance": available,
            "maintenanceMargin": "10",
            **extra.pop("account", {}),
        },
        **extra,
    }


def scenario(path: Path) -> Path:
    accounts = [
        _account(
            ONE_WAY,
            "60000",
            account={
                "positions": [
                    _position("BTCUSDT", "LONG", "0.5", "60000", 10),
                    _position("ETHUSDT", "SHORT", "2", "3000", 20),
                ],
                "openOrders": [
                    _order(11, "BTCUSDT", "SELL", "LIMIT", "0.2", price="66000", reduceOnly=True),
                    _order(12, "SOLUSDT", "BUY", "LIMIT", "3", price="140"),
                    _order(13, "SOLUSDT", "SELL", "LIMIT", "2", price="160"),
                    _order(14, "DOGEUSDT", "BUY", "STOP_MARKET", "100", stopPrice="0.16"),
                ],
            },
            binance={"leverage": {"BTCUSDT": 10, "ETHUSDT": 20, "XRPUSDT": 50}},
        ),
        _account(
            HEDGE,
            "80000",
            account={
                "positions": [
                    _position("BTCUSDT", "LONG", "0.4", "60000", 20),
                    _position("BTCUSDT", "SHORT", "0.3", "60000", 20),
                    _position("ETHUSDT", "LONG", "1.5", "3000", 20),
                ],
                "openOrders": [
                    _order(
                        21, "BTCUSDT", "SELL", "LIMIT", "0.1", price="65000", positionSide="LONG"
                    ),
                    _order(22, "SOLUSDT", "BUY", "LIMIT", "1", price="140", positionSide="LONG"),
                    _order(23, "SOLUSDT", "BUY", "LIMIT", "1", price="141", positionSide="LONG"),
                    _order(24, "SOLUSDT", "SELL", "LIMIT", "1", price="160", positionSide="SHORT"),
                ],
            },
            # ETHUSDT at 125x: a maximum position of 50,000 USDT (-2027 above it).
            binance={"dualSidePosition": True, "leverage": {"BTCUSDT": 20, "ETHUSDT": 125}},
        ),
        _account(
            SMALL,
            "150",
            account={"positions": [_position("XRPUSDT", "LONG", "100", "0.55", 5)]},
            binance={"leverage": {"BTCUSDT": 5, "XRPUSDT": 5, "DOGEUSDT": 2}},
        ),
    ]
    body = {
        # The test sends 10,000+ order tests: the simulator's IP budget must not be the limit.
        "binance_weight_limit_per_minute": 10_000_000,
        "weight_window_s": 60,
        # The harder case for the guard: Binance does not say whether v3 account lists a
        # symbol whose only open orders are algo orders; here it does not, so the guard must
        # find them with its all-symbols openAlgoOrders sweep.
        "v3_lists_algo_symbols": False,
        "accounts": accounts,
    }
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fidelity(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SimulatorProcess, GuardProcess]]:
    tmp = tmp_path_factory.mktemp("fidelity")
    with SimulatorProcess(scenario(tmp / "fidelity.yaml"), log_path=tmp / "sim.log") as sim:
        # Open-order limits the scenario's resting orders sit at or just below.
        sim.control.patch_market("SOLUSDT", {"maxNumOrders": 3, "maxNumAlgoOrders": 2})
        sim.control.patch_market("DOGEUSDT", {"maxNumAlgoOrders": 1})
        # A step coarser than the precision: quantities off the step within the precision.
        sim.control.patch_market(
            "BNBUSDT", {"stepSize": "0.05", "minQty": "0.05", "maxNumOrders": 3}
        )
        sim.control.patch_market("XRPUSDT", {"maxNumAlgoOrders": 2})
        for acc, symbol, side, position_side, trigger, quantity in ALGO_ORDERS:
            params = {"symbol": symbol, "side": side, "type": "STOP_MARKET"}
            if position_side != "BOTH":
                params["positionSide"] = position_side
            placed = _algo_order(
                sim, acc, {**params, "triggerPrice": trigger, "quantity": quantity}
            )
            assert placed.status_code == 200, placed.text
        accounts = {
            NAMES[acc.id]: {
                "exchange": "binance-usdm",
                "base_url": sim.base_url,
                "api_key": acc.api_key,
                "api_secret": acc.api_secret,
                # The hedge account sweeps every symbol's algo orders often: a test places
                # one on a symbol the v3 account does not list while the guard runs.
                "options": {
                    "sapi_base_url": sim.base_url,
                    **({"algo_orders_sweep_s": 3} if acc is HEDGE else {}),
                },
            }
            for acc in (ONE_WAY, HEDGE, SMALL)
        }
        config = guard_config(
            accounts,
            port=free_port(),
            poll={"status_interval_s": 2.0, "snapshot_interval_s": 2.0},
            # The state does not change during the run; the exchange's ORDERS limits would
            # count the guard's 10,000 allowed answers as orders (they are not sent).
            policy={
                "max_status_age_s": 120,
                "max_snapshot_age_s": 120,
                "exchange_order_rate": False,
            },
            extra={"server": {"host": "127.0.0.1", "port": 0, "decision_log": "none"}},
        )
        config["server"]["port"] = free_port()
        guard = GuardProcess(config, tmp)
        guard.start()
        try:
            probes = [
                {"account": "oneway", "position_side": "BOTH"},
                {"account": "hedge", "position_side": "LONG"},
                {"account": "small", "position_side": "BOTH"},
            ]
            with guard.client() as client:

                def settled() -> bool:
                    return all(
                        client.get(
                            "/can-trade",
                            params={
                                "symbol": "XRPUSDT",
                                "side": "BUY",
                                "quantity": "10",
                                "type": "MARKET",
                                **probe,
                            },
                        ).json()["allowed"]
                        for probe in probes
                    )

                wait_until(settled, timeout=30, what="guard with market rules and marks")
            yield sim, guard
        finally:
            guard.stop()


def _algo_order(
    sim: SimulatorProcess, acc: SimAccount, params: Mapping[str, str]
) -> httpx.Response:
    """``POST /fapi/v1/algoOrder`` (a conditional order resting in the Algo Service)."""
    return _signed(sim, acc, "POST", "/fapi/v1/algoOrder", {"algoType": "CONDITIONAL", **params})


def _signed(
    sim: SimulatorProcess, acc: SimAccount, method: str, path: str, params: Mapping[str, str]
) -> httpx.Response:
    body = signed_query(acc.api_secret, params)
    headers = {API_KEY_HEADER: acc.api_key, "Content-Type": "application/x-www-form-urlencoded"}
    with httpx.Client(base_url=sim.base_url, timeout=10) as client:
        return client.request(method, path, content=body.encode(), headers=headers)


# ------------------------------------------------------------------ the issue's examples


def _decide(guard: GuardProcess, **params: str) -> dict[str, Any]:
    with guard.client() as client:
        answer = client.get("/can-trade", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _codes(body: Mapping[str, Any]) -> list[str]:
    return [r["code"] for r in body["reasons"]]


def test_the_issues_examples_are_denied_with_what_to_send_instead(
    fidelity: tuple[SimulatorProcess, GuardProcess],
) -> None:
    _, guard = fidelity
    off = _decide(
        guard,
        account="oneway",
        symbol="ETHUSDT",
        side="BUY",
        quantity="0.0101234",
        price="3000.123456",
        time_in_force="GTC",
    )
    assert _codes(off) == ["PRICE_NOT_ON_TICK", "QUANTITY_NOT_ON_STEP"]
    assert off["reasons"][0]["suggestion"] == {"price": "3000.12"}
    assert off["reasons"][1]["suggestion"] == {"quantity": "0.01"}

    tiny = _decide(
        guard, account="oneway", symbol="ETHUSDT", side="BUY", quantity="0.001", price="3000"
    )
    assert _codes(tiny) == ["NOTIONAL_TOO_SMALL"]
    assert (tiny["reasons"][0]["limit"], tiny["reasons"][0]["observed"]) == ("20", "3")
    assert tiny["reasons"][0]["suggestion"] == {"quantity": "0.007"}
    resend = _decide(
        guard, account="oneway", symbol="ETHUSDT", side="BUY", quantity="0.007", price="3000"
    )
    assert resend["allowed"], resend

    unknown = _decide(
        guard, account="oneway", symbol="FOOBARUSDT", side="BUY", quantity="1", price="1"
    )
    assert _codes(unknown) == ["UNKNOWN_SYMBOL"]
    settling = _decide(
        guard, account="oneway", symbol="MATICUSDT", side="BUY", quantity="100", price="0.4"
    )
    assert _codes(settling) == ["SYMBOL_NOT_TRADING"]

    # Hedge mode: a position side is required, reduce_only is refused, and each says what
    # to send instead.
    bare = _decide(
        guard, account="hedge", symbol="ETHUSDT", side="BUY", quantity="0.01", price="3000"
    )
    assert _codes(bare) == ["POSITION_SIDE_REQUIRED"]
    assert bare["reasons"][0]["suggestion"] == {"position_side": "LONG"}
    reduce = _decide(
        guard,
        account="hedge",
        symbol="ETHUSDT",
        side="SELL",
        quantity="0.5",
        price="3000",
        reduce_only="true",
    )
    assert "REDUCE_ONLY_NOT_ALLOWED" in _codes(reduce)
    one_way = _decide(
        guard,
        account="oneway",
        symbol="BTCUSDT",
        side="SELL",
        quantity="0.1",
        price="60000",
        position_side="LONG",
    )
    assert _codes(one_way) == ["POSITION_SIDE_NOT_ALLOWED"]


def test_open_algo_orders_count_toward_the_exchanges_order_limits(
    fidelity: tuple[SimulatorProcess, GuardProcess],
) -> None:
    """Conditional orders resting in Binance's Algo Service are listed by ``openAlgoOrders``
    only; the guard reads them and counts them as Binance does (-4045, -2025)."""
    sim, guard = fidelity
    stop = {"symbol": "XRPUSDT", "side": "SELL", "type": "STOP_MARKET", "stop_price": "0.5"}
    full = _decide(guard, account="hedge", position_side="SHORT", quantity="20", **stop)
    assert _codes(full) == ["TOO_MANY_OPEN_ORDERS"]
    assert (full["reasons"][0]["limit"], full["reasons"][0]["observed"]) == ("2", "2")
    assert "MAX_NUM_ALGO_ORDERS" in full["reasons"][0]["message"]
    # One below the limit on the one-way account: one more conditional order fits.
    assert _decide(guard, account="oneway", quantity="20", **stop)["allowed"]
    # Three algo orders on BNBUSDT fill MAX_NUM_ORDERS (3): a plain order does not fit either.
    plain = _decide(
        guard, account="small", symbol="BNBUSDT", side="BUY", quantity="0.05", price="600"
    )
    assert _codes(plain) == ["TOO_MANY_OPEN_ORDERS"]
    assert "(3 of them algo orders)" in plain["reasons"][0]["message"]
    assert guard_account_orders(guard, "small") == "algo algo algo"

    # Placed while the guard runs, on a symbol the v3 account does not list (no position, no
    # plain order): the all-symbols sweep finds it, and a cancel frees the slot again.
    doge = {
        "account": "hedge",
        "symbol": "DOGEUSDT",
        "side": "BUY",
        "type": "STOP_MARKET",
        "position_side": "LONG",
        "stop_price": "0.16",
        "quantity": "100",
    }
    assert _decide(guard, **doge)["allowed"]
    placed = _algo_order(
        sim,
        HEDGE,
        {
            "symbol": "DOGEUSDT",
            "side": "BUY",
            "positionSide": "LONG",
            "type": "STOP_MARKET",
            "triggerPrice": "0.16",
            "quantity": "100",
        },
    )
    assert placed.status_code == 200, placed.text
    try:
        wait_until(
            lambda: _codes(_decide(guard, **doge)) == ["TOO_MANY_OPEN_ORDERS"],
            timeout=30,
            what="the new algo order counted by the guard",
        )
    finally:
        cancelled = _signed(
            sim, HEDGE, "DELETE", "/fapi/v1/algoOrder", {"algoId": str(placed.json()["algoId"])}
        )
        assert cancelled.status_code == 200, cancelled.text
    wait_until(lambda: _decide(guard, **doge)["allowed"], timeout=30, what="the slot freed")


def guard_account_orders(guard: GuardProcess, account: str) -> str:
    """The guard's view of the account's open orders (``GET /accounts/<account>``)."""
    with guard.client(READ_TOKEN) as client:
        answer = client.get(f"/accounts/{account}")
    assert answer.status_code == 200, answer.text
    orders = answer.json()["snapshot"]["open_orders"]
    return " ".join("algo" if o["algo"] else "plain" for o in orders)


def test_a_hedge_mode_close_passes_a_symbol_lock_as_on_binance(
    fidelity: tuple[SimulatorProcess, GuardProcess],
) -> None:
    sim, guard = fidelity
    close = {
        "account": "hedge",
        "symbol": "ETHUSDT",
        "side": "SELL",
        "quantity": "0.5",
        "price": "3000",
        "position_side": "LONG",
    }
    opening = {**close, "side": "BUY"}
    control = sim.control
    control.set_indicators(
        HEDGE.id,
        {
            "ETHUSDT": [
                {
                    "indicator": "DR",
                    "value": 0.99,
                    "triggerValue": 0.99,
                    "isLocked": True,
                    "plannedRecoverTime": 4102444800000,
                }
            ]
        },
    )
    try:
        wait_until(
            lambda: "SYMBOL_LOCKED" in _codes(_decide(guard, **opening)),
            timeout=15,
            what="the lock seen by the guard",
        )
        assert _decide(guard, **close)["allowed"]
        # Bigger than the long: not a close any more, so the lock applies.
        too_big = _decide(guard, **{**close, "quantity": "2"})
        assert {"SYMBOL_LOCKED", "REDUCE_ONLY_WOULD_INCREASE"} <= set(_codes(too_big))
    finally:
        control.set_indicators(HEDGE.id, {})
        wait_until(lambda: _decide(guard, **opening)["allowed"], timeout=15, what="lock lifted")


# ------------------------------------------------------------------ generated orders


@dataclass(frozen=True)
class Case:
    account: str
    guard: dict[str, Any]  # the /can-trade batch order
    binance: dict[str, str]  # the order/test parameters


def _on(value: Decimal, step: Decimal, base: Decimal = Decimal(0)) -> Decimal:
    steps = ((value - base) / step).to_integral_value(rounding=ROUND_FLOOR)
    return base + steps * step


def _text(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _quantity(rng: random.Random, spec: Mapping[str, Any], market: bool) -> Decimal:
    step = Decimal(spec["marketStepSize" if market and spec.get("marketStepSize") else "stepSize"])
    low = Decimal(spec["minQty"])
    high = Decimal(spec["marketMaxQty"] if market and spec.get("marketMaxQty") else spec["maxQty"])
    mark = Decimal(spec["markPrice"])
    roll = rng.random()
    if roll < 0.04:
        value = low / 2 if low > step else low - step / 2  # below the minimum
    elif roll < 0.08:
        value = high + step * rng.randint(1, 5)  # above the maximum
    else:
        # A notional between 0.2 and 5 times the minimum notional, sometimes much larger.
        target = Decimal(spec["minNotional"]) * Decimal(
            str(rng.choice([0.2, 0.6, 0.95, 1.05, 2, 5, 40, 400, 3000]))
        )
        value = max(low, _on(target / mark, step, low))
    if rng.random() < 0.12:
        # Off the step: by a third of it (usually past the precision too), or by one unit of
        # the quantity precision (on a coarse step: off the step, within the precision).
        unit = Decimal(1).scaleb(-int(spec["quantityPrecision"]))
        value += rng.choice([step / 3, unit])
    return value if value > 0 else step


def _price(rng: random.Random, spec: Mapping[str, Any], around: Decimal) -> Decimal:
    tick = Decimal(spec["tickSize"])
    low = Decimal(spec["minPrice"])
    roll = rng.random()
    if roll < 0.02:
        return max(tick, low - tick * rng.randint(1, 10))  # below minPrice
    if roll < 0.03:
        return Decimal(spec["maxPrice"]) + tick  # above maxPrice
    factor = Decimal(str(rng.choice([0.8, 0.9, 0.94, 0.96, 0.99, 1, 1.01, 1.04, 1.06, 1.1, 1.2])))
    price = max(low, _on(around * factor, tick, low))
    if rng.random() < 0.12:
        # Off the tick: by a third of it, or by one unit of the price precision.
        price += rng.choice([tick / 3, Decimal(1).scaleb(-int(spec["pricePrecision"]))])
    return price


TYPES = (
    ["LIMIT"] * 8
    + ["MARKET"] * 5
    + [
        "STOP",
        "STOP_MARKET",
        "TAKE_PROFIT",
        "TAKE_PROFIT_MARKET",
        "TRAILING_STOP_MARKET",
    ]
)
SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"] * 4 + [
    "MATICUSDT",
    "FOOBARUSDT",
]


def generate(markets: Mapping[str, Mapping[str, Any]], count: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases: list[Case] = []
    while len(cases) < count:
        account = rng.choice(["oneway", "oneway", "hedge", "hedge", "small"])
        symbol = rng.choice(SYMBOLS)
        spec = markets.get(symbol, markets["BTCUSDT"])
        side = rng.choice(["BUY", "SELL"])
        kind = rng.choice(TYPES)
        mark = Decimal(spec["markPrice"])
        guard: dict[str, Any] = {"account": account, "symbol": symbol, "side": side, "type": kind}
        params: dict[str, str] = {"symbol": symbol, "side": side, "type": kind}
        close_position = kind in ("STOP_MARKET", "TAKE_PROFIT_MARKET") and rng.random() < 0.1
        if not close_position:
            quantity = _text(_quantity(rng, spec, kind == "MARKET"))
            guard["quantity"] = params["quantity"] = quantity
        else:
            guard["close_position"] = True
            params["closePosition"] = "true"
        if kind in ("LIMIT", "STOP", "TAKE_PROFIT"):
            guard["price"] = params["price"] = _text(_price(rng, spec, mark))
        if kind in ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"):
            guard["stop_price"] = params["stopPrice"] = _text(_price(rng, spec, mark))
        if kind == "LIMIT":
            tif = rng.choice(["GTC", "GTC", "GTC", "IOC", "FOK", "GTX"])
            guard["time_in_force"] = params["timeInForce"] = tif
        if kind == "TRAILING_STOP_MARKET":
            params["callbackRate"] = "1"  # required by Binance; not a guard field
        hedge = account == "hedge"
        roll = rng.random()
        if hedge:
            if roll < 0.9:  # open (BUY+LONG, SELL+SHORT) or close (SELL+LONG, BUY+SHORT)
                guard["position_side"] = params["positionSide"] = rng.choice(["LONG", "SHORT"])
            elif roll < 0.95:
                guard["position_side"] = params["positionSide"] = "BOTH"
            elif not close_position:
                guard["reduce_only"] = True
                params["reduceOnly"] = "true"
                guard["position_side"] = params["positionSide"] = rng.choice(["LONG", "SHORT"])
        elif roll < 0.05:
            guard["position_side"] = params["positionSide"] = rng.choice(["LONG", "SHORT"])
        elif roll < 0.1:
            guard["position_side"] = params["positionSide"] = "BOTH"
        if not hedge and not close_position and rng.random() < 0.2:
            guard["reduce_only"] = True
            params["reduceOnly"] = "true"
        cases.append(Case(account, guard, params))
    return cases


async def _guard_answers(guard: GuardProcess, cases: list[Case]) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {BOT_TOKEN}"}
    answers: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=guard.base_url, headers=headers, timeout=60) as client:
        for start in range(0, len(cases), BATCH):
            chunk = cases[start : start + BATCH]
            reply = await client.post(
                "/can-trade/batch", json={"orders": [case.guard for case in chunk]}
            )
            assert reply.status_code == 200, reply.text[:2000]
            answers.extend(reply.json()["decisions"])
    return answers


async def _simulator_answers(sim: SimulatorProcess, cases: list[Case]) -> list[int]:
    """0 when ``order/test`` accepts the order, else Binance's error code."""
    results: list[int] = [0] * len(cases)
    limit = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=30) as client:

        async def one(index: int, case: Case) -> None:
            acc = KEYS[case.account]
            async with limit:
                # Signed just before sending: a queued request must not outlive recvWindow.
                body = signed_query(acc.api_secret, case.binance)
                reply = await client.post(
                    "/fapi/v1/order/test",
                    content=body.encode(),
                    headers={
                        API_KEY_HEADER: acc.api_key,
                        "Content-Type": "application/x-www-form-urlencoded",
                    },
                )
            if reply.status_code == 200:
                return
            code = reply.json().get("code")
            assert isinstance(code, int), reply.text
            assert reply.status_code == 400, reply.text
            results[index] = code

        await asyncio.gather(*(one(i, case) for i, case in enumerate(cases)))
    return results


@pytest.mark.timeout(600)
async def test_guard_agrees_with_the_exchanges_order_test_on_generated_orders(
    fidelity: tuple[SimulatorProcess, GuardProcess],
) -> None:
    sim, guard = fidelity
    markets = sim.control.markets()
    cases = generate(markets, ORDERS, seed=14)
    started = time.monotonic()
    decisions = await _guard_answers(guard, cases)
    asked = time.monotonic()
    codes = await _simulator_answers(sim, cases)
    log.info(
        "guard: %.1f s for %d orders; simulator order/test: %.1f s",
        asked - started, len(cases), time.monotonic() - asked,
    )  # fmt: skip

    agree = 0
    missed: list[str] = []  # the simulator rejects an order-level rule, the guard allows
    stricter: Counter[tuple[int, str]] = Counter()
    by_code: Counter[int] = Counter()
    for case, decision, code in zip(cases, decisions, codes, strict=True):
        by_code[code] += 1
        allowed = bool(decision["allowed"])
        if allowed == (code == 0):
            agree += 1
            continue
        reasons = ",".join(r["code"] for r in decision["reasons"])
        if allowed:
            missed.append(f"{case.account} {case.binance} -> simulator {code}")
        else:
            stricter[(code, reasons)] += 1
            log.info("guard stricter: %s %s -> %s", case.account, case.binance, reasons)
    total = len(cases)
    rate = agree / total
    log.info(
        "fidelity: %d orders, %d agree (%.3f %%), accepted by the simulator %d, codes %s",
        total,
        agree,
        rate * 100,
        by_code[0],
        dict(by_code.most_common()),
    )
    for (code, reasons), n in stricter.most_common():
        log.info("disagreement x%d: simulator %s, guard %s", n, code, reasons)
    # The run means something: both answers occur, over many different rules.
    assert total >= 10_000
    assert by_code[0] > total // 10, by_code
    assert len(by_code) >= 15, by_code
    assert not [m for m in missed if int(m.rsplit(" ", 1)[1]) in ORDER_LEVEL], missed[:20]
    assert not missed, missed[:20]
    assert rate >= 0.999, (rate, stricter.most_common(10))
