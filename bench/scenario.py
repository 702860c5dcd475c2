"""Realistic accounts, orders and configuration shared by every benchmark.

One account ``i`` looks the same wherever it is used: in the simulator's scenario file (served
over the generic-v2 face), parsed in-process for the micro-benchmarks and the memory
measurement, and in the guard's configuration. "Realistic" here means what a busy futures
account of a trading bot looks like on the generic-v2 protocol: NORMAL status, three open
positions, four resting orders, the last 20 orders of history and a funding record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

from app.domain import AccountSnapshot, AccountStatus
from app.exchanges.generic_v2 import ACCOUNT_PATH, STATUS_PATH, parse_account, parse_status
from app.exchanges.jsonfields import Fields

# Tokens of the benchmark guard (loopback only; not secrets).
BOT_TOKEN = "bench-bot-token-0001"  # noqa: S105
READ_TOKEN = "bench-read-token-0002"  # noqa: S105
ADMIN_TOKEN = "bench-admin-token-0003"  # noqa: S105

#: The order every GET /can-trade of the benchmark asks about (allowed for every account).
ORDER: dict[str, str] = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01", "price": "60000"}
#: An order that is denied (too big: margin, notional and position limits).
DENIED_ORDER: dict[str, str] = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "quantity": "50",
    "price": "60000",
}

#: Limits of the benchmark policy: generous (the benchmark order is allowed) but present, so
#: the limit checks and the order-rate counter run on every decision as they would in a
#: production config that sets them.
POLICY: dict[str, Any] = {
    "max_order_notional": "250000",
    "max_position_notional": "1000000",
    "min_available_after_order": "100",
    "order_rate": {"max_orders": 100000, "window_s": 1.0},
}

_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")
_BASE_TIME_MS = 1_763_700_000_000


def account_name(i: int) -> str:
    """The guard's name of benchmark account ``i``."""
    return f"acc-{i:05d}"


def api_key(i: int) -> str:
    return f"bench-key-{i:05d}"


def api_secret(i: int) -> str:
    return f"bench-secret-{i:05d}-{(i * 7919) % 100000:05d}"


def status_json(i: int) -> dict[str, Any]:
    """The ``apiTradingStatus`` fields of account ``i`` (simulator ``status``)."""
    return {
        "tradingStatus": "NORMAL",
        "reason": "",
        "canTrade": True,
        "isFuturesTradingEnabled": True,
        "isMarginTradingEnabled": True,
        "accountLevel": "LEVEL_2",
        "canDeposit": True,
        "canWithdraw": True,
        "triggerCloseStatus": "ENABLED",
    }


def _money(value: float) -> str:
    return f"{value:.2f}"


def account_json(i: int) -> dict[str, Any]:
    """The ``/v2/account`` fields of account ``i`` (simulator ``account``), amounts as text."""
    scale = 1 + (i % 17) / 10
    btc_qty = 0.25 * scale
    eth_qty = 2.0 * scale
    sol_qty = 40.0 * scale
    positions: list[dict[str, Any]] = [
        {
            "symbol": "BTCUSDT",
            "side": "LONG",
            "quantity": f"{btc_qty:.4f}",
            "entryPrice": "60000.0",
            "markPrice": "60300.0",
            "leverage": 10,
            "notional": _money(btc_qty * 60300),
            "unrealizedPnl": _money(btc_qty * 300),
            "initialMargin": _money(btc_qty * 6030),
            "maintenanceMargin": _money(btc_qty * 241.2),
            "liquidationPrice": "54600.0",
            "marginType": "CROSSED",
        },
        {
            "symbol": "ETHUSDT",
            "side": "SHORT",
            "quantity": f"{eth_qty:.4f}",
            "entryPrice": "3050.0",
            "markPrice": "3000.0",
            "leverage": 5,
            "notional": _money(eth_qty * 3000),
            "unrealizedPnl": _money(eth_qty * 50),
            "initialMargin": _money(eth_qty * 600),
            "maintenanceMargin": _money(eth_qty * 15),
            "liquidationPrice": "4210.5",
            "marginType": "CROSSED",
        },
        {
            "symbol": "SOLUSDT",
            "side": "LONG",
            "quantity": f"{sol_qty:.4f}",
            "entryPrice": "148.20",
            "markPrice": "150.10",
            "leverage": 3,
            "notional": _money(sol_qty * 150.1),
            "unrealizedPnl": _money(sol_qty * 1.9),
            "initialMargin": _money(sol_qty * 50.03),
            "maintenanceMargin": _money(sol_qty * 0.75),
            "liquidationPrice": "101.3",
            "marginType": "ISOLATED",
        },
    ]
    open_orders = [
        {
            "orderId": str(900_000 + i * 10 + k),
            "symbol": _SYMBOLS[k % len(_SYMBOLS)],
            "side": "BUY" if k % 2 == 0 else "SELL",
            "type": "LIMIT",
            "price": ("59000.0", "3100.0", "140.00", "610.00")[k],
            "quantity": ("0.0100", "0.5000", "10.0000", "1.0000")[k],
            "reduceOnly": k == 1,
            "time": _BASE_TIME_MS + k * 60_000,
        }
        for k in range(4)
    ]
    history = [
        {
            "orderId": str(800_000 + i * 100 + k),
            "symbol": _SYMBOLS[k % len(_SYMBOLS)],
            "side": "BUY" if k % 3 else "SELL",
            "type": "MARKET" if k % 4 else "LIMIT",
            "status": "FILLED" if k % 5 else "CANCELED",
            "price": ("60000.0", "3000.0", "150.00", "600.00", "0.5500")[k % 5],
            "quantity": ("0.0100", "0.2000", "5.0000", "1.0000", "1000.0000")[k % 5],
            "time": _BASE_TIME_MS - k * 3_600_000,
        }
        for k in range(20)
    ]
    initial = sum(float(p["initialMargin"]) for p in positions)
    maintenance = sum(float(p["maintenanceMargin"]) for p in positions)
    pnl = sum(float(p["unrealizedPnl"]) for p in positions)
    wallet = 25_000 + (i % 50) * 100
    margin_balance = wallet + pnl
    return {
        "asset": "USDT",
        "walletBalance": _money(wallet),
        "unrealizedPnl": _money(pnl),
        "marginBalance": _money(margin_balance),
        "availableBalance": _money(margin_balance - initial - 250),
        "initialMargin": _money(initial + 250),
        "maintenanceMargin": _money(maintenance),
        "positions": positions,
        "openOrders": open_orders,
        "orderHistory": history,
        "funding": {
            "lastFundingFee": "-1.20",
            "lastFundingTime": _BASE_TIME_MS - 3_600_000,
            "nextFundingTime": _BASE_TIME_MS + 25_200_000,
        },
    }


