"""One command for every benchmark of the guard (see bench/README.md).

    python -m bench.run [--duration 10] [--connections 32] [--threads 1] [--accounts 100]
                        [--rounds 3] [--quick] [--json FILE] [--profile-dir DIR] [--only PARTS]
                        [--memory-live N] [--capacity-seconds 16] [--no-pin]

In one run, on loopback only, each load loop bounded in time:

1. decision-path micro-benchmarks (``bench.micro``, a subprocess): ns/op of ``evaluate`` and
   ``Decider.decide``; also gives the size of a real decision body;
2. the bare ASGI baseline (``bench.baseline_app``, same uvicorn settings as production, a body
   of that size) and the simulator with N realistic accounts and the real guard
   (``python -m app``) with production settings (auth, metrics, JSON logs at info,
   ``decision_log: all``), in ``--rounds`` interleaved rounds: wrk on the baseline, then on
   the guard's ``GET /can-trade`` (realistic orders over every account, bearer token), then
   on ``POST /can-trade/batch`` with 100 orders. Each round gives its own ratios; the report
   uses their medians. Then, once each (labelled: not the production setting), the guard
   with ``decision_log: denied`` and the guard polling every account every 30 s (what logging
   and polling cost). With ``--only baseline`` (without ``guards``): the baseline alone;
3. latency at paced loads far below saturation (``PACED_LOADS``: wrk's ``delay()`` makes each
   connection wait before each request): p50, p90, p99 of the baseline, then of the
   production guard, and what the guard adds: what a bot waits for one call;
4. resident memory for 1,000 and 10,000 accounts of realistic state (``bench.memory``);
   with ``--memory-live N`` also of a live guard polling N accounts;
5. capacity: the budget math for both exchanges, and phases against the simulator (200
   generic-v2 accounts at the production and at a squeezed per-key budget; Binance USD-M
   accounts under and over the shared per-IP budget); the live RSS of the 200-account guard.

Then it prints the tables: requests/s, p50, p99, the rounds, the guard/baseline ratios
(medians over the rounds) against the issue's targets, the paced latencies, the calibration,
decision ns/op, memory, capacity (and the py-spy summary with ``--profile-dir``).
A part that fails is listed at the end and makes the exit status 1; the rest still runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from itertools import pairwise
from pathlib import Path
from statistics import median
from types import FrameType
from typing import Any

import httpx

from app.config import PolicySettings, PollSettings
from app.exchanges.base import ExchangeClient
from app.exchanges.binance_usdm import BinanceUsdmClient
from app.exchanges.generic_v2 import GenericV2Client
from bench import capacity, scenario
from bench.procs import (
    REPO_ROOT,
    BaselineProcess,
    GuardProcess,
    PinnedSimulator,
    Pinning,
    core_ticks,
    cpu_seconds,
    free_port,
    rss_kib,
    start_guard,
    wait_idle,
)
from bench.wrk import (
    WrkMissing,
    WrkResult,
    find_wrk,
    get_script,
    paced_script,
    post_script,
    run_wrk,
)

BATCH_SIZE = 100
TARGET_THROUGHPUT_RATIO = 0.6
TARGET_P99_RATIO = 2.0
TARGET_BATCH_GAIN = 20.0
#: Rounds of (baseline, guard GET, guard batch) by default (``--quick``: 1).
DEFAULT_ROUNDS = 3
#: A measurement with more of the server core busy with other processes is flagged.
NOISY_OTHER_PCT = 10.0
BASELINE_LABEL = "baseline bare ASGI app, fixed JSON (same requests)"
#: Body size for the baseline if the micro-benchmarks (which measure a real one) failed.
DEFAULT_BODY_BYTES = 185
#: How long the live-memory guard gets to give every account its first data.
LIVE_TIMEOUT_S = 120.0
#: py-spy samples per second (blocking mode: each sample pauses the guard briefly).
PROFILE_RATE_HZ = 25
#: The parts of a run, in order (``--only`` picks some).
PARTS = (
    "micro",
    "baseline",
    "guards",
    "orders",
    "latency",
    "calibration",
    "memory",
    "memory-live",
    "capacity",
    "fleet",
)
#: What a run without ``--only`` measures: the fleet part (Redis, several guards) and the
#: orders part (Binance accounts: a minute more before the first measurement) on request.
ON_REQUEST_PARTS = ("fleet", "orders")
DEFAULT_PARTS = tuple(part for part in PARTS if part not in ON_REQUEST_PARTS)
#: The latency part's paced loads: (connections, ms each connection waits before each request).
#: About 900, 3,300 and 6,000 req/s here: far below what either server takes (~49k / ~19k).
#: ``--quick`` uses the first two.
PACED_LOADS = ((4, 4), (8, 2), (16, 2))
#: CPU microseconds of busy work per request for the calibration part (0: the plain baseline).
CALIBRATION_BUSY_US = (0, 5, 10, 20, 40)


def say(message: str) -> None:
    """Progress goes to stderr; the report goes to stdout."""
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


@dataclass(frozen=True, slots=True)
class Options:
    duration_s: int
    warmup_s: int
    connections: int
    threads: int
    accounts: int
    memory_accounts: tuple[int, ...]
    memory_live_accounts: int
    micro_number: int
    capacity_accounts: int
    capacity_settle_s: float
    capacity_observe_s: float
    quick: bool
    rounds: int
    #: Poll interval of the slow-poll variant (shows the pollers' share of the guard's core).
    slow_poll_s: float = 30.0


def options_from(args: argparse.Namespace) -> Options:
    if args.quick:
        return Options(
            duration_s=args.duration or 1,
            warmup_s=0,
            connections=args.connections,
            threads=args.threads,
            accounts=args.accounts or 10,
            memory_accounts=(50, 200),
            memory_live_accounts=0,
            micro_number=2000,
            capacity_accounts=10,
            capacity_settle_s=0.5,
            capacity_observe_s=1.5,
            quick=True,
            rounds=1 if args.rounds is None else args.rounds,
            slow_poll_s=3.0,
        )
    return Options(
        duration_s=args.duration or 10,
        warmup_s=2,
        connections=args.connections,
        threads=args.threads,
        accounts=args.accounts or 100,
        memory_accounts=(1000, 10000),
        memory_live_accounts=args.memory_live,
        micro_number=20_000,
        capacity_accounts=200,
        capacity_settle_s=16.0,
        capacity_observe_s=float(args.capacity_seconds),
        quick=False,
        rounds=DEFAULT_ROUNDS if args.rounds is None else args.rounds,
    )


@dataclass
class LoadRow:
    key: str
    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    server_cpu_pct: float
    #: Busy share of the server's core NOT used by the server (other processes: noise).
    server_core_other_pct: float
    #: Busy share of the load generator's core (wrk + simulator): ~100% means wrk-bound.
    load_core_pct: float
    orders_per_request: int = 1
    #: The interleaved round this measurement belongs to (1, 2, ...); 0: not in a round.
    round: int = 0

    @property
    def orders_per_s(self) -> float:
        return self.rps * self.orders_per_request

    @property
    def noisy(self) -> bool:
        """Other processes used more than ``NOISY_OTHER_PCT`` of the server core (NaN when
        nothing is pinned: unknown, not flagged)."""
        return self.server_core_other_pct > NOISY_OTHER_PCT


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


@dataclass
class Round:
    """One interleaved round: the baseline, then the production guard's GET and batch, measured
    back to back, and the ratios of this round alone."""

    index: int
    baseline: LoadRow
    get: LoadRow
    batch: LoadRow
    throughput_ratio: float
    p99_ratio: float
    batch_gain: float
    #: The largest other% of the round's three measurements (NaN when not pinned).
    max_other_pct: float
    noisy: bool

    @staticmethod
    def of(index: int, baseline: LoadRow, get: LoadRow, batch: LoadRow) -> Round:
        rows = (baseline, get, batch)
        others = [r.server_core_other_pct for r in rows]
        return Round(
            index=index,
            baseline=baseline,
            get=get,
            batch=batch,
            throughput_ratio=_ratio(get.rps, baseline.rps),
            p99_ratio=_ratio(get.p99_ms, baseline.p99_ms),
            batch_gain=_ratio(batch.orders_per_s, get.orders_per_s),
            max_other_pct=float("nan") if any(o != o for o in others) else max(others),
            noisy=any(r.noisy for r in rows),
        )


#: The per-round values summarised across rounds (``Round`` attribute -> report name).
SUMMARISED = {
    "throughput_ratio": "GET throughput guard/baseline",
    "p99_ratio": "GET p99 guard/baseline",
    "batch_gain": "batch orders/s vs single orders/s",
}


def summarise_rounds(rounds: list[Round]) -> dict[str, Any]:
    """Median, min and max across rounds of each ratio and of the baseline's req/s and p99
    (the baseline medians are what the non-production guard is compared with). Also the
    medians over the quiet rounds only, when some rounds were noisy and some were not."""
    if not rounds:
        return {}

    def stats(values: list[float]) -> dict[str, float]:
        return {"median": median(values), "min": min(values), "max": max(values)}

    def of(selected: list[Round]) -> dict[str, dict[str, float]]:
        found = {name: stats([getattr(r, name) for r in selected]) for name in SUMMARISED}
        found["baseline_rps"] = stats([r.baseline.rps for r in selected])
        found["baseline_p99_ms"] = stats([r.baseline.p99_ms for r in selected])
        return found

    summary: dict[str, Any] = {
        "rounds": len(rounds),
        "noisy_rounds": [r.index for r in rounds if r.noisy],
        **of(rounds),
    }
    quiet = [r for r in rounds if not r.noisy]
    if quiet and len(quiet) < len(rounds):
        summary["quiet_only"] = {"rounds": [r.index for r in quiet], **of(quiet)}
    return summary


@dataclass
class PacedRow:
    """One server under one paced load (the latency part)."""

    #: "baseline" or "guard".
    server: str
    connections: int
    #: What each connection waits before each request (wrk's ``delay()``).
    delay_ms: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    server_cpu_pct: float


@dataclass
class Report:
    machine: dict[str, Any] = field(default_factory=dict)
    load: list[LoadRow] = field(default_factory=list)
    #: Interleaved rounds of the production guard against the baseline.
    rounds: list[Round] = field(default_factory=list)
    body_bytes: dict[str, int] = field(default_factory=dict)
    micro: dict[str, Any] = field(default_factory=dict)
    memory: list[dict[str, Any]] = field(default_factory=list)
    memory_live: dict[str, Any] = field(default_factory=dict)
    budget_math: list[dict[str, Any]] = field(default_factory=list)
    capacity: list[dict[str, Any]] = field(default_factory=list)
    profile: str = ""
    #: The baseline app spending N us of CPU per request, for N in ``CALIBRATION_BUSY_US``.
    calibration: list[tuple[float, LoadRow]] = field(default_factory=list)
    #: The latency part: the baseline at each paced load, then the production guard.
    paced: list[PacedRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Parts to run (``--only``); None = all.
    only: set[str] | None = None
    #: The fleet part (``bench.fleet.FleetReport.as_dict``); empty when not run.
    fleet: dict[str, Any] = field(default_factory=dict)
    #: Its rendered lines (``bench.fleet.render_fleet``).
    fleet_lines: list[str] = field(default_factory=list)
    #: The order-checks part (``bench.orders.OrdersReport.as_dict``) and its lines.
    orders: dict[str, Any] = field(default_factory=dict)
    orders_lines: list[str] = field(default_factory=list)

    def row(self, key: str) -> LoadRow | None:
        return next((r for r in self.load if r.key == key), None)


# --------------------------------------------------------------------------- measuring


def _measure(
    key: str,
    label: str,
    url: str,
    script: Path,
    opts: Options,
    pinning: Pinning,
    server_pid: int,
    *,
    orders_per_request: int = 1,
    round_index: int = 0,
) -> LoadRow:
    common: dict[str, Any] = {
        "script": script,
        "connections": opts.connections,
        "threads": opts.threads,
        "cpu_prefix": pinning.load(),
    }
    if opts.warmup_s:
        say(f"{label}: warm-up {opts.warmup_s} s")
        run_wrk(url, duration_s=opts.warmup_s, **common)
        wait_idle(server_pid)  # requests still queued from the warm-up are done
    where = f"round {round_index}/{opts.rounds}: " if round_index else ""
    say(f"{where}{label}: measuring {opts.duration_s} s")
    server_core = pinning.server_cpu if pinning.server_cpu is not None else 0
    load_core = pinning.load_cpu if pinning.load_cpu is not None else 0
    s0, l0 = core_ticks(server_core), core_ticks(load_core)
    cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
    result: WrkResult = run_wrk(url, duration_s=opts.duration_s, **common)
    cpu_pct = 100 * (cpu_seconds(server_pid) - cpu0) / (time.monotonic() - t0)
    s1, l1 = core_ticks(server_core), core_ticks(load_core)
    core_pct = 100 * (s1[0] - s0[0]) / max(1, s1[1] - s0[1])
    load_pct = 100 * (l1[0] - l0[0]) / max(1, l1[1] - l0[1])
    wait_idle(server_pid)
    if result.non_2xx or result.socket_errors:
        say(f"WARNING {label}: {result.non_2xx} non-2xx, {result.socket_errors} socket errors")
    return LoadRow(
        key=key,
        label=label,
        rps=result.rps,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        non_2xx=result.non_2xx,
        socket_errors=result.socket_errors,
        server_cpu_pct=cpu_pct,
        server_core_other_pct=max(0.0, core_pct - cpu_pct)
        if pinning.server_cpu is not None
        else float("nan"),
        load_core_pct=load_pct if pinning.load_cpu is not None else float("nan"),
        orders_per_request=orders_per_request,
        round=round_index,
    )


def run_calibration(
    body_bytes: int, script: Path, opts: Options, pinning: Pinning, tmp: Path, report: Report
) -> None:
    """The baseline app spending N us of CPU per request, back to back: how much throughput
    (and how big a ratio) a given amount of work per request costs on this machine."""
    for busy_us in CALIBRATION_BUSY_US:
        proc = BaselineProcess(
            body_bytes,
            prefix=pinning.server(),
            log_path=tmp / "calibration.log",
            busy_us=busy_us,
        ).start()
        try:
            assert proc.proc is not None
            row = _measure(
                f"calibration-{busy_us}",
                f"baseline + {busy_us} us of CPU per request",
                proc.base_url,
                script,
                opts,
                pinning,
                proc.proc.pid,
            )
        finally:
            proc.stop()
        report.calibration.append((busy_us, row))


def equivalent_busy_us(calibration: list[tuple[float, LoadRow]], rps: float) -> float | None:
    """The busy work per request at which the calibrated baseline serves ``rps`` (linear
    between measured points), or None outside the measured range."""
    points = sorted((busy, row.rps) for busy, row in calibration)
    for (busy_a, rps_a), (busy_b, rps_b) in pairwise(points):
        if rps_b <= rps <= rps_a and rps_a != rps_b:
            return busy_a + (rps_a - rps) / (rps_a - rps_b) * (busy_b - busy_a)
    return None


def _render_latency(report: Report) -> list[str]:
    if not report.paced:
        return []
    out = [
        "",
        "== Latency at paced loads, far below saturation (GET /can-trade; what a bot waits for "
        "one call) ==",
        f"  {'load':<36} {'server':<10} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} "
        f"{'p99 ms':>7} {'srv cpu%':>8} {'errors':>6}",
    ]
    loads = list(dict.fromkeys((r.connections, r.delay_ms) for r in report.paced))
    for connections, delay_ms in loads:
        rows = {
            r.server: r
            for r in report.paced
            if (r.connections, r.delay_ms) == (connections, delay_ms)
        }
        load = f"{connections} connections, {delay_ms} ms apart"
        for server in ("baseline", "guard"):
            row = rows.get(server)
            if row is None:
                continue
            out.append(
                f"  {load:<36} {server:<10} {row.rps:>7.0f} {row.p50_ms:>7.3f} "
                f"{row.p90_ms:>7.3f} {row.p99_ms:>7.3f} {row.server_cpu_pct:>8.0f} "
                f"{row.errors:>6}"
            )
            load = ""
        base, guard = rows.get("baseline"), rows.get("guard")
        if base is not None and guard is not None:
            added = ", ".join(
                f"{name} {1000 * (getattr(guard, attr) - getattr(base, attr)):+.0f} us"
                for name, attr in (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"))
            )
            out.append(
                f"  {'':<36} {'guard adds':<10} {added} "
                f"(p99 {_ratio(guard.p99_ms, base.p99_ms):.1f}x the baseline's)"
            )
    out.append(
        "  wrk 4 has no fixed-rate mode: each connection waits the delay (Lua delay(), whole ms) "
        "before each request, so the rate is about connections / (delay + latency) and differs a "
        "little between the servers; a slow answer also delays the next request on its "
        "connection, so the tail is somewhat understated (coordinated omission)"
    )
    return out


def _render_calibration(report: Report) -> list[str]:
    if not report.calibration:
        return []
    out = [
        "",
        "== Calibration: the baseline app spending N us of CPU per request (back to back) ==",
        f"  {'busy us':>8} {'req/s':>9} {'x plain':>8} {'p99 ms':>8} {'other%':>6}",
    ]
    plain = report.calibration[0][1].rps
    for busy_us, row in report.calibration:
        out.append(
            f"  {busy_us:>8.0f} {row.rps:>9.0f} {row.rps / plain:>8.2f} {row.p99_ms:>8.2f} "
            f"{row.server_core_other_pct:>6.0f}"
        )
    target = equivalent_busy_us(report.calibration, TARGET_THROUGHPUT_RATIO * plain)
    if target is not None:
        out.append(
            f"  a {TARGET_THROUGHPUT_RATIO}x throughput ratio leaves about {target:.0f} us of CPU "
            "per request for everything beyond the bare server"
        )
    guard_rps = [r.get.rps for r in report.rounds]
    if guard_rps:
        rps = median(guard_rps)
        busy = equivalent_busy_us(report.calibration, rps)
        where = f"about {busy:.0f} us" if busy is not None else "outside the measured range"
        out.append(
            f"  the guard's GET (median {rps:,.0f} req/s) serves like the baseline + {where} per "
            "request (its pollers' share of the core included)"
        )
    return out


def _run_json(command: list[str], *, stderr_path: Path, timeout_s: float) -> dict[str, Any]:
    with stderr_path.open("wb") as err:
        done = subprocess.run(
            command,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=timeout_s,
            check=False,
        )
    if done.returncode != 0:
        tail = stderr_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run_micro(opts: Options, pinning: Pinning, tmp: Path) -> dict[str, Any]:
    say("decision micro-benchmarks")
    command = [
        *pinning.server(),
        sys.executable,
        "-m",
        "bench.micro",
        "--number",
        str(opts.micro_number),
    ]
    # The log lines of decide[log=all] go to a file, as a production log would.
    return _run_json(command, stderr_path=tmp / "micro-decisions.log", timeout_s=600)


def run_memory(opts: Options, pinning: Pinning, tmp: Path) -> list[dict[str, Any]]:
    results = []
    for accounts in opts.memory_accounts:
        say(f"memory: {accounts} accounts (in-process store + app objects)")
        command = [
            *pinning.server(),
            sys.executable,
            "-m",
            "bench.memory",
            "--accounts",
            str(accounts),
        ]
        results.append(_run_json(command, stderr_path=tmp / "memory.log", timeout_s=600))
    return results


@contextmanager
def simulator(accounts: int, pinning: Pinning, tmp: Path, name: str) -> Iterator[PinnedSimulator]:
    scenario_path = scenario.write_sim_scenario(tmp / f"{name}.yaml", accounts)
    sim = PinnedSimulator(
        scenario_path,
        prefix=pinning.load(),
        log_path=tmp / f"{name}.log",
        startup_timeout_s=120,
    )
    sim.start()
    try:
        yield sim
    finally:
        sim.close()


def _check_guard(guard: GuardProcess, accounts: int) -> int:
    """One real GET and one real batch: 200, allowed. Returns the decision body size."""
    headers = {"Authorization": f"Bearer {scenario.BOT_TOKEN}"}
    path = next(scenario.order_paths(accounts))
    single = httpx.get(guard.base_url + path, headers=headers, timeout=10)
    if single.status_code != 200 or single.json().get("allowed") is not True:
        raise RuntimeError(f"guard GET {path}: {single.status_code} {single.text}")
    batch = httpx.post(
        guard.base_url + "/can-trade/batch",
        json=scenario.batch_body(accounts, BATCH_SIZE),
        headers=headers,
        timeout=10,
    )
    decisions = batch.json().get("decisions", []) if batch.status_code == 200 else []
    if len(decisions) != BATCH_SIZE or not all(d["allowed"] for d in decisions):
        raise RuntimeError(f"guard batch: {batch.status_code} {batch.text[:500]}")
    return len(single.content)


@dataclass(frozen=True, slots=True)
class GuardVariant:
    """A setting of the guard measured under load: production, or one thing changed to show
    what it costs (labelled NOT production)."""

    #: Suffix of the rows' keys ("" for production: ``guard-get``, ``guard-batch``).
    suffix: str
    #: What the rows' labels say in brackets.
    tag: str
    decision_log: str = "all"
    #: Poll intervals and the policy's max ages (None: the defaults).
    poll: dict[str, float] | None = None
    policy: dict[str, float] | None = None


PRODUCTION = GuardVariant("", "decision_log=all")
#: The decision log's share: only denied decisions are logged (the GET and batch orders are
#: allowed, so nothing is).
LOG_DENIED = GuardVariant(
    "-log-denied", "decision_log=denied, NOT production", decision_log="denied"
)


def slow_poll_variant(interval_s: float) -> GuardVariant:
    """The pollers' share: every account polled every ``interval_s`` (status and snapshot)
    instead of every 2 s / 5 s, max ages 10x that so nothing goes stale."""
    return GuardVariant(
        "-slow-poll",
        f"polls every {interval_s:g} s, NOT production",
        poll={"status_interval_s": interval_s, "snapshot_interval_s": interval_s},
        policy={"max_status_age_s": 10 * interval_s, "max_snapshot_age_s": 10 * interval_s},
    )


def _start_checked_guard(
    variant: GuardVariant,
    sim: PinnedSimulator,
    opts: Options,
    pinning: Pinning,
    tmp: Path,
    report: Report,
) -> GuardProcess:
    """The guard with ``opts.accounts`` accounts, ready (every account fresh) and answering a
    real GET and batch as expected."""
    say(f"guard with {opts.accounts} accounts ({variant.tag}): starting")
    config = scenario.guard_config(
        opts.accounts,
        port=free_port(),
        sim_url=sim.base_url,
        data_dir=tmp / f"data{variant.suffix}",
        decision_log=variant.decision_log,
        poll=variant.poll,
        policy=variant.policy,
    )
    # The first polls are spread over one status interval: wait for them all.
    status_interval = (variant.poll or {}).get("status_interval_s", 0.0)
    guard = start_guard(config, tmp, prefix=pinning.server(), ready_timeout_s=60 + status_interval)
    try:
        report.body_bytes[f"guard[{variant.tag}]"] = _check_guard(guard, opts.accounts)
    except BaseException:
        guard.stop()
        raise
    return guard


def _measure_guard(
    guard: GuardProcess,
    variant: GuardVariant,
    opts: Options,
    pinning: Pinning,
    get_lua: Path,
    batch_lua: Path,
    *,
    round_index: int = 0,
) -> tuple[LoadRow, LoadRow]:
    """wrk on the guard's ``GET /can-trade``, then on its batch endpoint."""
    assert guard.proc is not None
    pid = guard.proc.pid
    tag, suffix = variant.tag, variant.suffix
    get = _measure(
        f"guard-get{suffix}",
        f"guard   GET /can-trade [{tag}]",
        guard.base_url,
        get_lua,
        opts,
        pinning,
        pid,
        round_index=round_index,
    )
    batch = _measure(
        f"guard-batch{suffix}",
        f"guard   POST /can-trade/batch x{BATCH_SIZE} [{tag}]",
        guard.base_url,
        batch_lua,
        opts,
        pinning,
        pid,
        orders_per_request=BATCH_SIZE,
        round_index=round_index,
    )
    return get, batch


