"""The benchmark harness must not rot: run it end to end in ``--quick`` mode.

Only that it completes and prints every table; never a timing assertion (benchmarks are not
tests, and numbers from 1-second runs mean nothing).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import LoadRow, Round, equivalent_busy_us, summarise_rounds
from bench.wrk import paced_script, parse_output
from tests.support.processes import REPO_ROOT

#: Lines of the report that every run prints (labels, not numbers).
EXPECTED_ROWS = (
    "== HTTP (closed loop; latency per request; in the order measured) ==",
    "== Calibration: the baseline app spending N us of CPU per request (back to back) ==",
    "== Latency at paced loads, far below saturation (GET /can-trade; what a bot waits for one",
    "4 connections, 4 ms apart",
    "8 connections, 2 ms apart",
    "guard adds",
    "(coordinated omission)",
    "baseline bare ASGI app, fixed JSON (same requests)",
    "guard   GET /can-trade [decision_log=all]",
    "guard   POST /can-trade/batch x100 [decision_log=all]",
    "guard   GET /can-trade [decision_log=denied, NOT production]",
    "guard   POST /can-trade/batch x100 [decision_log=denied, NOT production]",
    "guard   GET /can-trade [polls every 3 s, NOT production]",
    "guard   POST /can-trade/batch x100 [polls every 3 s, NOT production]",
    "[decision_log=denied] GET throughput guard/baseline",
    "[polls every 3 s] GET throughput guard/baseline",
    "[polls every 3 s] batch vs single orders/s",
    "== Interleaved rounds (production guard, decision_log=all)",
    "min-max over 1 round(s)",
    "== Ratios (production settings; median of 1 interleaved round(s)",
    "GET /can-trade throughput guard/baseline",
    "GET /can-trade p99 guard/baseline",
    "batch x100 orders/s vs single GET orders/s",
    "== Decision path, ns/op",
    "rules.evaluate, allowed order",
    "rules.evaluate, denied order",
    "Decider.decide, allowed, decision_log=all",
    "Decider.decide_json, allowed, log=all (GET fast path)",
    "Decider.decide_json, denied, log=all (GET fast path)",
    "Decider.decide_json_many x100, per order, log=all",
    "production's batched DecisionLogWriter, lines to stderr_sink() -> stderr (regular file)",
    "== Memory (RSS) ==",
    "accounts, in-process app + realistic state",
    "== Capacity: budget math",
    "generic-v2    budget per key",
    "binance-usdm  budget per host",
    "== Capacity: empirical",
    "production budget",
    "CPU bound (generic-v2",
)

LOAD_KEYS = {
    "baseline",
    "guard-get",
    "guard-batch",
    "guard-get-log-denied",
    "guard-batch-log-denied",
    "guard-get-slow-poll",
    "guard-batch-slow-poll",
}

WRK_REPORT = """Running 2s test @ http://127.0.0.1:8080
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  800.00us  20.00ms   90.00%
    Req/Sec    15.00k     1.00k   17.00k    80.00%
  Latency Distribution
     50%  812.00us
     75%    2.50ms
     90%    3.00ms
     99%    1.02s
  30000 requests in 2.00s, 9.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 10
