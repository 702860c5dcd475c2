"""The full order-check set under load (issue 14): ``python -m bench.run --only orders``.

An order-level ``GET /can-trade`` (symbol, side, type, quantity, price, time in force) against
Binance USDⓈ-M accounts of the simulator, with the host's market rules (``exchangeInfo``) and
mark prices (``premiumIndex``) loaded: every check runs on every request (symbol and status,
order type and time in force, mode, tick, step, ranges, minimum notional, PERCENT_PRICE band,
open orders and algo orders, position limit at leverage, margin), on top of the account-level
checks the generic-v2 rounds measure. Every order asked is allowed (checked before measuring),
so no check short-circuits.

Measured in ``opts.rounds`` interleaved rounds, like the guards part: the bare baseline's GET
(same requests, same uvicorn settings), then a fresh guard's GET. The ratios are the medians
over the rounds, against the baseline of the same round.

The guard runs production settings (auth, metrics, JSON logs, ``decision_log: all``, the
benchmark policy with its ``order_rate`` counter) with two changes, both because 10 accounts
share one Binance IP budget: max ages of 300 s (ten accounts at the default intervals need
about 3.5x the budget's sustained rate, so polls are stretched to every 7 s / 17.5 s) and
``exchange_order_rate: false`` (Binance's 300 orders per 10 s per account would turn most of
the thousands of allowed answers per second into ``EXCHANGE_ORDER_RATE`` denials; the same
counter code runs for ``order_rate``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlencode

import httpx

from bench import scenario
from bench.procs import BaselineProcess, GuardProcess, Pinning, free_port, start_guard
from bench.run import (
    BASELINE_LABEL,
    TARGET_THROUGHPUT_RATIO,
    LoadRow,
    Options,
    _measure,
    _ratio,
    say,
    simulator,
)
from bench.wrk import get_script

#: Binance accounts of the part (one IP budget: more would take minutes to become fresh).
ACCOUNTS = 10
#: Orders asked for every account, all allowed by the simulator's default markets and the
#: benchmark accounts (BTC long, ETH short, SOL long, resting orders on five symbols).
ORDERS: tuple[dict[str, str], ...] = (
    {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.010",
     "price": "60000.0", "time_in_force": "GTC"},
    {"symbol": "ETHUSDT", "side": "SELL", "type": "LIMIT", "quantity": "0.100",
     "price": "3001.50", "time_in_force": "GTC"},
    {"symbol": "SOLUSDT", "side": "BUY", "type": "LIMIT", "quantity": "2",
     "price": "149.9800", "time_in_force": "IOC"},
    {"symbol": "BNBUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.05",
     "price": "600.000", "time_in_force": "GTC"},
    {"symbol": "XRPUSDT", "side": "BUY", "type": "MARKET", "quantity": "20.0"},
    {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.005"},
)  # fmt: skip
GUARD_LABEL = "guard   GET /can-trade, Binance USD-M, full order checks"


def order_paths(accounts: int = ACCOUNTS) -> list[str]:
    return [
        "/can-trade?" + urlencode({"account": scenario.account_name(i), **order})
        for i in range(accounts)
        for order in ORDERS
    ]


@dataclass
class OrdersRound:
    index: int
    baseline: LoadRow
    guard: LoadRow

    @property
    def throughput_ratio(self) -> float:
        return _ratio(self.guard.rps, self.baseline.rps)

    @property
    def p99_ratio(self) -> float:
        return _ratio(self.guard.p99_ms, self.baseline.p99_ms)


@dataclass
class OrdersReport:
    accounts: int = ACCOUNTS
    orders_per_account: int = len(ORDERS)
    rounds: list[OrdersRound] | None = None
    body_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["throughput_ratio_median"] = self.median("throughput_ratio")
        data["p99_ratio_median"] = self.median("p99_ratio")
        return data

    def median(self, name: str) -> float | None:
        values = [getattr(r, name) for r in self.rounds or []]
        return median(values) if values else None


def _config(sim_url: str, tmp: Path, index: int) -> dict[str, Any]:
    return scenario.guard_config(
        ACCOUNTS,
        port=free_port(),
        sim_url=sim_url,
        data_dir=tmp / f"data-orders-{index}",
        exchange="binance-usdm",
        policy={
            "max_status_age_s": 300,
            "max_snapshot_age_s": 300,
            "exchange_order_rate": False,
        },
    )


def _check(guard: GuardProcess, paths: list[str]) -> int:
    """Every benchmark order allowed (no check short-circuits); the decision body size."""
    headers = {"Authorization": f"Bearer {scenario.BOT_TOKEN}"}
    size = 0
    with httpx.Client(base_url=guard.base_url, headers=headers, timeout=10) as client:
        for path in paths:
            answer = client.get(path)
            if answer.status_code != 200 or answer.json().get("allowed") is not True:
                raise RuntimeError(f"guard GET {path}: {answer.status_code} {answer.text}")
            size = len(answer.content)
    return size


def run_orders(
    opts: Options,
    pinning: Pinning,
    tmp: Path,
    start_baseline: Any,
    report: list[LoadRow],
) -> OrdersReport:
    """``opts.rounds`` rounds of the baseline's GET, then a fresh Binance guard's GET."""
    paths = order_paths()
    lua = tmp / "orders-get.lua"
    lua.write_text(get_script(paths, scenario.BOT_TOKEN), encoding="utf-8")
    out = OrdersReport(rounds=[])
    baseline: BaselineProcess = start_baseline()
    try:
        assert baseline.proc is not None
        with simulator(ACCOUNTS, pinning, tmp, "sim-orders") as sim:
            for index in range(1, opts.rounds + 1):
                say(f"orders round {index}/{opts.rounds}: baseline, then Binance guard GET")
                base = _measure(
                    "orders-baseline",
                    BASELINE_LABEL,
                    baseline.base_url,
                    lua,
                    opts,
                    pinning,
                    baseline.proc.pid,
                    round_index=index,
                )
                say(f"orders: guard with {ACCOUNTS} Binance accounts: starting")
                guard = start_guard(
                    _config(sim.base_url, tmp, index),
                    tmp,
                    prefix=pinning.server(),
                    ready_timeout_s=180,
                )
                try:
                    out.body_bytes = _check(guard, paths)
                    assert guard.proc is not None
                    row = _measure(
                        "orders-guard-get",
                        GUARD_LABEL,
                        guard.base_url,
                        lua,
                        opts,
                        pinning,
                        guard.proc.pid,
                        round_index=index,
                    )
                finally:
                    guard.stop()
                report.extend((base, row))
                done = OrdersRound(index, base, row)
                assert out.rounds is not None
                out.rounds.append(done)
                say(
                    f"orders round {index}: throughput ratio {done.throughput_ratio:.3f}, "
                    f"p99 ratio {done.p99_ratio:.1f}"
                )
    finally:
        baseline.stop()
    return out


def render_orders(result: OrdersReport, generic_get_rps: float | None) -> list[str]:
    if not result.rounds:
        return []
    out = [
        "",
        f"== Order checks under load: GET /can-trade with symbol, side, type, quantity, price "
        f"({result.accounts} Binance USD-M accounts x {result.orders_per_account} orders, "
        "market rules loaded, all allowed) ==",
        f"  {'rnd':>3} {'baseline req/s':>14} {'guard req/s':>11} {'ratio':>6} "
        f"{'base p99 ms':>11} {'guard p99 ms':>12} {'p99 ratio':>9} {'other%':>6}",
    ]
    for r in result.rounds:
        other = max(r.baseline.server_core_other_pct, r.guard.server_core_other_pct)
        out.append(
            f"  {r.index:>3} {r.baseline.rps:>14.0f} {r.guard.rps:>11.0f} "
            f"{r.throughput_ratio:>6.3f} {r.baseline.p99_ms:>11.2f} {r.guard.p99_ms:>12.2f} "
            f"{r.p99_ratio:>9.1f} {other:>6.0f}"
        )
    tput = result.median("throughput_ratio")
    p99 = result.median("p99_ratio")
    guard_rps = median(r.guard.rps for r in result.rounds)
    out.append(
        f"  median: guard/baseline throughput {tput:.3f} (target >= "
        f"{TARGET_THROUGHPUT_RATIO:g}x for the production GET), p99 {p99:.1f}x; "
        f"guard {guard_rps:,.0f} req/s"
    )
    if generic_get_rps:
        out.append(
            f"  vs the production GET of this run (generic-v2, account-level checks, median "
            f"{generic_get_rps:,.0f} req/s): {guard_rps / generic_get_rps:.2f}x"
        )
    out.append(
        "  not production in two settings (see bench/orders.py): max ages 300 s (10 accounts "
        "on one Binance IP budget) and exchange_order_rate off"
    )
    return out