def run_rounds(
    baseline: BaselineProcess,
    sim: PinnedSimulator,
    opts: Options,
    pinning: Pinning,
    tmp: Path,
    report: Report,
    get_lua: Path,
    batch_lua: Path,
    profile_dir: Path | None,
) -> None:
    """``opts.rounds`` times: the baseline's GET, then the production guard's GET and batch.

    The baseline app keeps running (idle: it costs its core nothing while the guard is
    measured). The guard does not: it polls the simulator all the time (about 10% of its core
    with 100 accounts), which would count against the baseline, so each round starts a fresh
    guard after the baseline's measurement and stops it at the end of the round. With
    ``profile_dir``, the last round's guard is profiled before it stops."""
    assert baseline.proc is not None
    for index in range(1, opts.rounds + 1):
        say(f"round {index}/{opts.rounds}: baseline, then guard GET, then guard batch")
        base = _measure(
            "baseline",
            BASELINE_LABEL,
            baseline.base_url,
            get_lua,
            opts,
            pinning,
            baseline.proc.pid,
            round_index=index,
        )
        report.load.append(base)
        guard = _start_checked_guard(PRODUCTION, sim, opts, pinning, tmp, report)
        try:
            get, batch = _measure_guard(
                guard, PRODUCTION, opts, pinning, get_lua, batch_lua, round_index=index
            )
            report.load.extend((get, batch))
            done = Round.of(index, base, get, batch)
            report.rounds.append(done)
            say(
                f"round {index}: throughput ratio {done.throughput_ratio:.3f}, "
                f"p99 ratio {done.p99_ratio:.1f}, batch gain {done.batch_gain:.1f}"
                + (" (NOISY: other processes on the server core)" if done.noisy else "")
            )
            if index == opts.rounds and profile_dir is not None:
                _step(
                    report,
                    "guards[profile]",
                    partial(_profile_into, report, guard, get_lua, opts, pinning, profile_dir),
                )
        finally:
            guard.stop()


