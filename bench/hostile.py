"""A hostile exchange against the guard: its memory and the other accounts' decision latency.

    python -m bench.hostile [--duration 8] [--rate 100] [--json FILE]

One simulator and, per phase, a fresh guard (so ``VmHWM``, the peak RSS, is the phase's own)
on loopback: a target account the simulator misbehaves for, and four other accounts whose
``GET /can-trade`` latency is measured from a paced client (``--rate`` requests/s in total,
spread over the four) while it does. Phases (issue 12):

* ``baseline``: no fault;
* ``status-300MB`` / ``status-300MB-chunked``: the target's status answer behind 300 MB of
  JSON whitespace, with and without Content-Length (the simulator streams it);
* ``gzip-bomb-1GB``: the target's status answer as a gzip of about 1 MB that expands to 1 GB;
* ``positions-20k`` / ``positions-100k``: the target's snapshot holds 20,000 / 100,000
  positions, with the default caps (8 MiB, 10,000 rows) and again with the caps raised to
  64 MiB / 200,000 rows (``-raised``), so the big snapshots are really decoded and parsed
  (off the event loop) at every poll.

Each phase is bounded by ``--duration`` (plus start-up); everything runs on 127.0.0.1 and every
process started is stopped. Results: one row per phase, and ``--json`` for the record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.procs import rss_kib
from tests.support.guard import BOT_TOKEN, GuardProcess, guard_config, wait_until
from tests.support.processes import SimulatorProcess, free_port

TARGET = "target"
OTHERS = [f"other{i}" for i in range(1, 5)]
STATUS_PATH = "/v2/private/account/apiTradingStatus"
ACCOUNT_PATH = "/v2/account"
RAISED = {"max_response_bytes": 64 * 1024**2, "max_snapshot_rows": 200_000}
POLL = {"status_interval_s": 1.0, "snapshot_interval_s": 2.0, "timeout_s": 3.0}
POLICY = {"max_status_age_s": 10.0, "max_snapshot_age_s": 15.0}


def _key(name: str) -> str:
    return f"bench-key-{name}"


def _scenario(path: Path) -> None:
    accounts = [
        {
            "id": f"B-{name}",
            "api_key": _key(name),
            "api_secret": f"bench-secret-{name}",
            "status": {"tradingStatus": "NORMAL"},
            "account": {
                "walletBalance": "100000.00",
                "marginBalance": "100000.00",
                "availableBalance": "90000.00",
                "maintenanceMargin": "10.00",
                "positions": [_row("BTCUSDT")],
            },
        }
        for name in [TARGET, *OTHERS]
    ]
    path.write_text(
        yaml.safe_dump({"weight_limit_per_minute": 100_000, "accounts": accounts}),
        encoding="utf-8",
    )


def _row(symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "side": "LONG",
        "quantity": "0.5",
        "entryPrice": "60000.0",
        "markPrice": "60300.0",
        "leverage": 10,
        "notional": "30150.0",
        "unrealizedPnl": "150.00",
        "initialMargin": "3015.00",
        "maintenanceMargin": "301.50",
        "liquidationPrice": "54600.0",
        "marginType": "CROSSED",
    }


def _positions(count: int) -> list[dict[str, Any]]:
    return [_row(f"S{i:06d}USDT") for i in range(count)]


Setup = Callable[[SimulatorProcess], None]


def _fault(kind: str, path: str, **params: Any) -> Setup:
    def setup(sim: SimulatorProcess) -> None:
        sim.control.add_fault(kind, api_key=_key(TARGET), path=path, params=params)

    return setup


def _many(count: int) -> Setup:
    def setup(sim: SimulatorProcess) -> None:
        # 100,000 rows are 25 MB of JSON: more than SimControl's 5 s on a busy machine.
        response = httpx.patch(
            f"{sim.base_url}/_sim/accounts/B-{TARGET}/account",
            json={"positions": _positions(count)},
            timeout=120,
        )
        response.raise_for_status()

    return setup


PHASES: list[tuple[str, Setup | None, dict[str, Any]]] = [
    ("baseline", None, {}),
    ("status-300MB", _fault("huge_body", STATUS_PATH, size_bytes=300_000_000), {}),
    (
        "status-300MB-chunked",
        _fault("huge_body", STATUS_PATH, size_bytes=300_000_000, chunked=True),
        {},
    ),
    ("gzip-bomb-1GB", _fault("gzip_bomb", STATUS_PATH, size_bytes=1_000_000_000), {}),
    ("positions-20k", _many(20_000), {}),
    ("positions-100k", _many(100_000), {}),
    ("positions-20k-raised", _many(20_000), RAISED),
    ("positions-100k-raised", _many(100_000), RAISED),
]


async def _load(base_url: str, duration_s: float, rate: float) -> list[float]:
    """Paced GET /can-trade for the other accounts; latencies in ms."""
    latencies: list[float] = []
    interval = len(OTHERS) / rate
    headers = {"Authorization": f"Bearer {BOT_TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:

        async def worker(account: str) -> None:
            params = {"account": account, "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01"}
            loop = asyncio.get_running_loop()
            end = loop.time() + duration_s
            next_at = loop.time()
            while loop.time() < end:
                started = time.perf_counter()
                response = await client.get("/can-trade", params=params)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"/can-trade answered {response.status_code}")
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - loop.time()))

        await asyncio.gather(*(worker(account) for account in OTHERS))
    return latencies


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[round(q * 1000) - 1] if len(values) > 1 else 0.0


def run_phase(
    sim: SimulatorProcess,
    workdir: Path,
    name: str,
    setup: Setup | None,
    poll: dict[str, Any],
    duration_s: float,
    rate: float,
) -> dict[str, Any]:
    sim.control.reset()
    accounts = {
        account: {
            "exchange": "generic-v2",
            "base_url": sim.base_url,
            "api_key": _key(account),
            "api_secret": f"bench-secret-{account}",
        }
        for account in [TARGET, *OTHERS]
    }
    config = guard_config(
        accounts,
        port=free_port(),
        poll={**POLL, **poll},
        policy=POLICY,
    )
    config["server"]["decision_log"] = "none"
    phase_dir = workdir / name
    phase_dir.mkdir()
    guard = GuardProcess(config, phase_dir).start()
    try:
        assert guard.proc is not None
        pid = guard.proc.pid

        def ready() -> bool:
            body = httpx.get(f"{guard.base_url}/readyz", timeout=5).json()
            return all(body["accounts"][a]["fresh"] for a in [TARGET, *OTHERS])

        wait_until(ready, timeout=60, what="every account fresh")
        rss_before = rss_kib(pid)["VmRSS"]
        if setup is not None:
            setup(sim)
        latencies = asyncio.run(_load(guard.base_url, duration_s, rate))
        memory = rss_kib(pid)
        view = httpx.get(f"{guard.base_url}/readyz", timeout=5).json()["accounts"][TARGET]
        others_fresh = all(
            httpx.get(f"{guard.base_url}/readyz", timeout=5).json()["accounts"][a]["fresh"]
            for a in OTHERS
        )
    finally:
        guard.stop()
    return {
        "phase": name,
        "requests": len(latencies),
        "p50_ms": round(_quantile(latencies, 0.5), 2),
        "p99_ms": round(_quantile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_peak_mib": round(memory["VmHWM"] / 1024, 1),
        "target_last_error_kind": view["last_error_kind"],
        "target_last_error": (view["last_error"] or "")[:120],
        "others_fresh": others_fresh,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load per phase")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s, all workers")
    parser.add_argument("--only", default="", help="comma-separated phase names")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here too")
    args = parser.parse_args()
    if not 0 < args.duration <= 120 or not 0 < args.rate <= 2000:
        parser.error("--duration must be in (0, 120] and --rate in (0, 2000]")
    wanted = set(filter(None, args.only.split(",")))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        workdir = Path(tmp)
        scenario = workdir / "scenario.yaml"
        _scenario(scenario)
        with SimulatorProcess(scenario, log_path=workdir / "simulator.log") as sim:
            for name, setup, poll in PHASES:
                if wanted and name not in wanted:
                    continue
                row = run_phase(sim, workdir, name, setup, poll, args.duration, args.rate)
                rows.append(row)
                print(json.dumps(row), flush=True)
    header = f"{'phase':24} {'req':>5} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'RSS MiB':>8}"
    print(header + "  target error")
    for row in rows:
        print(
            f"{row['phase']:24} {row['requests']:5d} {row['p50_ms']:7.2f} {row['p99_ms']:7.2f} "
            f"{row['max_ms']:7.2f} {row['rss_peak_mib']:8.1f}  {row['target_last_error_kind']}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