Requests/sec:  15000.00
Transfer/sec:      4.50MB
"""


def _row(key: str, rps: float, p99_ms: float, other_pct: float, orders: int = 1) -> LoadRow:
    return LoadRow(
        key=key,
        label=key,
        rps=rps,
        p50_ms=p99_ms / 4,
        p99_ms=p99_ms,
        non_2xx=0,
        socket_errors=0,
        server_cpu_pct=100.0,
        server_core_other_pct=other_pct,
        load_core_pct=50.0,
        orders_per_request=orders,
    )


def _round(index: int, base_rps: float, get_rps: float, other_pct: float = 0.0) -> Round:
    return Round.of(
        index,
        _row("baseline", base_rps, 2.0, 0.0),
        _row("guard-get", get_rps, 8.0, other_pct),
        _row("guard-batch", get_rps / 10, 80.0, 0.0, orders=100),
    )


def test_rounds_are_summarised_by_their_medians() -> None:
    rounds = [
        _round(1, 20_000, 10_000),  # 0.5
        _round(2, 40_000, 30_000, other_pct=25.0),  # 0.75, noisy
        _round(3, 30_000, 18_000),  # 0.6
    ]
    assert rounds[0].p99_ratio == 4.0
    assert rounds[0].batch_gain == 10.0
    assert [r.noisy for r in rounds] == [False, True, False]
    assert rounds[1].max_other_pct == 25.0
    summary = summarise_rounds(rounds)
    assert summary["rounds"] == 3
    assert summary["throughput_ratio"] == {"median": 0.6, "min": 0.5, "max": 0.75}
    assert summary["baseline_rps"]["median"] == 30_000
    assert summary["noisy_rounds"] == [2]
    assert summary["quiet_only"]["rounds"] == [1, 3]
    assert summary["quiet_only"]["throughput_ratio"]["median"] == 0.55
    assert summarise_rounds([]) == {}
    assert "quiet_only" not in summarise_rounds(rounds[:1])


def _require_wrk() -> None:
    if shutil.which("wrk") is not None:
        return
    message = "wrk is not installed (apt-get install wrk); the benchmark harness needs it"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{message}; CI must install it")
    pytest.skip(message)


def test_paced_script_adds_a_delay_and_refuses_none() -> None:
    script = paced_script('wrk.method = "GET"', 4)
    assert script.startswith('wrk.method = "GET"\n')
    assert "function delay()\n  return 4\nend" in script
    with pytest.raises(ValueError, match="at least 1"):
        paced_script("", 0)


def test_wrk_report_is_parsed() -> None:
    result = parse_output(WRK_REPORT)
    assert result.rps == 15000.0
    assert result.requests == 30000
    assert result.latency_ms == {50: 0.812, 75: 2.5, 90: 3.0, 99: 1020.0}
    assert (result.non_2xx, result.socket_errors) == (10, 3)


def test_missing_wrk_fails_with_install_hint(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick"],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "apt-get install wrk" in done.stderr


@pytest.mark.integration
def test_quick_run_prints_every_table(tmp_path: Path) -> None:
    _require_wrk()
    report = tmp_path / "bench.json"
    # Not under coverage (pyproject measures subprocesses): tracing would slow every server of
    # the run several-fold for nothing; the integration tests measure the guard already.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    # Its own session, so a timeout can end the harness AND the servers it started.
    with subprocess.Popen(
        [sys.executable, "-m", "bench.run", "--quick", "--json", str(report)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as run:
        try:
            stdout, stderr = run.communicate(timeout=100)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGTERM)  # the harness stops its servers on SIGTERM
            try:
                run.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.communicate()
            pytest.fail("the quick benchmark run did not finish in 100 s")
    assert run.returncode == 0, stderr[-4000:]
    missing = [row for row in EXPECTED_ROWS if row not in stdout]
    assert not missing, f"missing from the report: {missing}\n{stdout}"
    data = json.loads(report.read_text(encoding="utf-8"))
    assert {row["key"] for row in data["load"]} == LOAD_KEYS
    assert [r["index"] for r in data["rounds"]] == [1]
    assert [row["round"] for row in data["load"]] == [1, 1, 1, 0, 0, 0, 0]
    assert data["ratio_summary"]["rounds"] == 1
    assert data["micro"]["decision_log_dropped_lines"] == 0
    assert all(row["non_2xx"] == 0 for row in data["load"]), data["load"]
    assert {mem["accounts"] for mem in data["memory"]} == {50, 200}
    assert data["micro"]["evaluate_allowed_ns"] > 0
    assert [busy for busy, _row in data["calibration"]] == [0, 5, 10, 20, 40]
    paced = [(r["server"], r["connections"], r["delay_ms"]) for r in data["paced"]]
    assert paced == [("baseline", 4, 4), ("baseline", 8, 2), ("guard", 4, 4), ("guard", 8, 2)]
    assert all(r["errors"] == 0 and r["rps"] > 0 for r in data["paced"]), data["paced"]
    # Paced, not closed-loop: 4 connections 4 ms apart stay near 1,000 req/s (unpaced, 4
    # connections drive even a slow machine's bare server to several thousand).
    assert all(r["rps"] < 1500 for r in data["paced"] if r["delay_ms"] == 4), data["paced"]


def test_equivalent_busy_work_is_read_off_the_calibration_curve() -> None:
    curve = [(0.0, _row("c0", 40_000, 1, 0)), (10.0, _row("c10", 20_000, 1, 0))]
    curve.append((20.0, _row("c20", 10_000, 1, 0)))
    assert equivalent_busy_us(curve, 40_000) == 0
    assert equivalent_busy_us(curve, 30_000) == 5
    assert equivalent_busy_us(curve, 15_000) == 15
    assert equivalent_busy_us(curve, 50_000) is None  # faster than the bare server
    assert equivalent_busy_us(curve, 5_000) is None  # slower than the largest point


#: The fleet part's report lines (labels, not numbers).
FLEET_ROWS = (
    "== Fleet mode (Redis + a refresher process polling + an api process answering",
    "fleet api GET /can-trade [refresher in another process]",
    "fleet api GET /can-trade [order_rate on every account: Redis per order]",
    "fleet GET throughput api/baseline",
    "fleet GET p99 api/baseline",
    "paced loads (GET /can-trade)",
    "fleet api adds",
    "switch engage on replica A -> replica B answers accordingly",
    "switch release on replica A -> replica B answers accordingly",
    "failover: two refreshers held",
    "2 api workers vs a 2-worker baseline",
    "2-worker throughput api/baseline",
)


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_quick_fleet_run_prints_every_row(tmp_path: Path) -> None:
    """``--only fleet``: a real redis-server, a refresher and api replicas; every row, no
    errors (no timing assertion)."""
    _require_wrk()
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{message}; CI must install it")
        pytest.skip(message)
    report = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    with subprocess.Popen(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "fleet", "--json", str(report)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as run:
        try:
            stdout, stderr = run.communicate(timeout=200)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGTERM)
            try:
                run.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.communicate()
            pytest.fail("the quick fleet benchmark run did not finish in 200 s")
    assert run.returncode == 0, stderr[-4000:]
    missing = [row for row in FLEET_ROWS if row not in stdout]
    assert not missing, f"missing from the report: {missing}\n{stdout}"
    fleet = json.loads(report.read_text(encoding="utf-8"))["fleet"]
    rows = [row for pair in fleet["rounds"] for row in pair] + [fleet["rate_limited"]]
    assert [row["key"] for row in rows] == [
        "fleet-baseline",
        "fleet-api-get",
        "fleet-api-get-order-rate",
    ]
    assert all(row["non_2xx"] == 0 and row["socket_errors"] == 0 for row in rows), rows
    assert all(row["rps"] > 0 for row in rows), rows
    assert all(r["errors"] == 0 and r["rps"] > 0 for r in fleet["paced"]), fleet["paced"]
    assert len(fleet["engage_ms"]) == len(fleet["release_ms"]) == 3
    # SIGKILLed refresher: the survivor ended up holding every account's lease.
    assert fleet["failover"]["accounts"] == 10
    # --workers 2 against the 2-worker baseline: both measured, two worker processes each.
    pool = fleet["workers"]["rows"]
    assert [row["label"] for row in pool] == ["baseline", "api"], pool
    assert all(row["errors"] == 0 and row["rps"] > 0 for row in pool), pool
    assert all(len(row["worker_split_pct"]) == 2 for row in pool), pool
    assert fleet["failover"]["takeover_s"] > 0


def test_quick_orders_run_measures_the_full_order_checks(tmp_path: Path) -> None:
    """``--only orders``: Binance USD-M accounts with market rules, an order-level GET (every
    order allowed: checked before measuring), interleaved with the baseline."""
    _require_wrk()
    report = tmp_path / "orders.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    with subprocess.Popen(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "orders", "--json", str(report)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as run:
        try:
            stdout, stderr = run.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGTERM)
            try:
                run.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.communicate()
            pytest.fail("the quick orders run did not finish in 240 s")
    assert run.returncode == 0, stderr[-4000:]
    assert "== Order checks under load: GET /can-trade with symbol" in stdout, stdout
    data = json.loads(report.read_text(encoding="utf-8"))
    assert [row["key"] for row in data["load"]] == ["orders-baseline", "orders-guard-get"]
    assert all(row["non_2xx"] == 0 and row["rps"] > 0 for row in data["load"]), data["load"]
    assert [r["index"] for r in data["orders"]["rounds"]] == [1]
    assert data["orders"]["throughput_ratio_median"] > 0