def _profile_into(
    report: Report,
    guard: GuardProcess,
    script: Path,
    opts: Options,
    pinning: Pinning,
    out: Path,
) -> None:
    report.profile = profile_guard(guard, script, opts, pinning, out)


def run_guard_once(
    variant: GuardVariant,
    sim: PinnedSimulator,
    opts: Options,
    pinning: Pinning,
    tmp: Path,
    report: Report,
    get_lua: Path,
    batch_lua: Path,
) -> None:
    """One measurement of GET and batch (a non-production variant)."""
    guard = _start_checked_guard(variant, sim, opts, pinning, tmp, report)
    try:
        report.load.extend(_measure_guard(guard, variant, opts, pinning, get_lua, batch_lua))
    finally:
        guard.stop()


def _measure_paced(
    server: str,
    url: str,
    script: Path,
    load: tuple[int, int],
    opts: Options,
    pinning: Pinning,
    server_pid: int,
) -> PacedRow:
    connections, delay_ms = load
    common: dict[str, Any] = {
        "script": script,
        "connections": connections,
        "threads": min(opts.threads, connections),
        "cpu_prefix": pinning.load(),
    }
    label = f"{server}: {connections} connections, {delay_ms} ms apart"
    if opts.warmup_s:
        say(f"{label}: warm-up {opts.warmup_s} s")
        run_wrk(url, duration_s=opts.warmup_s, **common)
    say(f"{label}: measuring {opts.duration_s} s")
    cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
    result = run_wrk(url, duration_s=opts.duration_s, **common)
    cpu_pct = 100 * (cpu_seconds(server_pid) - cpu0) / (time.monotonic() - t0)
    errors = result.non_2xx + result.socket_errors
    if errors:
        say(f"WARNING {label}: {result.non_2xx} non-2xx, {result.socket_errors} socket errors")
    return PacedRow(
        server=server,
        connections=connections,
        delay_ms=delay_ms,
        rps=result.rps,
        p50_ms=result.p50_ms,
        p90_ms=result.latency_ms[90],
        p99_ms=result.p99_ms,
        errors=errors,
        server_cpu_pct=cpu_pct,
    )


