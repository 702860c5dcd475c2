"""Orders on the Binance face over real HTTP: ``order/test`` and ``order`` answer Binance's
rejection codes for the order itself, and an accepted order rests until it is cancelled.

basic.yaml's HEALTHY account (A-1001): one-way mode, BTCUSDT LONG 0.5 at 10x, one open ETHUSDT
BUY order, availableBalance 7485.00. Default market: BTCUSDT tick 0.10, step 0.001, min
notional 100, mark 60000.00, PERCENT_PRICE 1.05 / 0.95.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.processes import StartSimulator
from tests.support.signing import signed_get, signed_send
from tests.support.sim_control import SimControl
from tests.support.sim_scenarios import HEALTHY, QUANT_LOCKED, SimAccount

pytestmark = pytest.mark.integration

TEST = "/fapi/v1/order/test"
ORDER = "/fapi/v1/order"


def send(
    exchange: httpx.Client,
    method: str,
    path: str,
    params: Mapping[str, str | int],
    who: SimAccount = HEALTHY,
    *,
    in_body: bool = True,
) -> httpx.Response:
    return signed_send(exchange, method, path, who.api_key, who.api_secret, params, in_body=in_body)


def code(response: httpx.Response) -> int:
    """The Binance error code of a refusal, 0 for an accepted order."""
    if response.status_code == 200:
        return 0
    body = response.json()
    assert set(body) == {"code", "msg"}, body
    assert response.status_code == 400, response.text
    result: int = body["code"]
    return result


def limit(symbol: str, side: str, quantity: str, price: str, **extra: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "side": side,
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": quantity,
        "price": price,
        **extra,
    }


def market(symbol: str, side: str, quantity: str, **extra: str) -> dict[str, Any]:
    return {"symbol": symbol, "side": side, "type": "MARKET", "quantity": quantity, **extra}


def open_orders(exchange: httpx.Client, who: SimAccount, symbol: str | None = None) -> Any:
    params: dict[str, str | int] = {} if symbol is None else {"symbol": symbol}
    response = signed_get(exchange, "/fapi/v1/openOrders", who.api_key, who.api_secret, params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_issue_examples_are_rejected_with_binance_codes(exchange: httpx.Client) -> None:
    # issue 14: off tick and off step with too many decimals, a 0.03 USDT notional, unlisted.
    assert (
        code(send(exchange, "POST", TEST, limit("ETHUSDT", "BUY", "0.0001234", "60000.123456")))
        == -1111
    )
    assert code(send(exchange, "POST", TEST, limit("ETHUSDT", "BUY", "0.00001", "3000"))) == -1111
    assert code(send(exchange, "POST", TEST, limit("ETHUSDT", "BUY", "0.001", "3000"))) == -4164
    assert code(send(exchange, "POST", TEST, limit("FOOBARUSDT", "BUY", "1", "3000"))) == -1121
    assert code(send(exchange, "POST", TEST, limit("BTCUSDT", "BUY", "0.01", "60000.15"))) == -4014
    assert code(send(exchange, "POST", TEST, limit("SOLUSDT", "BUY", "1.5", "150"))) == -1111
    assert code(send(exchange, "POST", TEST, limit("BNBUSDT", "BUY", "0.015", "600"))) == -1111
    assert code(send(exchange, "POST", TEST, limit("BTCUSDT", "BUY", "0.0015", "60000"))) == -1111
    assert code(send(exchange, "POST", TEST, limit("XRPUSDT", "BUY", "10.0", "0.55005"))) == -1111
    accepted = send(exchange, "POST", TEST, limit("BTCUSDT", "BUY", "0.010", "60000.10"))
    assert code(accepted) == 0
    body = accepted.json()
    assert (body["status"], body["orderId"], body["origQty"], body["price"]) == (
        "NEW",
        0,
        "0.010",
        "60000.10",
    )
    # A test order never rests.
    assert [o["symbol"] for o in open_orders(exchange, HEALTHY)] == ["ETHUSDT"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"side": "BUY", "type": "LIMIT"}, -1102),  # no symbol
        (limit("BTCUSDT", "HOLD", "0.01", "60000"), -1117),
        ({**limit("BTCUSDT", "BUY", "0.01", "60000"), "type": "ICEBERG"}, -1116),
        (
            {**limit("DOGEUSDT", "BUY", "100", "0.15"), "type": "TAKE_PROFIT", "stopPrice": "0.16"},
            -1116,
        ),
        (limit("MATICUSDT", "BUY", "100", "0.4"), -1122),  # SETTLING
        (
            {k: v for k, v in limit("BTCUSDT", "BUY", "0.01", "60000").items() if k != "price"},
            -1102,
        ),
        (
            {
                k: v
                for k, v in limit("BTCUSDT", "BUY", "0.01", "60000").items()
                if k != "timeInForce"
            },
            -1102,
        ),
        (market("BTCUSDT", "BUY", "0.01", timeInForce="GTC"), -1114),
        (market("BTCUSDT", "BUY", "0.01", price="60000"), -1106),
        (limit("BTCUSDT", "BUY", "0.01", "60000", timeInForce="GTE"), -1115),
        (limit("BTCUSDT", "BUY", "0.01", "abc"), -1102),
        (limit("BTCUSDT", "BUY", "0.01", "-5"), -4001),
        (limit("BTCUSDT", "BUY", "0", "60000"), -4003),
        (limit("BTCUSDT", "BUY", "0.01", "200"), -4013),  # below minPrice 261.10
        (limit("BTCUSDT", "SELL", "0.01", "900000"), -4002),
        (limit("BTCUSDT", "BUY", "2000", "60000"), -4005),
        (limit("SOLUSDT", "BUY", "0.4", "150"), -1111),
        (limit("BTCUSDT", "BUY", "0.01", "63000.10"), -4016),  # above mark * 1.05
        (limit("BTCUSDT", "SELL", "0.01", "56999.90"), -4024),  # below mark * 0.95
        (limit("BTCUSDT", "BUY", "0.001", "60000"), -4164),  # 60 USDT < 100
        (market("DOGEUSDT", "BUY", "40000"), -4005),  # MARKET_LOT_SIZE max 30000
        (limit("DOGEUSDT", "BUY", "40000", "0.15"), 0),  # LOT_SIZE allows it
        (limit("BTCUSDT", "BUY", "0.01", "60000", positionSide="LONG"), -4061),
        (limit("BTCUSDT", "BUY", "0.01", "60000", positionSide="UP"), -4060),
        (limit("BTCUSDT", "BUY", "0.01", "60000", newClientOrderId="bad id!"), -4015),
        (limit("BTCUSDT", "SELL", "0.001", "60000", reduceOnly="true"), 0),  # exempt from -4164
        (limit("BTCUSDT", "SELL", "0.6", "60000", reduceOnly="true"), -2022),  # long is 0.5
        (limit("BTCUSDT", "BUY", "0.01", "60000", reduceOnly="true"), -2022),  # adds
        (limit("BTCUSDT", "BUY", "0.2", "60000"), 0),  # 1,200 USDT margin at 10x
        (limit("BTCUSDT", "BUY", "1.3", "60000"), -2019),  # 7,800 > 7,485 available
        ({**market("BTCUSDT", "SELL", "0.01"), "type": "STOP_MARKET", "stopPrice": "59000"}, 0),
        (
            {
                "symbol": "BTCUSDT",
                "side": "SELL",
                "type": "STOP_MARKET",
                "stopPrice": "59000",
                "closePosition": "true",
                "quantity": "0.1",
            },
            -4137,
        ),
        (
            {
                "symbol": "BTCUSDT",
                "side": "SELL",
                "type": "TRAILING_STOP_MARKET",
                "quantity": "0.01",
                "callbackRate": "20",
            },
            -1130,
        ),
    ],
)
def test_order_test_answers_like_binance(
    exchange: httpx.Client, params: dict[str, str], expected: int
) -> None:
    assert code(send(exchange, "POST", TEST, params)) == expected


def test_price_bands_follow_the_mark_and_the_book(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    order = limit("BTCUSDT", "BUY", "0.01", "63000.10")
    assert code(send(exchange, "POST", TEST, order)) == -4016
    sim_control.patch_market("BTCUSDT", {"markPrice": "61000"})
    assert code(send(exchange, "POST", TEST, order)) == 0
    assert code(send(exchange, "POST", TEST, market("BTCUSDT", "BUY", "0.01"))) == 0
    sim_control.patch_market("BTCUSDT", {"bestAsk": "64100"})  # above 61000 * 1.05
    assert code(send(exchange, "POST", TEST, market("BTCUSDT", "BUY", "0.01"))) == -4131
    assert code(send(exchange, "POST", TEST, market("BTCUSDT", "SELL", "0.01"))) == 0


def test_position_limit_at_leverage(exchange: httpx.Client, sim_control: SimControl) -> None:
    # At 125x BTCUSDT allows 50,000 USDT of position: 0.5 held (30,000) + 0.3 more is too much.
    sim_control.patch_binance(HEALTHY.id, {"leverage": {"BTCUSDT": 125}})
    assert code(send(exchange, "POST", TEST, limit("BTCUSDT", "BUY", "0.3", "60000"))) == 0
    assert code(send(exchange, "POST", TEST, limit("BTCUSDT", "BUY", "0.4", "60000"))) == -2027
    # Selling does not add to the long: fine.
    assert code(send(exchange, "POST", TEST, limit("BTCUSDT", "SELL", "0.4", "60000"))) == 0


def test_hedge_mode_needs_position_side_and_closes_pass_a_lock(
    exchange: httpx.Client, sim_control: SimControl
) -> None:
    sim_control.patch_binance(QUANT_LOCKED.id, {"dualSidePosition": True})
    position = {"symbol": "BTCUSDT", "side": "LONG", "quantity": "0.5", "leverage": 10}
    sim_control.patch_account(
        QUANT_LOCKED.id, {"positions": [position], "availableBalance": "10000"}
    )
    order = limit("BTCUSDT", "SELL", "0.2", "60000")
    assert code(send(exchange, "POST", TEST, order, QUANT_LOCKED)) == -4061
    assert (
        code(send(exchange, "POST", TEST, {**order, "positionSide": "BOTH"}, QUANT_LOCKED)) == -4061
    )
    close = {**order, "positionSide": "LONG"}
    with_flag = {**close, "reduceOnly": "false"}
    assert code(send(exchange, "POST", TEST, with_flag, QUANT_LOCKED)) == -1106
    # BTCUSDT is locked by the quantitative rules (-4400), but the close reduces: accepted.
    assert code(send(exchange, "POST", TEST, close, QUANT_LOCKED)) == 0
    opening = {**order, "side": "BUY", "positionSide": "LONG"}
    assert code(send(exchange, "POST", TEST, opening, QUANT_LOCKED)) == -4400
    # The close is bounded by the position net of resting closes.
    assert code(send(exchange, "POST", ORDER, close, QUANT_LOCKED)) == 0
    assert code(send(exchange, "POST", ORDER, close, QUANT_LOCKED)) == 0
    assert code(send(exchange, "POST", TEST, close, QUANT_LOCKED)) == -2022
    rows = open_orders(exchange, QUANT_LOCKED, "BTCUSDT")
    assert [(o["side"], o["positionSide"], o["origQty"]) for o in rows] == [
        ("SELL", "LONG", "0.2"),
        ("SELL", "LONG", "0.2"),
    ]


def test_resting_orders_count_and_cancel(exchange: httpx.Client, sim_control: SimControl) -> None:
    sim_control.patch_market("BTCUSDT", {"maxNumOrders": 2})
    first = send(
        exchange, "POST", ORDER, limit("BTCUSDT", "BUY", "0.01", "59000", newClientOrderId="a-1")
    )
    assert code(first) == 0
    assert first.headers["X-MBX-ORDER-COUNT-10S"] == "1"
    placed = first.json()
    assert placed["status"] == "NEW"
    assert isinstance(placed["orderId"], int)
    # Sent in the query string this time (binance-futures-connector's way).
    second = send(exchange, "POST", ORDER, limit("BTCUSDT", "BUY", "0.01", "58000"), in_body=False)
    assert code(second) == 0
    third = limit("BTCUSDT", "BUY", "0.01", "57000")
    assert code(send(exchange, "POST", TEST, third)) == -2025  # MAX_NUM_ORDERS is 2
    sim_control.patch_market("BTCUSDT", {"maxNumOrders": 3})
    assert code(send(exchange, "POST", TEST, third)) == 0
    assert code(send(exchange, "POST", TEST, {**third, "newClientOrderId": "a-1"})) == -4116
    rows = open_orders(exchange, HEALTHY, "BTCUSDT")
    assert [o["price"] for o in rows] == ["59000", "58000"]
    # The resting orders reserve margin, 0.01 * price / 10 each: 59 + 58.
    account = sim_control.account(HEALTHY.id)["account"]
    assert (account["availableBalance"], account["initialMargin"]) == ("7368.00", "2782.00")
    assert [o["orderId"] for o in account["openOrders"]][1:] == [
        str(placed["orderId"]),
        str(second.json()["orderId"]),
    ]
    # Cancel one by id, the rest of the symbol at once.
    cancelled = send(exchange, "DELETE", ORDER, {"symbol": "BTCUSDT", "orderId": placed["orderId"]})
    assert code(cancelled) == 0
    assert cancelled.json()["status"] == "CANCELED"
    again = send(exchange, "DELETE", ORDER, {"symbol": "BTCUSDT", "orderId": placed["orderId"]})
    assert code(again) == -2011
    everything = send(exchange, "DELETE", "/fapi/v1/allOpenOrders", {"symbol": "BTCUSDT"})
    assert everything.json() == {
        "code": 200,
        "msg": "The operation of cancel all open order is done.",
    }
    assert open_orders(exchange, HEALTHY, "BTCUSDT") == []
    assert sim_control.account(HEALTHY.id)["account"]["availableBalance"] == "7485.00"
    # The scenario's order (ETHUSDT, orderId "9001") shows in Binance's shape.
    (eth,) = open_orders(exchange, HEALTHY)
    assert (eth["orderId"], eth["origQty"], eth["positionSide"]) == (9001, "1.0", "BOTH")


def test_market_orders_are_acknowledged_and_do_not_rest(exchange: httpx.Client) -> None:
    response = send(exchange, "POST", ORDER, market("BTCUSDT", "BUY", "0.01"))
    assert code(response) == 0
    assert response.json()["status"] == "NEW"
    assert open_orders(exchange, HEALTHY, "BTCUSDT") == []


def test_signature_must_close_the_body(exchange: httpx.Client) -> None:
    good = send(exchange, "POST", TEST, limit("BTCUSDT", "BUY", "0.01", "60000"))
    assert code(good) == 0
    body = good.request.content.decode()
    signature = body.rsplit("&", 1)[1]
    moved = f"{signature}&{body.rsplit('&', 1)[0]}"
    response = exchange.post(
        TEST,
        content=moved.encode(),
        headers={
            "X-MBX-APIKEY": HEALTHY.api_key,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert (response.status_code, response.json()["code"]) == (400, -1102)


def test_the_market_and_the_order_limits_come_from_the_scenario(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    scenario = tmp_path / "market.yaml"
    scenario.write_text(
        yaml.safe_dump(
            {
                "markets": {
                    "FOOUSDT": {
                        "tickSize": "0.5",
                        "minPrice": "0.5",
                        "stepSize": "10",
                        "minQty": "10",
                        "quantityPrecision": 0,
                        "minNotional": "50",
                        "markPrice": "100",
                        "orderTypes": ["LIMIT", "MARKET", "STOP_MARKET"],
                    }
                },
                "order_rate_limits": {"per_10s": 3, "per_minute": 100},
                "algo_service": True,
                "accounts": [
                    {
                        "id": "F-1",
                        "api_key": HEALTHY.api_key,
                        "api_secret": HEALTHY.api_secret,
                        "account": {"availableBalance": "100000"},
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    sim = start_simulator(scenario)
    with httpx.Client(base_url=sim.base_url, timeout=5.0) as exchange:
        info = exchange.get("/fapi/v1/exchangeInfo").json()
        assert [row["symbol"] for row in info["symbols"]] == ["FOOUSDT"]
        assert {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 3} in (
            info["rateLimits"]
        )
        assert code(send(exchange, "POST", TEST, limit("FOOUSDT", "BUY", "20", "100.5"))) == 0
        assert code(send(exchange, "POST", TEST, limit("FOOUSDT", "BUY", "20", "100.2"))) == -4014
        assert code(send(exchange, "POST", TEST, limit("FOOUSDT", "BUY", "25", "100"))) == -4023
        assert code(send(exchange, "POST", TEST, limit("BTCUSDT", "BUY", "1", "100"))) == -1121
        stop = {**market("FOOUSDT", "SELL", "20"), "type": "STOP_MARKET", "stopPrice": "90"}
        assert code(send(exchange, "POST", TEST, stop)) == -4120  # the Algo Service era
        for price in ("99", "98", "97"):
            assert code(send(exchange, "POST", ORDER, limit("FOOUSDT", "BUY", "20", price))) == 0
        refused = send(exchange, "POST", ORDER, limit("FOOUSDT", "BUY", "20", "96"))
        assert (refused.status_code, refused.json()["code"]) == (429, -1015)
        assert len(open_orders(exchange, HEALTHY)) == 3


def test_algo_service_conditional_orders(exchange: httpx.Client, sim_control: SimControl) -> None:
    algo = "/fapi/v1/algoOrder"
    stop = {
        "algoType": "CONDITIONAL",
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "STOP_MARKET",
        "quantity": "0.1",
        "triggerPrice": "55000",
        "clientAlgoId": "sl-1",
    }
    placed = send(exchange, "POST", algo, stop)
    assert code(placed) == 0
    row = placed.json()
    assert (row["algoType"], row["orderType"], row["triggerPrice"], row["algoStatus"]) == (
        "CONDITIONAL",
        "STOP_MARKET",
        "55000",
        "NEW",
    )
    assert isinstance(row["algoId"], int)
    assert code(send(exchange, "POST", algo, stop)) == -4116  # clientAlgoId taken
    other = {**stop, "clientAlgoId": "sl-x"}
    assert code(send(exchange, "POST", algo, {**other, "type": "LIMIT"})) == -1116
    assert code(send(exchange, "POST", algo, {**other, "triggerPrice": "55000.05"})) == -4014
    assert code(
        send(exchange, "POST", algo, {k: v for k, v in stop.items() if k != "algoType"})
    ) == (-1102)
    # Listed with the algo orders only; counted by both limits.
    assert open_orders(exchange, HEALTHY, "BTCUSDT") == []
    listed = signed_get(
        exchange, "/fapi/v1/openAlgoOrders", HEALTHY.api_key, HEALTHY.api_secret, {}
    ).json()
    assert [(o["algoId"], o["clientAlgoId"]) for o in listed] == [(row["algoId"], "sl-1")]
    sim_control.patch_market("BTCUSDT", {"maxNumAlgoOrders": 1})
    second = {**stop, "clientAlgoId": "sl-2"}
    assert code(send(exchange, "POST", algo, second)) == -4045
    classic = {k: v for k, v in second.items() if k not in ("algoType", "triggerPrice")}
    assert code(send(exchange, "POST", TEST, {**classic, "stopPrice": "55000"})) == -4045
    cancelled = send(exchange, "DELETE", algo, {"algoId": row["algoId"]})
    assert cancelled.json() == {
        "algoId": row["algoId"],
        "clientAlgoId": "sl-1",
        "code": "200",
        "msg": "success",
    }
    assert code(send(exchange, "POST", algo, second)) == 0
    everything = send(exchange, "DELETE", "/fapi/v1/algoOpenOrders", {"symbol": "BTCUSDT"})
    assert everything.json()["code"] == 200
    assert code(send(exchange, "DELETE", algo, {"clientAlgoId": "sl-2"})) == -2011
