"""Two versions of the fleet api replica side by side in one run (a lever's before/after).

    python -m bench.fleet_ab --other-tree /path/to/checkout [--rounds 3] [--duration 10]
        [--accounts 100] [--profile-dir DIR]

The machine this project runs on is shared and its load moves from minute to minute, so a
lever is measured as a ratio within one run: one simulator, one private Redis (AOF
``appendfsync always``), one ``--role refresher`` guard of this tree polling the accounts, and
two ``--role api`` replicas answering from the same feed: "other" runs the code of
``--other-tree`` (e.g. a ``git worktree add --detach`` of the commit before the lever), "this"
runs this tree's. Interleaved rounds of the bare baseline and both replicas (the order rotates
each round), then each at the paced load of ~1k req/s (4 connections, 4 ms apart), as in
``--only fleet``. Pinning as there: servers on the server core, everything else on the other.
Both replicas apply the feed throughout, so every row carries both replicas' idle cost, as the
baseline rows of ``--only fleet`` carry the idle replica B's. The load average is printed with
each row. With ``--profile-dir``, this tree's replica is then recorded by py-spy under
closed-loop load and summarised.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from statistics import median

from bench import scenario
from bench.fleet import _answers_200, _check_allowed, _config, _Fleet, _wait
from bench.procs import BaselineProcess, GuardProcess, Pinning, cpu_seconds
from bench.run import (
    DEFAULT_BODY_BYTES,
    PACED_LOADS,
    LoadRow,
    Options,
    PacedRow,
    _measure,
    _measure_paced,
    _ratio,
    options_from,
    say,
    simulator,
)
from bench.wrk import get_script, paced_script


def _loadavg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


#: How long each replica's CPU is sampled with no request (its cost of applying the feed).
IDLE_S = 20.0


def _idle_cpu(pid: int) -> float:
    """% of a core ``pid`` used over ``IDLE_S`` seconds with no request."""
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(IDLE_S)
    return 100 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)


def _replica(fleet: _Fleet, tree: Path | None) -> GuardProcess:
    config = _config(fleet.opts, fleet.sim_url, fleet.tmp, fleet.redis.url, "api", order_rate=False)
    prefix = fleet.pinning.server()
    if tree is None:
        command = [*prefix, sys.executable, "-m", "app"]
    else:  # the other checkout's code, this virtualenv's packages
        command = [*prefix, "sh", "-c", f'cd "{tree}" && exec "{sys.executable}" -m app']
    guard = GuardProcess(config, fleet.tmp, command=command)
    guard.start(wait=False)
    fleet.guards.append(guard)
    return guard


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--other-tree",
        type=Path,
        required=True,
        action="append",
        help="a checkout to compare (repeatable; named by its directory's name)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--profile-dir", type=Path)
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so every process started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    opts: Options = options_from(
        argparse.Namespace(
            quick=False,
            duration=args.duration,
            connections=32,
            threads=1,
            accounts=args.accounts,
            rounds=args.rounds,
            memory_live=0,
            capacity_seconds=16,
        )
    )
    pinning = Pinning.detect(True)
    pinning.pin_self_to_load_cpu()
    say(pinning.note)
    trees = {tree.resolve().name: tree.resolve() for tree in args.other_tree}
    names = ["baseline", *trees, "this"]
    replicas = [*trees, "this"]
    rows: dict[str, list[LoadRow]] = {name: [] for name in names}
    loads: dict[str, list[str]] = {name: [] for name in names}
    paced: dict[str, PacedRow] = {}
    idle_cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pretrade-fleet-ab-") as tmp_name:
        tmp = Path(tmp_name)
        get_text = get_script(scenario.order_paths(opts.accounts), scenario.BOT_TOKEN)
        get_lua = tmp / "get.lua"
        get_lua.write_text(get_text, encoding="utf-8")
        with simulator(opts.accounts, pinning, tmp, "sim-ab") as sim:
            fleet = _Fleet(opts, pinning, tmp, sim.base_url)
            baseline = BaselineProcess(
                DEFAULT_BODY_BYTES, prefix=pinning.server(), log_path=tmp / "baseline.log"
            ).start()
            try:
                fleet.start_redis()
                fleet.start_many(("refresher",))
                servers = {name: _replica(fleet, tree) for name, tree in trees.items()}
                servers["this"] = _replica(fleet, None)
                for guard in servers.values():
                    _wait("/readyz of an api replica", partial(_answers_200, guard, "/readyz"), 90)
                    _check_allowed(guard, opts.accounts)
                urls = {
                    "baseline": baseline.base_url,
                    **{k: g.base_url for k, g in servers.items()},
                }
                pids = {"baseline": baseline.proc.pid}  # type: ignore[union-attr]
                pids.update({k: g.proc.pid for k, g in servers.items()})  # type: ignore[union-attr]
                for name in replicas:
                    idle_cpu[name] = _idle_cpu(pids[name])
                order = list(names)
                for index in range(1, opts.rounds + 1):
                    for name in order:
                        before = _loadavg()
                        rows[name].append(
                            _measure(
                                name,
                                name,
                                urls[name],
                                get_lua,
                                opts,
                                pinning,
                                pids[name],
                                round_index=index,
                            )
                        )
                        loads[name].append(before)
                    order = order[1:] + order[:1]
                connections, delay_ms = PACED_LOADS[0]
                script = tmp / "paced.lua"
                script.write_text(paced_script(get_text, delay_ms), encoding="utf-8")
                for name in names:
                    paced[name] = _measure_paced(
                        name, urls[name], script, (connections, delay_ms), opts, pinning, pids[name]
                    )
                if args.profile_dir is not None:
                    _profile(servers["this"], get_lua, opts, pinning, args.profile_dir)
            finally:
                baseline.stop()
                fleet.close()
    listed = ", ".join(f"{name} = {tree}" for name, tree in trees.items())
    print(f"fleet A/B: {listed}; this = {Path.cwd()}; {opts.accounts} accounts")
    for name, pct in idle_cpu.items():
        print(f"idle (feed only, no requests) {name}: {pct:.1f} % of a core over {IDLE_S:.0f} s")
    print(
        f"{'round':>5} {'server':<12} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'cpu%':>5} "
        f"{'other%':>6} {'cpu us/req':>10}  loadavg"
    )
    for index in range(opts.rounds):
        for name in names:
            r = rows[name][index]
            per_request = 1e4 * r.server_cpu_pct / r.rps if r.rps else float("nan")
            print(
                f"{index + 1:>5} {name:<12} {r.rps:>8.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
                f"{r.server_cpu_pct:>5.0f} {r.server_core_other_pct:>6.0f} {per_request:>10.0f}  "
                f"{loads[name][index]}"
            )
    for name in replicas:
        ratios = [_ratio(a.rps, b.rps) for a, b in zip(rows[name], rows["baseline"], strict=True)]
        p99s = [
            _ratio(a.p99_ms, b.p99_ms) for a, b in zip(rows[name], rows["baseline"], strict=True)
        ]
        print(
            f"{name:<5} throughput / baseline: median {median(ratios):.3f} "
            f"({', '.join(f'{x:.3f}' for x in ratios)}); p99 / baseline: median {median(p99s):.2f}"
        )
    for name in trees:
        gains = [_ratio(t.rps, o.rps) for t, o in zip(rows["this"], rows[name], strict=True)]
        listed = ", ".join(f"{x:.3f}" for x in gains)
        print(f"this / {name} throughput: median {median(gains):.3f} ({listed})")
    for name, p in paced.items():
        print(
            f"paced {p.connections} conns {p.delay_ms} ms apart: {name:<12} {p.rps:>6.0f} req/s "
            f"p50 {p.p50_ms:.3f} p90 {p.p90_ms:.3f} p99 {p.p99_ms:.3f} ms, "
            f"cpu {p.server_cpu_pct:.0f}%"
        )
    for name in replicas:
        added = 1000 * (paced[name].p99_ms - paced["baseline"].p99_ms)
        print(f"paced: {name} adds {added:+.0f} us at p99 (goal <= +300 us)")
    print(f"load average at the end: {_loadavg()}")
    return 0


def _profile(
    guard: GuardProcess, get_lua: Path, opts: Options, pinning: Pinning, out: Path
) -> None:
    """py-spy (whole stacks, 100 Hz, 15 s) of ``guard`` under closed-loop GET load."""
    from bench.wrk import run_wrk

    out.mkdir(parents=True, exist_ok=True)
    raw = out / "fleet-api.pyspy.txt"
    assert guard.proc is not None
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--format",
            "raw",
            "--rate",
            "100",
            "--duration",
            "15",
            "--pid",
            str(guard.proc.pid),
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1)
    run_wrk(
        guard.base_url,
        script=get_lua,
        connections=opts.connections,
        threads=1,
        duration_s=14,
        cpu_prefix=pinning.load(),
    )
    spy.wait(60)
    say(f"py-spy profile of this tree's api replica: {raw}")


if __name__ == "__main__":
    sys.exit(main())