def run_latency(
    start_baseline: Callable[[], BaselineProcess],
    get_text: str,
    opts: Options,
    pinning: Pinning,
    tmp: Path,
    report: Report,
) -> None:
    """``GET /can-trade`` latency at paced loads far below saturation: what a bot waits for
    one call when the guard is not the bottleneck (the closed-loop rounds measure capacity,
    where latency is mostly queueing). The baseline at every load first (idle, it costs the
    guard nothing), then the production guard with its pollers."""
    loads = PACED_LOADS[:2] if opts.quick else PACED_LOADS
    scripts = {}
    for connections, delay_ms in loads:
        path = tmp / f"paced-{connections}x{delay_ms}ms.lua"
        path.write_text(paced_script(get_text, delay_ms), encoding="utf-8")
        scripts[connections, delay_ms] = path

    def measure_each_load(server: str, proc: BaselineProcess | GuardProcess) -> None:
        """Every paced load on ``proc`` (already started), then stop it."""
        try:
            assert proc.proc is not None
            for load, path in scripts.items():
                report.paced.append(
                    _measure_paced(server, proc.base_url, path, load, opts, pinning, proc.proc.pid)
                )
        finally:
            proc.stop()

    measure_each_load("baseline", start_baseline())
    with simulator(opts.accounts, pinning, tmp, "sim-latency") as sim:
        measure_each_load(
            "guard", _start_checked_guard(PRODUCTION, sim, opts, pinning, tmp, report)
        )


