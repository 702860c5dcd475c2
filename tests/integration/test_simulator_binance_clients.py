"""Proof that the simulator speaks Binance USDⓈ-M to clients nobody here wrote.

Three official or widely used Python clients call every account, market-rules and order
endpoint the simulator serves, each with its own signing, parameter placement and parsing:

* ``binance-futures-connector`` (``binance.um_futures.UMFutures``): every parameter, POSTs
  included, in the query string;
* ``python-binance`` (``binance.client.Client``): POST parameters in a form body;
* ``binance-sdk-derivatives-trading-usds-futures`` (Binance's generated SDK): pydantic models
  of every answer, which warn when a field does not have the declared type.

Each client's base URL is the simulator's loopback address, and a guard on ``socket.connect``
fails the test before any connection to another address is opened.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from tests.support.processes import SimulatorProcess
from tests.support.sim_scenarios import HEALTHY

pytestmark = pytest.mark.integration

um_futures = pytest.importorskip("binance.um_futures")
binance_client = pytest.importorskip("binance.client")
binance_exceptions = pytest.importorskip("binance.exceptions")
connector_error = pytest.importorskip("binance.error")
sdk = pytest.importorskip(
    "binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures"
)
sdk_models = pytest.importorskip("binance_sdk_derivatives_trading_usds_futures.rest_api.models")
sdk_config = pytest.importorskip("binance_common.configuration")
sdk_errors = pytest.importorskip("binance_common.errors")

LOOPBACK = ("127.0.0.1", "::1", "localhost")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any socket connection to a non-loopback address fails the test (no proxies either)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            raise AssertionError(f"a client tried to reach {address[0]}")
        connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def limit_order(price: str, quantity: str = "0.010") -> dict[str, str]:
    return {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": quantity,
        "price": price,
    }


def test_binance_futures_connector(shared_simulator: SimulatorProcess) -> None:
    client = um_futures.UMFutures(
        HEALTHY.api_key, HEALTHY.api_secret, base_url=shared_simulator.base_url
    )
    client.session.trust_env = False
    assert client.ping() == {}
    assert isinstance(client.time()["serverTime"], int)
    info = client.exchange_info()
    assert {"BTCUSDT", "MATICUSDT"} <= {row["symbol"] for row in info["symbols"]}
    assert client.mark_price("BTCUSDT")["markPrice"] == "60000.00"
    assert len(client.mark_price()) >= 7
    assert client.ticker_price("ETHUSDT")["price"] == "3000.00"
    assert client.leverage_brackets(symbol="BTCUSDT")["brackets"][0]["initialLeverage"] == 125
    assert client.get_position_mode() == {"dualSidePosition": False}
    assert client.get_multi_asset_mode() == {"multiAssetsMargin": False}
    assert client.futures_account_configuration()["canTrade"] is True
    assert client.symbol_configuration(symbol="BTCUSDT")[0]["leverage"] == 10
    assert [row["symbol"] for row in client.get_position_risk()] == ["BTCUSDT", "ETHUSDT"]
    assert client.balance()[0]["availableBalance"] == "7485.00"
    assert client.account()["totalWalletBalance"] == "10000.00"
    assert [row["orderId"] for row in client.get_orders(symbol="ETHUSDT")] == [9001]
    assert client.change_leverage(symbol="BTCUSDT", leverage=20)["maxNotionalValue"] == "100000000"

    assert client.new_order_test(**limit_order("60000.00"))["status"] == "NEW"
    with pytest.raises(connector_error.ClientError) as refused:
        client.new_order_test(**limit_order("60000.05"))
    assert (refused.value.status_code, refused.value.error_code) == (400, -4014)
    placed = client.new_order(**limit_order("59000.00"))
    assert [row["orderId"] for row in client.get_orders(symbol="BTCUSDT")] == [placed["orderId"]]
    assert client.query_order(symbol="BTCUSDT", orderId=placed["orderId"])["status"] == "NEW"
    assert client.cancel_order(symbol="BTCUSDT", orderId=placed["orderId"])["status"] == "CANCELED"
    assert client.cancel_open_orders(symbol="ETHUSDT")["code"] == 200
    assert client.get_orders() == []
    # With no open orders and no position the mode can change.
    shared_simulator.control.patch_account(HEALTHY.id, {"positions": []})
    assert client.change_position_mode(dualSidePosition="true") == {"code": 200, "msg": "success"}
    assert client.change_multi_asset_mode(multiAssetsMargin="true") == {
        "code": 200,
        "msg": "success",
    }
    assert client.futures_account_configuration()["dualSidePosition"] is True
    assert [r["positionSide"] for r in client.get_position_risk()] == []  # nothing held
    with pytest.raises(connector_error.ClientError) as mismatch:
        client.new_order_test(**limit_order("60000.00"))
    assert mismatch.value.error_code == -4061  # hedge mode needs positionSide
    assert (
        client.new_order_test(**limit_order("60000.00"), positionSide="LONG")["positionSide"]
        == "LONG"
    )


@pytest.fixture
def python_binance() -> Iterator[Any]:
    """python-binance's sync client. Its constructor takes (or makes and sets) this thread's
    asyncio event loop and never closes it: closed here, or its self-pipe socket is reported
    unclosed (a ResourceWarning, an error under -W error) in whatever test runs next."""
    client = binance_client.Client(HEALTHY.api_key, HEALTHY.api_secret, ping=False)
    try:
        yield client
    finally:
        client.close_connection()
        client.loop.close()
        asyncio.set_event_loop(None)


def test_python_binance(shared_simulator: SimulatorProcess, python_binance: Any) -> None:
    client = python_binance
    client.FUTURES_URL = shared_simulator.base_url + "/fapi"
    client.session.trust_env = False
    assert client.futures_ping() == {}
    assert isinstance(client.futures_time()["serverTime"], int)
    assert len(client.futures_exchange_info()["symbols"]) >= 7
    assert client.futures_mark_price(symbol="DOGEUSDT")["markPrice"] == "0.150000"
    assert client.futures_symbol_ticker(symbol="BTCUSDT")["price"] == "60000.00"  # v2
    assert client.futures_leverage_bracket(symbol="ETHUSDT")["symbol"] == "ETHUSDT"
    assert client.futures_get_position_mode() == {"dualSidePosition": False}
    assert client.futures_get_multi_assets_mode() == {"multiAssetsMargin": False}
    assert client.futures_account_config()["multiAssetsMargin"] is False
    assert len(client.futures_symbol_config()) >= 7
    assert client.futures_position_information()[0]["positionAmt"] == "0.5"  # v3
    assert client.futures_account_balance()[0]["balance"] == "10000.00"  # v3
    assert client.futures_account()["canTrade"] is True  # v2
    assert len(client.futures_get_open_orders()) == 1

    assert client.futures_create_test_order(**limit_order("60000.00"))["status"] == "NEW"
    with pytest.raises(binance_exceptions.BinanceAPIException) as refused:
        client.futures_create_test_order(**limit_order("60000.00", quantity="0.001"))
    assert refused.value.code == -4164  # 60 USDT < the 100 USDT minimum
    placed = client.futures_create_order(**limit_order("58000.00"))
    assert (
        client.futures_get_order(symbol="BTCUSDT", orderId=placed["orderId"])["price"] == "58000.00"
    )
    assert (
        client.futures_cancel_order(symbol="BTCUSDT", orderId=placed["orderId"])["status"]
        == "CANCELED"
    )
    assert client.futures_cancel_all_open_orders(symbol="ETHUSDT")["code"] == 200
    assert client.futures_get_open_orders() == []
    with pytest.raises(binance_exceptions.BinanceAPIException) as occupied:
        client.futures_change_position_mode(dualSidePosition="true")
    assert occupied.value.code == -4068  # the BTCUSDT position
    assert client.futures_change_multi_assets_mode(multiAssetsMargin="true")["code"] == 200


def test_binance_sdk_derivatives_trading_usds_futures(
    shared_simulator: SimulatorProcess, caplog: pytest.LogCaptureFixture
) -> None:
    config = sdk_config.ConfigurationRestAPI(
        api_key=HEALTHY.api_key,
        api_secret=HEALTHY.api_secret,
        base_path=shared_simulator.base_url,
        retries=0,
        timeout=5000,
    )
    api = sdk.DerivativesTradingUsdsFutures(config_rest_api=config).rest_api

    def plain(value: Any) -> Any:
        value = getattr(value, "actual_instance", value)  # oneOf answers (object or array)
        if isinstance(value, list):
            return [plain(item) for item in value]
        if isinstance(value, BaseModel):
            dumped = value.model_dump(by_alias=True, exclude_none=True)
            dumped.pop("additional_properties", None)
            return dumped
        return value

    def data(response: Any) -> Any:
        return plain(response.data())

    with caplog.at_level(logging.WARNING):
        api.test_connectivity()
        assert isinstance(data(api.check_server_time())["serverTime"], int)
        assert len(data(api.exchange_information())["symbols"]) >= 7
        assert data(api.mark_price(symbol="BTCUSDT"))["markPrice"] == "60000.00"
        assert data(api.symbol_price_ticker(symbol="BTCUSDT"))["price"] == "60000.00"
        assert data(api.symbol_price_ticker_v2(symbol="BTCUSDT"))["price"] == "60000.00"
        brackets = data(api.notional_and_leverage_brackets(symbol="BTCUSDT"))
        assert brackets["brackets"][1]["notionalFloor"] == 50000
        assert data(api.get_current_position_mode()) == {"dualSidePosition": False}
        assert data(api.get_current_multi_assets_mode()) == {"multiAssetsMargin": False}
        assert data(api.futures_account_configuration())["canTrade"] is True
        assert data(api.position_information_v3())[0]["positionAmt"] == "0.5"
        assert len(data(api.position_information_v2())) >= 7
        assert data(api.futures_account_balance_v3())[0]["asset"] == "USDT"
        assert data(api.futures_account_balance_v2())[0]["asset"] == "USDT"
        assert data(api.account_information_v3())["availableBalance"] == "7485.00"
        assert data(api.current_all_open_orders(symbol="ETHUSDT"))[0]["orderId"] == 9001
        tested = data(
            api.test_order(
                symbol="BTCUSDT",
                side=sdk_models.TestOrderSideEnum.BUY,
                type=sdk_models.TestOrderTypeEnum.LIMIT,
                time_in_force=sdk_models.TestOrderTimeInForceEnum.GTC,
                quantity=0.01,
                price=60000.1,
            )
        )
        assert tested["status"] == "NEW"
    # Every answer above matched the SDK's declared types.
    assert [record.getMessage() for record in caplog.records] == []
    # symbolConfig: the SDK's model declares isAutoAddMargin a boolean, Binance's documentation
    # (exchanges.md 1.6.2) and the simulator send the string "false"; the SDK then hands over
    # the raw payload.
    assert data(api.symbol_configuration(symbol="BTCUSDT"))[0]["isAutoAddMargin"] == "false"
    with pytest.raises(sdk_errors.BadRequestError) as refused:
        api.test_order(
            symbol="BTCUSDT",
            side=sdk_models.TestOrderSideEnum.BUY,
            type=sdk_models.TestOrderTypeEnum.LIMIT,
            time_in_force=sdk_models.TestOrderTimeInForceEnum.GTC,
            quantity=0.01,
            price=66000,
        )
    assert refused.value.status_code == -4016  # above mark * 1.05
