"""Nanoseconds per call of the decision path's pieces, in-process (``timeit``, best of N).

    python -m bench.micro [--number 100000] [--repeat 5]     # prints one JSON object

Run by ``bench.run`` in a subprocess pinned to the server core, with stderr going to a file
(the decision log lines of the ``decide[log=all]`` case land there, as in production).

* ``evaluate``: ``app.rules.evaluate`` alone on a realistic fresh state (three positions, four
  open orders), an allowed order and a denied one (margin, notional and position limits).
* ``decide``: the whole ``Decider.decide`` (rate counter, rules, decision id, the response
  dict, Prometheus counters/histogram, the structlog line) with each ``decision_log`` setting.
* ``query``: validating the query into ``OrderQuery`` and ``.intent()`` (pydantic), and
  ``orjson.dumps`` of a decision body: the other per-request work that is not the framework.

Times are net of the cost of calling an empty lambda; they are single-core, warm-cache
numbers and say nothing about latency under load.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from app.api.decider import Decider
from app.api.schemas import OrderQuery
from app.config import Settings
from app.domain import Instant, OrderIntent, Policy
from app.logs import configure_logging
from app.metrics import Metrics
from app.rules import evaluate
from app.state.ratelimit import OrderRateCounter
from app.state.store import StateStore
from bench import scenario


def _ns_per_call(fn: Callable[[], object], number: int, repeat: int, overhead: float) -> float:
    best = min(timeit.Timer(fn).repeat(repeat=repeat, number=number)) / number
    return max(0.0, (best - overhead) * 1e9)


def _policy(data_dir: Path) -> Policy:
    # Max ages of a day: the timed loops run for many seconds on one unchanging state, which
    # must not turn stale half-way (the freshness check costs the same either way).
    config = scenario.guard_config(
        1,
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
    return Settings(**config).policy_for(scenario.account_name(0))


def _intent(order: dict[str, str]) -> OrderIntent:
    return OrderQuery.model_validate({"account": scenario.account_name(0), **order}).intent()


def measure(number: int, repeat: int) -> dict[str, Any]:
    account = scenario.account_name(0)
    with tempfile.TemporaryDirectory(prefix="bench-micro-") as tmp:
        policy = _policy(Path(tmp))
    store = StateStore([(account, "generic-v2")])
    now = Instant.now()
    store.put_status(account, scenario.parsed_status(0), now)
    store.put_snapshot(account, scenario.parsed_snapshot(0), now)
    state = store.get(account)
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
    # A fresh decider per setting so the order-rate windows start empty each time; the rate
    # limit in the benchmark policy is far above what these loops can reach.
    log_number = max(1, number // 5)  # every call writes a log line: keep the file small
    for setting in ("all", "denied", "none"):
        decider = Decider(
            store, {account: policy}, Metrics(CollectorRegistry(), "bench"), decision_log=setting
        )
        assert decider.decide(allowed)["allowed"] is True
        n = log_number if setting == "all" else number
        results[f"decide_allowed_log_{setting}_ns"] = _ns_per_call(
            partial(decider.decide, allowed), n, repeat, overhead
        )
        results[f"decide_denied_log_{setting}_ns"] = _ns_per_call(
            partial(decider.decide, denied), log_number, repeat, overhead
        )
        assert decider.decide(allowed)["allowed"] is True  # still fresh, still allowed
    query = {"account": account, **scenario.ORDER}
    body = Decider(
        store, {account: policy}, Metrics(CollectorRegistry(), "bench"), decision_log="none"
    ).decide(allowed)
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