def profile_guard(
    guard: GuardProcess, script: Path, opts: Options, pinning: Pinning, out: Path
) -> str:
    """py-spy the guard while wrk loads GET /can-trade (an extra run, not the measured one)."""
    from bench.profile_summary import summarize_file

    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        raise RuntimeError("--profile-dir needs py-spy: .venv/bin/pip install py-spy")
    assert guard.proc is not None
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "guard-get-can-trade.pyspy.txt"
    seconds = max(2 * opts.duration_s, 5)
    command = [
        *pinning.load(),
        pyspy,
        "record",
        "--pid",
        str(guard.proc.pid),
        "--duration",
        str(seconds + 1),
        # py-spy pauses the guard for each sample (whole, consistent stacks; --nonblocking
        # reads half-changed ones). Pausing costs ~5 ms here, so sample at a low rate for
        # longer: the profiled run then stays within ~10% of the measured throughput.
        "--rate",
        str(PROFILE_RATE_HZ),
        "--format",
        "raw",
        "--output",
        str(raw),
    ]
    say(f"profiling the guard with py-spy for {seconds} s under wrk load")
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as spy:
        time.sleep(0.5)
        cpu0 = cpu_seconds(guard.proc.pid)
        load = run_wrk(
            guard.base_url,
            script=script,
            duration_s=seconds,
            connections=opts.connections,
            threads=opts.threads,
            cpu_prefix=pinning.load(),
        )
        cpu = cpu_seconds(guard.proc.pid) - cpu0
        try:
            _, err = spy.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
    if not raw.exists():
        raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')}")
    us_per_request = 1e6 * cpu / max(1, load.requests)
    header = (
        f"profiled run: {load.rps:.0f} req/s (py-spy at {PROFILE_RATE_HZ} Hz), "
        f"{us_per_request:.0f} us of guard CPU per request; raw stacks: {raw}"
    )
    return (
        header
        + "\n"
        + summarize_file(raw, us_per_request, wall_samples=PROFILE_RATE_HZ * (seconds + 1))
    )


def run_memory_live(accounts: int, pinning: Pinning, tmp: Path) -> dict[str, Any]:
    """RSS of a real guard process polling ``accounts`` accounts (relaxed intervals so one
    simulator core can keep up) once every account has data, or after ``LIVE_TIMEOUT_S``.

    All pollers start at once, so a cold start of many accounts queues thousands of requests
    on one exchange host; how long until every account has data is reported too.
    """
    say(f"memory: live guard polling {accounts} accounts (up to {LIVE_TIMEOUT_S:.0f} s)")
    with simulator(accounts, pinning, tmp, "sim-memory") as sim:
        config = scenario.guard_config(
            accounts,
            port=free_port(),
            sim_url=sim.base_url,
            data_dir=tmp / "data-memory",
            poll={"status_interval_s": 30.0, "snapshot_interval_s": 60.0},
            policy={"max_status_age_s": 120.0, "max_snapshot_age_s": 180.0},
        )
        guard = GuardProcess(config, tmp, command=[*pinning.server(), sys.executable, "-m", "app"])
        started = time.monotonic()
        guard.start(wait=False)
        try:
            assert guard.proc is not None
            with_data, all_data_s = 0, None
            while time.monotonic() - started < LIVE_TIMEOUT_S:
                if guard.proc.poll() is not None:
                    raise RuntimeError(f"guard exited with {guard.proc.returncode}")
                time.sleep(2)
                try:
                    views = httpx.get(f"{guard.base_url}/readyz", timeout=10).json()["accounts"]
                except (httpx.HTTPError, ValueError, KeyError):
                    continue
                with_data = sum(
                    1
                    for v in views.values()
                    if v["status_age_ms"] is not None and v["snapshot_age_ms"] is not None
                )
                if with_data == accounts:
                    all_data_s = time.monotonic() - started
                    break
            time.sleep(2)
            rss = rss_kib(guard.proc.pid)
            errors = guard.logs().count('"event": "refresh failed"')
            return {
                "accounts": accounts,
                "with_data": with_data,
                "all_data_s": all_data_s,
                "rss_kib": rss["VmRSS"],
                "peak_kib": rss["VmHWM"],
                "refresh_failures": errors,
            }
        finally:
            guard.stop()


def run_capacity(opts: Options, pinning: Pinning, tmp: Path, report: Report) -> None:
    """Budget math for both exchanges, then phases against the simulator:

    * generic-v2 x N at the production budget (per key: weight never limits; CPU cost);
    * generic-v2 x N with per-key budgets squeezed so the math predicts stretch 1.5 (fits);
    * Binance USD-M (one budget per IP, shared): a few accounts under the fresh limit, and
      twice the limit (the math predicts partly stale data).
    """
    for exchange in (GenericV2Client, BinanceUsdmClient):
        report.budget_math.append(asdict(capacity.budget_math(exchange)))
    binance_fresh = capacity.budget_math(BinanceUsdmClient).accounts_fresh
    tight = capacity.fraction_for_stretch(GenericV2Client, 1.5)
    stale_after = PolicySettings().max_snapshot_age_s + 1  # first data must age out first
    observe = opts.capacity_observe_s
    phases: list[tuple[str, type[ExchangeClient], int, float, float, float]] = [
        ("production budget", GenericV2Client, opts.capacity_accounts, 0.8, 5, observe),
        ("tight per-key", GenericV2Client, opts.capacity_accounts, tight, stale_after, observe),
        (
            "IP budget, fits",
            BinanceUsdmClient,
            max(1, binance_fresh - 2),
            0.8,
            stale_after,
            observe,
        ),
        (
            "IP budget, 2x over",
            BinanceUsdmClient,
            2 * binance_fresh,
            0.8,
            stale_after,
            1.5 * observe,
        ),
    ]
    if opts.quick:  # budget-limited phases need tens of seconds before data can go stale
        phases = [
            (label, client, n, f, opts.capacity_settle_s, observe)
            for label, client, n, f, _s, _o in phases[:1]
        ]
    with simulator(opts.capacity_accounts, pinning, tmp, "sim-capacity") as sim:
        for label, client, accounts, fraction, settle, seconds in phases:
            result = capacity.run_phase(
                label,
                client=client,
                accounts=accounts,
                target_fraction=fraction,
                sim=sim,
                workdir=tmp,
                pinning=pinning,
                settle_s=settle,
                observe_s=seconds,
                say=say,
            )
            report.capacity.append(result.as_dict())


# --------------------------------------------------------------------------- printing


def _ratio_line(name: str, value: float, target: str, ok: bool) -> str:
    return f"  {name:<52} {value:>7.2f}x   target {target:<8} {'met' if ok else 'NOT met'}"


def _range(stats: dict[str, float], fmt: str = ".2f") -> str:
    return f"{stats['min']:{fmt}}-{stats['max']:{fmt}}"


