"""Two api workers on two cores against a two-worker baseline (part of ``--only fleet``).

The fleet api role started as ``pretrade-guard --role api --workers 2`` (its worker pool:
one socket, two worker processes) and the bare baseline app with ``--workers 2`` (the same
model: one socket bound by the parent, two server processes), both NOT pinned: the servers may
use both cores, as the issue asks ("api throughput with 2 workers on 2 cores against a
2-worker baseline"). wrk stays on the load core as in every other part, so both sides share
that core with it alike; the refresher, the simulator and Redis run throughout (on the load
core) for both sides too. ``opts.rounds`` interleaved rounds of (baseline, api); the ratio is
the median of the rounds' ratios. Each row also reports the CPU the server's processes used
(all of them: supervisor and workers, as a share of one core) and how that split over its
workers (whether both took connections), and the machine's load average (other work on the
machine shows there).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from bench import scenario
from bench.procs import BaselineProcess, GuardProcess, Pinning, tree_cpu_seconds
from bench.run import Options, _ratio, say
from bench.wrk import run_wrk

WORKERS = 2


@dataclass
class PoolRow:
    label: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    #: CPU of every process of the server (supervisor + workers), % of one core.
    cpu_pct: float
    #: Each worker's share of the server's CPU, % (largest first).
    worker_split_pct: list[float]
    load_average_1m: float


@dataclass
class WorkersReport:
    rows: list[PoolRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def ratios(self) -> list[float]:
        by_round: dict[int, dict[str, PoolRow]] = {}
        for row in self.rows:
            by_round.setdefault(row.round, {})[row.label] = row
        return [
            _ratio(pair["api"].rps, pair["baseline"].rps)
            for pair in by_round.values()
            if {"api", "baseline"} <= pair.keys()
        ]


def _measure(
    label: str, url: str, pid: int, script: Path, opts: Options, pinning: Pinning, index: int
) -> PoolRow:
    common: dict[str, Any] = {
        "script": script,
        "connections": opts.connections,
        "threads": opts.threads,
        "cpu_prefix": pinning.load(),
    }
    if opts.warmup_s:
        run_wrk(url, duration_s=opts.warmup_s, **common)
        time.sleep(0.5)
    say(f"round {index}/{opts.rounds}: {WORKERS} workers, {label}: measuring {opts.duration_s} s")
    before, started = tree_cpu_seconds(pid), time.monotonic()
    result = run_wrk(url, duration_s=opts.duration_s, **common)
    after, elapsed = tree_cpu_seconds(pid), time.monotonic() - started
    used = {p: after[p] - before.get(p, 0.0) for p in after}
    total = sum(used.values())
    workers = sorted((v for p, v in used.items() if p != pid), reverse=True)[:WORKERS]
    return PoolRow(
        label=label,
        round=index,
        rps=result.rps,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=result.non_2xx + result.socket_errors,
        cpu_pct=100 * total / elapsed,
        worker_split_pct=[100 * v / total if total else 0.0 for v in workers],
        load_average_1m=os.getloadavg()[0],
    )


def measure_two_workers(
    opts: Options,
    pinning: Pinning,
    tmp: Path,
    api_config: dict[str, Any],
    body_bytes: int,
    get_lua: Path,
    out: WorkersReport,
) -> None:
    """Start the 2-worker api (with ``api_config``: the fleet's Redis and namespace) and the
    2-worker baseline; measure them in interleaved rounds; stop both."""
    api = GuardProcess(
        api_config,
        tmp,
        command=[sys.executable, "-m", "app", "--role", "api", "--workers", str(WORKERS)],
    )
    baseline = BaselineProcess(
        body_bytes, prefix=[], log_path=tmp / "baseline-2-workers.log", workers=WORKERS
    )
    try:
        say(f"fleet: an api guard with --workers {WORKERS} and a {WORKERS}-worker baseline")
        api.start(wait=False)
        baseline.start()
        _ready(api, opts.accounts)
        assert api.proc is not None
        assert baseline.proc is not None
        for index in range(1, opts.rounds + 1):
            out.rows.append(
                _measure(
                    "baseline", baseline.base_url, baseline.proc.pid, get_lua, opts, pinning, index
                )
            )
            out.rows.append(
                _measure("api", api.base_url, api.proc.pid, get_lua, opts, pinning, index)
            )
            say(f"{WORKERS} workers round {index}: ratio {out.ratios()[-1]:.3f}")
    finally:
        api.stop()
        baseline.stop()


def _ready(api: GuardProcess, accounts: int) -> None:
    """Until an order is allowed (fresh data applied) on several connections in a row, so
    both workers are past their start."""
    path = next(scenario.order_paths(accounts))
    deadline = time.monotonic() + 120
    allowed_in_a_row = 0
    while allowed_in_a_row < 20:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{WORKERS}-worker api never allowed {path}:\n{api.logs()[-3000:]}")
        if api.proc is not None and api.proc.poll() is not None:
            raise RuntimeError(f"{WORKERS}-worker api exited:\n{api.logs()[-3000:]}")
        try:
            answer = httpx.get(
                api.base_url + path,
                headers={"Authorization": f"Bearer {scenario.BOT_TOKEN}"},
                timeout=5,
            )
            ok = answer.status_code == 200 and answer.json().get("allowed") is True
        except httpx.HTTPError:
            ok = False
        allowed_in_a_row = allowed_in_a_row + 1 if ok else 0
        time.sleep(0.05)


def render_two_workers(out: WorkersReport) -> list[str]:
    if not out.rows:
        return [f"  {WORKERS} workers: not measured"]
    lines = [
        f"  {WORKERS} api workers vs a {WORKERS}-worker baseline (servers on both cores, wrk on "
        "the load core):"
    ]
    for row in out.rows:
        split = "/".join(f"{v:.0f}" for v in row.worker_split_pct)
        lines.append(
            f"    r{row.round} {row.label:<9} {row.rps:>9.0f} req/s  p50 {row.p50_ms:.2f} ms  "
            f"p99 {row.p99_ms:.2f} ms  cpu {row.cpu_pct:.0f}% (workers {split}%)  "
            f"errors {row.errors}  load avg {row.load_average_1m:.1f}"
        )
    ratios = out.ratios()
    if ratios:
        lines.append(
            f"    {WORKERS}-worker throughput api/baseline: {median(ratios):.3f} (median of "
            f"{len(ratios)}; min-max {min(ratios):.3f}-{max(ratios):.3f})"
        )
    return lines
