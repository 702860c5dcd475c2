"""Nanoseconds per call of the decision path's pieces, in-process (``timeit``, best of N).

    python -m bench.micro [--number 100000] [--repeat 5] 2>decisions.log   # one JSON object

Run by ``bench.run`` in a subprocess pinned to the server core, with stderr going to a file.

Decision log lines go where production sends them: with ``decision_log`` ``all`` or
``denied`` (and JSON logs), ``app.main`` builds ``DecisionLog(mode,
DecisionLogWriter(stderr_sink(), ...))``: lines rendered to bytes, queued, and written in
batches by a writer thread. This module builds exactly that, so the lines land on this
process's stderr: a file under ``bench.run`` (run alone, redirect stderr to a file or to
``/dev/null``; the JSON output says which kind of file it was).

* ``evaluate``: ``app.rules.evaluate`` alone on a realistic fresh state (three positions, four
  open orders), an allowed order and a denied one (margin, notional and position limits).
* ``decide``: the whole ``Decider.decide`` (rate counter, rules, decision id, the response
  dict, Prometheus counters/histogram, the decision log line) with each ``decision_log``
  setting.
* ``decide_json``: what production's ``GET /can-trade`` fast path calls: ``decide_json``
  (the body rendered as JSON bytes) with the evaluation key precomputed, as the fast path's
  query cache hands it over; allowed and denied, ``decision_log: all``.
* ``decide_json_many``: what ``POST /can-trade/batch`` calls, for 100 allowed orders spread
  over 100 accounts (the benchmark batch body), keys not precomputed (as production); ns per
  order, ``decision_log: all``.
* ``evaluate_orders`` / ``decide_json_orders``: the same with the full order-check set of
  issue 14 (Binance-like symbol rules and mark prices for the order's symbol: filters, band,
  open orders, leverage limit, exchange order limits); ``_uncached`` with the decider's
  evaluation reuse off, so every call runs every check.
* ``query``: validating the query into ``OrderQuery`` and ``.intent()`` (pydantic), and
  ``orjson.dumps`` of a decision body: the other per-request work that is not the framework.

Times are net of the cost of calling an empty lambda; they are single-core, warm-cache
numbers and say nothing about latency under load. The writer thread shares the core (and
the GIL) with the timed loop, as in production: with ``--number`` 20,000 (``bench.run``) or
more, each timed run of a logging case writes at least ``2 x FLUSH_LINES`` lines, so it
includes the writer's flushes. ``decision_log_dropped_lines`` (should be 0) counts lines the
bounded queue dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tempfile
import timeit
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from app.api.decider import Decider, EvaluationKey, evaluation_key
from app.api.schemas import OrderQuery
from app.config import Settings
from app.decision_log import DecisionLog, DecisionLogWriter
from app.domain import Instant, Observed, OrderIntent, Policy, RateLimit
from app.logs import configure_logging, stderr_sink
from app.markets.model import Bounds, MarketRules, MarkPrices, SymbolRules
from app.markets.store import MarketView
from app.metrics import Metrics
from app.rules import evaluate
from app.state.ratelimit import OrderRateCounter
from app.state.store import StateStore
from bench import scenario

#: Orders in the ``decide_json_many`` case (the benchmark's batch size), one account each.
BATCH_SIZE = 100
DROPPED_METRIC = "pretrade_guard_decision_log_dropped_total"


def _ns_per_call(fn: Callable[[], object], number: int, repeat: int, overhead: float) -> float:
    best = min(timeit.Timer(fn).repeat(repeat=repeat, number=number)) / number
    return max(0.0, (best - overhead) * 1e9)


def _policies(data_dir: Path, accounts: int) -> dict[str, Policy]:
    # Max ages of a day: the timed loops run for many seconds on one unchanging state, which
    # must not turn stale half-way (the freshness check costs the same either way).
    config = scenario.guard_config(
        accounts,
        port=8080,
        sim_url="http://127.0.0.1:9",
        data_dir=data_dir,
        decision_log="all",
        policy={
            "max_status_age_s": 86400,
            "max_snapshot_age_s": 86400,
            # Far above what a tight loop decides per second, so the limit never denies.
            "order_rate": {"max_orders": 1_000_000, "window_s": 1.0},
        },
    )
    settings = Settings(**config)
    return {name: settings.policy_for(name) for name in settings.accounts}


def _intent(order: dict[str, str]) -> OrderIntent:
    return OrderQuery.model_validate({"account": scenario.account_name(0), **order}).intent()


def _decision_log(mode: str, metrics: Metrics) -> DecisionLog:
    """As ``app.main._decision_log`` builds it for JSON logs (the production format)."""
    if mode == "none":
        return DecisionLog(mode)
    return DecisionLog(mode, DecisionLogWriter(stderr_sink(), metrics.decision_log_dropped))


class _Deciders:
    """Fresh deciders (empty order-rate windows, own metrics, own writer) that are closed,
    and their dropped log lines counted, at the end."""

    def __init__(self, store: StateStore, policies: dict[str, Policy]) -> None:
        self._store = store
        self._policies = policies
        self._made: list[tuple[Decider, CollectorRegistry]] = []

    def new(self, mode: str, market: MarketView | None = None, cache_size: int = 4096) -> Decider:
        registry = CollectorRegistry()
        metrics = Metrics(registry, "bench")
        decider = Decider(
            self._store,
            self._policies,
            metrics,
            decision_log=_decision_log(mode, metrics),
            markets=lambda _account: market,
            cache_size=cache_size,
        )
        self._made.append((decider, registry))
        return decider

    def close(self) -> int:
        """Write what is queued; the number of decision lines dropped (should be 0)."""
        dropped = 0.0
        for decider, registry in self._made:
            decider.decision_log.close()
            dropped += registry.get_sample_value(DROPPED_METRIC) or 0.0
        return int(dropped)


def _market(now: Instant) -> MarketView:
    """Binance-like rules for the benchmark order's symbol (BTCUSDT). Received "in the future"
    so that they stay fresh however long the timed loops run."""
    rules = SymbolRules(
        symbol="BTCUSDT",
        status="TRADING",
        order_types=frozenset({"LIMIT", "MARKET", "STOP", "STOP_MARKET"}),
        price=Bounds(Decimal("261.10"), Decimal("809484"), Decimal("0.10")),
        lot=Bounds(Decimal("0.001"), Decimal("1000"), Decimal("0.001")),
        market_lot=Bounds(Decimal("0.001"), Decimal("120"), Decimal("0.001")),
        min_notional=Decimal("100"),
        multiplier_up=Decimal("1.05"),
        multiplier_down=Decimal("0.95"),
        max_orders=200,
        max_algo_orders=10,
        time_in_force=frozenset({"GTC", "IOC", "FOK", "GTX"}),
        price_precision=2,
        quantity_precision=3,
    )
    table = MarketRules({"BTCUSDT": rules}, (RateLimit(10**9, 10.0),))
    marks = MarkPrices({"BTCUSDT": Decimal("60000")})
    return MarketView(
        "binance-usdm@bench",
        rules=Observed(table, now.mono + 86400, now.wall_ms),
        marks=Observed(marks, now.mono + 86400, now.wall_ms),
    )


def _stderr_kind() -> str:
    """What the decision lines were written to (production: a file or a pipe)."""
    try:
        mode = os.fstat(2).st_mode
    except OSError:
        return "closed"
    if stat.S_ISREG(mode):
        return "regular file"
    if stat.S_ISCHR(mode):
        return "terminal" if os.isatty(2) else "character device (/dev/null?)"
    if stat.S_ISFIFO(mode):
        return "pipe"
    return "other"


def measure(number: int, repeat: int) -> dict[str, Any]:
    account = scenario.account_name(0)
    with tempfile.TemporaryDirectory(prefix="bench-micro-") as tmp:
        policies = _policies(Path(tmp), BATCH_SIZE)
    policy = policies[account]
    store = StateStore((name, "generic-v2") for name in policies)
    now = Instant.now()
    for i in range(BATCH_SIZE):
        name = scenario.account_name(i)
        store.put_status(name, scenario.parsed_status(i), now)
        store.put_snapshot(name, scenario.parsed_snapshot(i), now)
    state = store.get(account)
    assert state is not None
    allowed, denied = _intent(scenario.ORDER), _intent(scenario.DENIED_ORDER)
    rates = OrderRateCounter()
    rate = rates.observe(account, allowed.symbol, policy, now.mono)

    def eval_allowed() -> object:
        return evaluate(allowed, state, policy, now, rate=rate)

    def eval_denied() -> object:
        return evaluate(denied, state, policy, now, rate=rate)

    assert evaluate(allowed, state, policy, now, rate=rate).allowed
    assert not evaluate(denied, state, policy, now, rate=rate).allowed

    overhead = min(timeit.Timer(lambda: None).repeat(repeat=repeat, number=number)) / number
    results: dict[str, Any] = {
        "number": number,
        "repeat": repeat,
        "call_overhead_ns": overhead * 1e9,
        "evaluate_allowed_ns": _ns_per_call(eval_allowed, number, repeat, overhead),
        "evaluate_denied_ns": _ns_per_call(eval_denied, number, repeat, overhead),
    }
    deciders = _Deciders(store, policies)
    # A fresh decider per case so the order-rate windows start empty each time; the rate
    # limit in the benchmark policy is far above what these loops can reach.
    log_number = max(1, number // 5)  # every call writes a log line: keep the file small
    for setting in ("all", "denied", "none"):
        decider = deciders.new(setting)
        assert decider.decide(allowed)["allowed"] is True
        n = log_number if setting == "all" else number
        results[f"decide_allowed_log_{setting}_ns"] = _ns_per_call(
            partial(decider.decide, allowed), n, repeat, overhead
        )
        results[f"decide_denied_log_{setting}_ns"] = _ns_per_call(
            partial(decider.decide, denied), log_number, repeat, overhead
        )
        assert decider.decide(allowed)["allowed"] is True  # still fresh, still allowed

    # The production fast paths (decision_log: all, the production setting).
    decider = deciders.new("all")
    allowed_key, denied_key = evaluation_key(allowed), evaluation_key(denied)
    assert orjson.loads(decider.decide_json(allowed, allowed_key))["allowed"] is True
    assert orjson.loads(decider.decide_json(denied, denied_key))["allowed"] is False
    results["decide_json_allowed_log_all_ns"] = _ns_per_call(
        partial(decider.decide_json, allowed, allowed_key), log_number, repeat, overhead
    )
    results["decide_json_denied_log_all_ns"] = _ns_per_call(
        partial(decider.decide_json, denied, denied_key), log_number, repeat, overhead
    )
    batch: list[tuple[OrderIntent, EvaluationKey | None]] = [
        (OrderQuery.model_validate(order).intent(), None)
        for order in scenario.batch_body(BATCH_SIZE, BATCH_SIZE)["orders"]
    ]
    decider = deciders.new("all")
    bodies = decider.decide_json_many(batch)
    assert len(bodies) == BATCH_SIZE
    assert all(orjson.loads(body)["allowed"] is True for body in bodies)
    batches = max(1, log_number // BATCH_SIZE)
    results["decide_json_many_per_order_log_all_ns"] = (
        _ns_per_call(partial(decider.decide_json_many, batch), batches, repeat, overhead)
        / BATCH_SIZE
    )
    results["batch_size"] = BATCH_SIZE

    # The full order-check set (issue 14): Binance-like market rules and mark prices for the
    # order's symbol, every filter, band, open-order and leverage check applying.
    market = _market(now)
    assert evaluate(allowed, state, policy, now, rate=rate, market=market).allowed
    results["evaluate_orders_allowed_ns"] = _ns_per_call(
        lambda: evaluate(allowed, state, policy, now, rate=rate, market=market),
        number,
        repeat,
        overhead,
    )
    for name, cache_size in (("", 4096), ("_uncached", 0)):
        decider = deciders.new("all", market, cache_size)
        assert orjson.loads(decider.decide_json(allowed, allowed_key))["allowed"] is True
        results[f"decide_json_orders{name}_allowed_log_all_ns"] = _ns_per_call(
            partial(decider.decide_json, allowed, allowed_key), log_number, repeat, overhead
        )
    results["decision_log_dropped_lines"] = deciders.close()
    results["decision_log_sink"] = f"stderr_sink() -> stderr ({_stderr_kind()})"

    query = {"account": account, **scenario.ORDER}
    body = deciders.new("none").decide(allowed)
    results["order_query_validate_ns"] = _ns_per_call(
        lambda: OrderQuery.model_validate(query).intent(), number, repeat, overhead
    )
    results["orjson_dumps_decision_ns"] = _ns_per_call(
        lambda: orjson.dumps(body), number, repeat, overhead
    )
    results["decision_body_bytes"] = len(orjson.dumps(body))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="decision-path micro-benchmarks (JSON out)")
    parser.add_argument("--number", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    configure_logging("json", "info")  # production logging; lines go to stderr
    results = measure(args.number, args.repeat)
    sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