def _render_rounds(rounds: list[Round], summary: dict[str, Any]) -> list[str]:
    out = [
        f"== Interleaved rounds (production guard, decision_log=all): each round measures the "
        f"baseline, then the guard's GET, then its batch x{BATCH_SIZE} =="
    ]
    out.append(
        f"  {'round':>7} {'base req/s':>10} {'guard req/s':>11} {'tput x':>7} "
        f"{'base p99':>8} {'guard p99':>9} {'p99 x':>6} {'single o/s':>10} {'batch o/s':>9} "
        f"{'batch x':>7} {'other% b/g/bt':>13}"
    )
    for r in rounds:
        others = "/".join(
            f"{row.server_core_other_pct:.0f}" for row in (r.baseline, r.get, r.batch)
        )
        out.append(
            f"  {r.index:>7} {r.baseline.rps:>10.0f} {r.get.rps:>11.0f} "
            f"{r.throughput_ratio:>7.3f} {r.baseline.p99_ms:>8.2f} {r.get.p99_ms:>9.2f} "
            f"{r.p99_ratio:>6.1f} {r.get.orders_per_s:>10.0f} {r.batch.orders_per_s:>9.0f} "
            f"{r.batch_gain:>7.1f} {others:>13}" + ("  NOISY" if r.noisy else "")
        )
    tput, p99, gain = (summary[k] for k in ("throughput_ratio", "p99_ratio", "batch_gain"))
    base_rps, base_p99 = summary["baseline_rps"], summary["baseline_p99_ms"]
    out.append(
        f"  {'median':>7} {base_rps['median']:>10.0f} {'':>11} {tput['median']:>7.3f} "
        f"{base_p99['median']:>8.2f} {'':>9} {p99['median']:>6.1f} {'':>10} {'':>9} "
        f"{gain['median']:>7.1f}"
    )
    out.append(
        f"  min-max over {len(rounds)} round(s): baseline {_range(base_rps, '.0f')} req/s, "
        f"throughput ratio {_range(tput, '.3f')}, p99 ratio {_range(p99, '.1f')}, "
        f"batch gain {_range(gain, '.1f')}"
    )
    out.append(
        "  each ratio is computed within its round (guard / the baseline measured just before "
        "it); the medians are taken over the rounds' ratios"
    )
    if summary["noisy_rounds"]:
        out.append(
            f"  WARNING: round(s) {', '.join(map(str, summary['noisy_rounds']))}: other "
            f"processes used more than {NOISY_OTHER_PCT:.0f}% of the server core (NOISY): "
            "their numbers are suspect"
        )
        quiet = summary.get("quiet_only")
        if quiet:
            out.append(
                f"  medians over the quiet round(s) {', '.join(map(str, quiet['rounds']))} only: "
                f"throughput {quiet['throughput_ratio']['median']:.3f}x, "
                f"p99 {quiet['p99_ratio']['median']:.1f}x, "
                f"batch gain {quiet['batch_gain']['median']:.1f}x"
            )
    return out


def _render_ratios(report: Report, summary: dict[str, Any], opts: Options) -> list[str]:
    rounds = len(report.rounds)
    out = [
        f"== Ratios (production settings; median of {rounds} interleaved round(s), "
        "min-max of the rounds in brackets) =="
    ]
    if summary:
        for key, name, target, at_least in (
            (
                "throughput_ratio",
                "GET /can-trade throughput guard/baseline",
                TARGET_THROUGHPUT_RATIO,
                True,
            ),
            ("p99_ratio", "GET /can-trade p99 guard/baseline", TARGET_P99_RATIO, False),
            (
                "batch_gain",
                f"batch x{BATCH_SIZE} orders/s vs single GET orders/s",
                TARGET_BATCH_GAIN,
                True,
            ),
        ):
            value = summary[key]["median"]
            ok = value >= target if at_least else value <= target
            out.append(
                _ratio_line(name, value, f"{'>=' if at_least else '<='} {target:g}x", ok)
                + f"  [{_range(summary[key])}]"
            )
        if summary["noisy_rounds"]:
            out.append(
                f"  (NOISY rounds included: {', '.join(map(str, summary['noisy_rounds']))}; "
                "see the rounds table)"
            )
    else:
        out.append("  no complete round: no ratios")
    if summary:
        for variant in (LOG_DENIED, slow_poll_variant(opts.slow_poll_s)):
            out.extend(_render_variant_ratios(report, summary, variant))
    return out


def _render_variant_ratios(
    report: Report, summary: dict[str, Any], variant: GuardVariant
) -> list[str]:
    """A non-production variant's ratios: one measurement, against the rounds' median
    baseline and its own GET."""
    get = report.row(f"guard-get{variant.suffix}")
    batch = report.row(f"guard-batch{variant.suffix}")
    if get is None:
        return []
    name = variant.tag.removesuffix(", NOT production")
    tput = _ratio(get.rps, summary["baseline_rps"]["median"])
    p99 = _ratio(get.p99_ms, summary["baseline_p99_ms"]["median"])
    out = [
        f"  [{variant.tag}: one measurement, against the median baseline of the rounds]",
        _ratio_line(
            f"[{name}] GET throughput guard/baseline",
            tput,
            f">= {TARGET_THROUGHPUT_RATIO:g}x",
            tput >= TARGET_THROUGHPUT_RATIO,
        ),
        _ratio_line(
            f"[{name}] GET p99 guard/baseline",
            p99,
            f"<= {TARGET_P99_RATIO:g}x",
            p99 <= TARGET_P99_RATIO,
        ),
    ]
    if batch is not None:
        gain = _ratio(batch.orders_per_s, get.orders_per_s)
        out.append(
            _ratio_line(
                f"[{name}] batch vs single orders/s",
                gain,
                f">= {TARGET_BATCH_GAIN:g}x",
                gain >= TARGET_BATCH_GAIN,
            )
        )
    return out