def _parsed(body: Mapping[str, Any], endpoint: str) -> Fields:
    # The exchange transport parses JSON numbers as Decimal; do the same round trip.
    return Fields.of(json.loads(json.dumps(body), parse_float=Decimal), endpoint=endpoint)


def parsed_status(i: int) -> AccountStatus:
    """Account ``i``'s status as the generic-v2 client parses it."""
    return parse_status(_parsed({**status_json(i), "updateTime": _BASE_TIME_MS}, STATUS_PATH))


def parsed_snapshot(i: int) -> AccountSnapshot:
    """Account ``i``'s snapshot as the generic-v2 client parses it."""
    body = {"accountId": f"B-{i:05d}", **account_json(i), "updateTime": _BASE_TIME_MS}
    return parse_account(_parsed(body, ACCOUNT_PATH))


def write_sim_scenario(path: Path, accounts: int, *, weight_limit_per_minute: int = 1200) -> Path:
    """A simulator scenario with ``accounts`` realistic generic-v2 accounts."""
    scenario = {
        "weight_limit_per_minute": weight_limit_per_minute,
        "request_log_size": 100,
        "accounts": [
            {
                "id": f"B-{i:05d}",
                "api_key": api_key(i),
                "api_secret": api_secret(i),
                "status": status_json(i),
                "account": account_json(i),
            }
            for i in range(accounts)
        ],
    }
    path.write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
    return path


def guard_accounts(
    accounts: int, base_url: str, exchange: str = "generic-v2"
) -> dict[str, dict[str, Any]]:
    """Guard entries for the simulator's accounts, on its generic-v2 or Binance USD-M face."""
    entries: dict[str, dict[str, Any]] = {}
    for i in range(accounts):
        entry: dict[str, Any] = {
            "exchange": exchange,
            "base_url": base_url,
            "api_key": api_key(i),
            "api_secret": api_secret(i),
        }
        if exchange == "binance-usdm":  # the simulator serves sapi on the same host
            entry["options"] = {"sapi_base_url": base_url}
        entries[account_name(i)] = entry
    return entries


def guard_config(
    accounts: int,
    *,
    port: int,
    sim_url: str,
    data_dir: Path,
    decision_log: str = "all",
    poll: Mapping[str, Any] | None = None,
    policy: Mapping[str, Any] | None = None,
    budget: Mapping[str, Any] | None = None,
    exchange: str = "generic-v2",
) -> dict[str, Any]:
    """Production settings: auth on (three tokens), metrics on, JSON logs at info,
    ``decision_log: all``, default poll intervals and max ages, the benchmark limits."""
    config: dict[str, Any] = {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "log_format": "json",
            "log_level": "info",
            "decision_log": decision_log,
            "data_dir": str(data_dir),
        },
        "auth": {
            "tokens": [
                {"name": "bench-bot", "token": BOT_TOKEN, "scopes": ["decide"]},
                {"name": "bench-reader", "token": READ_TOKEN, "scopes": ["read"]},
                {"name": "bench-admin", "token": ADMIN_TOKEN, "scopes": ["admin", "read"]},
            ]
        },
        "policy": {**POLICY, **(policy or {})},
        "accounts": guard_accounts(accounts, sim_url, exchange),
    }
    if poll:
        config["poll"] = dict(poll)
    if budget:
        config["budget"] = dict(budget)
    return config


def order_paths(accounts: int, order: Mapping[str, str] = ORDER) -> Iterator[str]:
    """``/can-trade?...`` for the benchmark order, one per account."""
    for i in range(accounts):
        yield "/can-trade?" + urlencode({"account": account_name(i), **order})


def batch_body(accounts: int, size: int = 100) -> dict[str, Any]:
    """A batch of ``size`` realistic orders spread over the accounts."""
    return {"orders": [{"account": account_name(k % accounts), **ORDER} for k in range(size)]}