def render(report: Report, opts: Options, pinning: Pinning) -> str:
    out: list[str] = []
    m = report.machine
    out.append("=" * 100)
    out.append(
        "pretrade-guard benchmark"
        + (" (QUICK: smoke-test settings, numbers meaningless)" if opts.quick else "")
    )
    out.append(f"machine: {m['cpus']} CPUs, {m['cpu_model']}; Python {m['python']}; {m['wrk']}")
    out.append(f"pinning: {pinning.note}")
    out.append(
        f"load: wrk --threads {opts.threads} --connections {opts.connections}, "
        f"{opts.duration_s} s per measurement after {opts.warmup_s} s warm-up; "
        f"guard: {opts.accounts} accounts on the simulator, production settings"
    )
    out.append("bodies: " + ", ".join(f"{k} {v} B" for k, v in report.body_bytes.items()))
    out.append("")
    out.append("== HTTP (closed loop; latency per request; in the order measured) ==")
    width = max([58, *(len(row.label) for row in report.load)])
    out.append(
        f"  {'scenario':<{width}} {'rnd':>3} {'req/s':>9} {'orders/s':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'srv cpu%':>8} {'other%':>6} {'wrk cpu%':>8} {'errors':>6}"
    )
    for row in report.load:
        out.append(
            f"  {row.label:<{width}} {row.round or '-':>3} {row.rps:>9.0f} "
            f"{row.orders_per_s:>9.0f} {row.p50_ms:>8.2f} {row.p99_ms:>8.2f} "
            f"{row.server_cpu_pct:>8.0f} {row.server_core_other_pct:>6.0f} "
            f"{row.load_core_pct:>8.0f} {row.non_2xx + row.socket_errors:>6}"
        )
    out.append(
        "  rnd: interleaved round (see below); srv cpu%: server process CPU (100 = its core "
        "saturated); other%: the server's core busy with OTHER processes (noise, should be ~0); "
        "wrk cpu%: the load core (wrk + simulator)"
    )
    noisy = [
        f"{r.label.strip()}" + (f" (round {r.round})" if r.round else "")
        for r in report.load
        if r.noisy
    ]
    if noisy:
        out.append(
            f"  WARNING: other processes used more than {NOISY_OTHER_PCT:.0f}% of the server "
            f"core during: {'; '.join(noisy)}"
        )
    summary = summarise_rounds(report.rounds)
    if report.rounds:
        out.append("")
        out.extend(_render_rounds(report.rounds, summary))
    out.append("")
    out.extend(_render_ratios(report, summary, opts))
    out.extend(report.orders_lines)
    out.extend(_render_latency(report))
    out.extend(_render_calibration(report))
    out.append("")
    mic = report.micro
    if mic:
        out.append(
            f"== Decision path, ns/op (timeit best of {mic['repeat']} x {mic['number']}, "
            "in-process, pinned, net of call overhead) =="
        )
        batch = mic.get("batch_size", BATCH_SIZE)
        for key, label in (
            ("evaluate_allowed_ns", "rules.evaluate, allowed order"),
            ("evaluate_denied_ns", "rules.evaluate, denied order (3 reasons)"),
            ("decide_allowed_log_all_ns", "Decider.decide, allowed, decision_log=all"),
            ("decide_denied_log_all_ns", "Decider.decide, denied, decision_log=all"),
            ("decide_allowed_log_denied_ns", "Decider.decide, allowed, decision_log=denied"),
            ("decide_denied_log_denied_ns", "Decider.decide, denied, decision_log=denied"),
            ("decide_allowed_log_none_ns", "Decider.decide, allowed, decision_log=none"),
            ("decide_denied_log_none_ns", "Decider.decide, denied, decision_log=none"),
            (
                "decide_json_allowed_log_all_ns",
                "Decider.decide_json, allowed, log=all (GET fast path)",
            ),
            (
                "decide_json_denied_log_all_ns",
                "Decider.decide_json, denied, log=all (GET fast path)",
            ),
            (
                "decide_json_many_per_order_log_all_ns",
                f"Decider.decide_json_many x{batch}, per order, log=all",
            ),
            ("evaluate_orders_allowed_ns", "rules.evaluate, allowed, full order-check set"),
            (
                "decide_json_orders_allowed_log_all_ns",
                "Decider.decide_json, allowed, full order checks (GET fast path)",
            ),
            (
                "decide_json_orders_uncached_allowed_log_all_ns",
                "  the same, evaluation reuse off (every check runs)",
            ),
            ("order_query_validate_ns", "OrderQuery.model_validate(query).intent()"),
            ("orjson_dumps_decision_ns", "orjson.dumps(decision body)"),
        ):
            if key in mic:
                out.append(f"  {label:<56} {mic[key]:>10.0f} ns")
        today = mic.get("decide_json_allowed_log_all_ns")
        for key, what in (
            ("decide_json_orders_allowed_log_all_ns", "as the fast path runs it"),
            ("decide_json_orders_uncached_allowed_log_all_ns", "every check run"),
        ):
            if today and key in mic:
                ratio = mic[key] / today
                out.append(
                    f"  full order-check set / account-level decide_json ({what}): "
                    f"{ratio:.2f}x (target <= 2x) {'ok' if ratio <= 2 else 'MISSED'}"
                )
        out.append(
            "  decision_log all/denied: production's batched DecisionLogWriter, lines to "
            f"{mic.get('decision_log_sink', '?')}; "
            f"{mic.get('decision_log_dropped_lines', '?')} lines dropped. decide_json: key "
            "precomputed (as the fast path's query cache); decide_json_many: "
            f"{batch} allowed orders over {batch} accounts, keys not precomputed (as the batch "
            "fast path)"
        )
        out.append("")
    out.append("== Memory (RSS) ==")
    for mem in report.memory:
        out.append(
            f"  {mem['accounts']:>6} accounts, in-process app + realistic state: "
            f"{mem['state_kib'] / 1024:>7.1f} MiB total, "
            f"{(mem['state_kib'] - mem['imports_kib']) / 1024:>7.1f} MiB above imports "
            f"({mem['imports_kib'] / 1024:.1f} MiB); per account "
            f"{mem['total_per_account_kib']:.1f} KiB = app objects "
            f"{mem['app_per_account_kib']:.1f} + state {mem['state_per_account_kib']:.1f}"
        )
    prod_phase = next((p for p in report.capacity if p["label"] == "production budget"), None)
    if prod_phase:
        out.append(
            f"  {prod_phase['accounts']:>6} accounts, live guard process polling the simulator "
            f"(capacity phase 'production budget'): {prod_phase['rss_kib'] / 1024:.1f} MiB RSS"
        )
    if report.memory_live:
        live = report.memory_live
        took = (
            f"every account had data after {live['all_data_s']:.0f} s"
            if live["all_data_s"] is not None
            else f"only {live['with_data']} had data after {LIVE_TIMEOUT_S:.0f} s"
        )
        out.append(
            f"  {live['accounts']:>6} accounts, live guard process polling the simulator: "
            f"{live['rss_kib'] / 1024:.1f} MiB RSS (peak {live['peak_kib'] / 1024:.1f} MiB); "
            f"cold start: {took}, {live['refresh_failures']} failed refreshes on the way"
        )
    out.append("")
    out.append(
        "== Capacity: budget math (default intervals 2 s / 5 s, max ages 10 s / 15 s, "
        "jitter 10%, weight_target_fraction 0.8) =="
    )
    for bm in report.budget_math:
        out.append(
            f"  {bm['exchange']:<13} budget per {bm['scope']:<4}: limit {bm['limit_per_min']}/min, "
            f"target {bm['target_per_min']}, sustained {bm['sustained_per_min']:.0f}/min; "
            f"one account asks {bm['demand_per_account']:.0f}/min -> "
            f"{bm['accounts_unstretched']} accounts per budget unstretched, "
            f"{bm['accounts_fresh']} kept fresh (max stretch {bm['max_fresh_stretch']:.2f})"
        )
    out.append("")
    out.append(
        "== Capacity: empirical (simulator; /readyz sampled 1/s after the data could go stale) =="
    )
    out.append(
        f"  {'phase':<20} {'exchange':<13} {'accts':>5} {'fraction':>8} {'stretch pred/obs':>17} "
        f"{'fresh pred':>10} {'fresh mean/min':>15} {'exch req/s':>10} {'cpu %':>6} "
        f"{'ms/req':>6} {'sim cpu%':>8} {'429s':>5}"
    )
    for ph in report.capacity:
        stretch = f"{ph['predicted_stretch']:.2f}/{ph['observed_stretch_max']:.2f}"
        fresh = f"{100 * ph['fresh_mean']:.0f}%/{100 * ph['fresh_min']:.0f}%"
        out.append(
            f"  {ph['label']:<20} {ph['exchange']:<13} {ph['accounts']:>5} "
            f"{ph['target_fraction']:>8.4f} {stretch:>17} {100 * ph['predicted_fresh']:>9.0f}% "
            f"{fresh:>15} {ph['exchange_rps']:>10.1f} {ph['guard_cpu_pct']:>6.1f} "
            f"{ph['cpu_ms_per_exchange_request']:>6.2f} {ph['sim_cpu_pct']:>8.1f} "
            f"{ph['rate_limited']:>5}"
        )
    prod = next((p for p in report.capacity if p["label"] == "production budget"), None)
    if prod and prod["cpu_ms_per_exchange_request"] == prod["cpu_ms_per_exchange_request"]:
        per_account = 1 / PollSettings().status_interval_s + 1 / PollSettings().snapshot_interval_s
        cpu_per_account = prod["cpu_ms_per_exchange_request"] * per_account / 1000
        out.append(
            f"  CPU bound (generic-v2, per-key budgets never limit): {per_account:.1f} polls/s "
            f"per account x {prod['cpu_ms_per_exchange_request']:.2f} ms = "
            f"{100 * cpu_per_account:.2f}% of a core per account -> "
            f"~{0.5 / cpu_per_account:.0f} accounts at 50% of a core, "
            f"~{1 / cpu_per_account:.0f} at 100%"
        )
    out.extend(report.fleet_lines)
    if report.profile:
        out.append("")
        out.append("== Profile (py-spy, GET /can-trade under wrk) ==")
        out.append(report.profile)
    if report.errors:
        out.append("")
        out.append("== FAILED parts (their rows are missing above) ==")
        out.extend(f"  {error}" for error in report.errors)
    out.append("=" * 100)
    return "\n".join(out)


def _machine() -> dict[str, Any]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os
    import platform

    version = subprocess.run(
        [find_wrk(), "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "wrk": (version.stdout or version.stderr).splitlines()[0].strip(),
        "kernel": platform.release(),
    }


def _step(report: Report, name: str, fn: Callable[[], object]) -> None:
    """Run one part; a failure is reported (and makes the exit status 1) but the other parts
    still run, so one broken measurement does not cost the whole run."""
    if report.only is not None and name.split("[")[0] not in report.only:
        return
    started = time.monotonic()
    try:
        fn()
    except Exception as exc:
        say(f"{name} FAILED after {time.monotonic() - started:.1f} s: {exc!r}")
        report.errors.append(f"{name}: {type(exc).__name__}: {exc}")
        return
    say(f"{name} done in {time.monotonic() - started:.1f} s")


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description="pretrade-guard benchmark harness"
    )
    parser.add_argument("--duration", type=int, default=0, help="seconds per measurement (10)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--accounts", type=int, default=0, help="guard accounts (100)")
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help=f"interleaved rounds of baseline, guard GET, guard batch ({DEFAULT_ROUNDS}; "
        "--quick: 1); the ratios reported are the medians over the rounds",
    )
    parser.add_argument("--quick", action="store_true", help="smoke-test settings (~30 s)")
    parser.add_argument(
        "--capacity-seconds",
        type=int,
        default=16,
        help="observation window of each capacity phase (16; 'too tight' x2)",
    )
    parser.add_argument(
        "--memory-live",
        type=int,
        default=0,
        metavar="N",
        help="also start a guard polling N accounts and report its RSS once all have data "
        "(off by default: it takes a while; 500 accounts had data after ~33 s)",
    )
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        default=set(DEFAULT_PARTS),
        help=f"comma-separated parts to run: {','.join(PARTS)} (default: all but fleet, which "
        "needs redis-server, and orders, the full order checks on Binance accounts)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument(
        "--profile-dir", type=Path, help="also py-spy the guard under GET load (needs py-spy)"
    )
    args = parser.parse_args(argv)
    try:
        find_wrk()
    except WrkMissing as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    # SIGTERM (a CI timeout, say) unwinds like Ctrl-C, so every ``finally`` stops the servers
    # this run started instead of leaving them to burn the server core.
    signal.signal(signal.SIGTERM, _terminate)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    opts = options_from(args)
    pinning = Pinning.detect(not args.no_pin)
    pinning.pin_self_to_load_cpu()
    unknown = args.only - set(PARTS)
    if unknown:
        parser.error(f"--only: unknown parts {sorted(unknown)}; known: {', '.join(PARTS)}")
    report = Report(machine=_machine(), only=args.only)
    say(pinning.note)
    with tempfile.TemporaryDirectory(prefix="pretrade-bench-") as tmp_name:
        tmp = Path(tmp_name)

        def micro() -> None:
            report.micro = run_micro(opts, pinning, tmp)

        _step(report, "micro", micro)
        # The size of a real decision body (measured in-process by bench.micro).
        body_bytes = int(report.micro.get("decision_body_bytes", DEFAULT_BODY_BYTES))
        get_lua = tmp / "get.lua"
        get_text = get_script(scenario.order_paths(opts.accounts), scenario.BOT_TOKEN)
        get_lua.write_text(get_text, encoding="utf-8")
        batch_lua = tmp / "batch.lua"
        batch_lua.write_text(
            post_script(
                "/can-trade/batch",
                json.dumps(scenario.batch_body(opts.accounts, BATCH_SIZE), separators=(",", ":")),
                scenario.BOT_TOKEN,
            ),
            encoding="utf-8",
        )

        def start_baseline() -> BaselineProcess:
            # The same requests as the guard gets (paths, token): the server parses them alike.
            proc = BaselineProcess(
                body_bytes, prefix=pinning.server(), log_path=tmp / "baseline.log"
            ).start()
            try:
                report.body_bytes["baseline"] = len(proc.body())
            except BaseException:
                proc.stop()
                raise
            return proc

        def baseline() -> None:
            proc = start_baseline()
            try:
                assert proc.proc is not None
                report.load.append(
                    _measure(
                        "baseline",
                        BASELINE_LABEL,
                        proc.base_url,
                        get_lua,
                        opts,
                        pinning,
                        proc.proc.pid,
                    )
                )
            finally:
                proc.stop()

        if "guards" in args.only:
            say("baseline: measured in each of the guards part's interleaved rounds")
        else:
            _step(report, "baseline", baseline)

        def guards() -> None:
            proc = start_baseline()
            try:
                with simulator(opts.accounts, pinning, tmp, "sim-load") as sim:
                    _step(
                        report,
                        "guards[all, rounds]",
                        partial(
                            run_rounds,
                            proc,
                            sim,
                            opts,
                            pinning,
                            tmp,
                            report,
                            get_lua,
                            batch_lua,
                            args.profile_dir,
                        ),
                    )
                    for name, variant in (
                        ("denied", LOG_DENIED),
                        ("slow-poll", slow_poll_variant(opts.slow_poll_s)),
                    ):
                        _step(
                            report,
                            f"guards[{name}]",
                            partial(
                                run_guard_once,
                                variant,
                                sim,
                                opts,
                                pinning,
                                tmp,
                                report,
                                get_lua,
                                batch_lua,
                            ),
                        )
            finally:
                proc.stop()

        _step(report, "guards", guards)

        def orders() -> None:
            from bench.orders import render_orders, run_orders  # imports this module

            result = run_orders(opts, pinning, tmp, start_baseline, report.load)
            report.orders = result.as_dict()
            generic = median(r.get.rps for r in report.rounds) if report.rounds else None
            report.orders_lines = render_orders(result, generic)

        _step(report, "orders", orders)
        _step(
            report,
            "latency",
            partial(run_latency, start_baseline, get_text, opts, pinning, tmp, report),
        )
        _step(
            report,
            "calibration",
            partial(run_calibration, body_bytes, get_lua, opts, pinning, tmp, report),
        )

        def memory() -> None:
            report.memory = run_memory(opts, pinning, tmp)

        def memory_live() -> None:
            report.memory_live = run_memory_live(opts.memory_live_accounts, pinning, tmp)

        _step(report, "memory", memory)
        if opts.memory_live_accounts:
            _step(report, "memory-live", memory_live)
        _step(report, "capacity", partial(run_capacity, opts, pinning, tmp, report))

        def fleet() -> None:
            from bench.fleet import render_fleet, run_fleet  # imports this module

            result = run_fleet(
                opts,
                pinning,
                tmp,
                start_baseline,
                get_lua,
                get_text,
                lambda name, fn: _step(report, name, fn),
            )
            report.fleet = result.as_dict()
            report.fleet_lines = render_fleet(result)

        _step(report, "fleet", fleet)
    text = render(report, opts, pinning)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    if args.json:
        data = asdict(report)
        data["options"] = asdict(opts)
        data["ratio_summary"] = summarise_rounds(report.rounds)
        data["pinning"] = pinning.note
        args.json.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return 1 if report.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
