"""The fleet-mode part of the benchmark (``python -m bench.run --only fleet``).

On this machine, loopback only: a private ``redis-server`` (AOF, ``appendfsync always``, temp
dir, free port), the simulator with N realistic accounts, a guard with ``--role refresher``
polling them all and publishing through Redis, and a guard with ``--role api`` answering from
memory. Pinning as in the rest of the harness: the servers under test (the api replicas and
the baseline) on the server core; wrk, the simulator, Redis and the refreshers (they stand in
for other hosts) on the load core.

Measured:

The refresher and two api replicas (A and B) start together and run throughout.

1. ``opts.rounds`` interleaved rounds of the bare baseline and api replica A's
   ``GET /can-trade`` (same requests, same worker count: one);
2. latency at the harness's paced loads, the baseline then replica A;
3. kill-switch propagation: engage an account's switch on replica A, poll replica B's
   ``GET /can-trade`` for that account until it denies; then release on A and poll B until it
   allows; ``FLEET_PROPAGATION_SAMPLES`` times;
4. one measurement of a third api replica with the benchmark's ``order_rate`` limit on every
   account (an exact fleet-wide limit: one Redis round trip per order; NOT the compared
   setting);
5. failover: a second refresher joins; once the two hold every lease between them, SIGKILL the
   one holding more; the time until the survivor holds every lease, and the longest stretch
   during which replica A's ``/readyz`` said some account was not fresh;
6. two api workers on two cores against a two-worker baseline (``bench/fleet_workers.py``).

The account policy of the compared rounds drops the benchmark's ``order_rate`` (the fleet makes
only rate-limited accounts pay a Redis round trip per order); the embedded rounds of
``--only guards`` keep it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from statistics import median, quantiles
from typing import Any

import httpx

from app.config import FleetSettings
from bench import scenario
from bench.fleet_workers import WorkersReport, measure_two_workers, render_two_workers
from bench.procs import BaselineProcess, GuardProcess, Pinning, free_port
from bench.run import (
    BASELINE_LABEL,
    PACED_LOADS,
    TARGET_P99_RATIO,
    TARGET_THROUGHPUT_RATIO,
    LoadRow,
    Options,
    PacedRow,
    _measure,
    _measure_paced,
    _ratio,
    say,
    simulator,
)
from bench.wrk import paced_script
from tests.support.redis_server import RedisServer

#: Acceptance floor of the issue (the goal is ``TARGET_THROUGHPUT_RATIO``).
ACCEPTANCE_THROUGHPUT_RATIO = 0.55
#: Engage/release cycles of the propagation measurement (``--quick``: 3).
FLEET_PROPAGATION_SAMPLES = 30
#: The propagation bound the issue sets, and its aim.
PROPAGATION_BOUND_MS = 1000.0
PROPAGATION_AIM_MS = 100.0
#: How long a measurement may wait for a replica to change its answer or a lease to move.
WAIT_S = 30.0
NAMESPACE = "bench"
#: How long the failover part keeps watching the api replica after the takeover.
FAILOVER_WATCH_AFTER_S = 3.0
#: The compared setting: the benchmark policy without the order-rate limit.
NO_ORDER_RATE: dict[str, Any] = {"order_rate": None}


@dataclass
class FleetReport:
    #: (baseline, api GET) per interleaved round.
    rounds: list[tuple[LoadRow, LoadRow]] = field(default_factory=list)
    #: The api replica with the order-rate limit on every account (one round).
    rate_limited: LoadRow | None = None
    paced: list[PacedRow] = field(default_factory=list)
    engage_ms: list[float] = field(default_factory=list)
    release_ms: list[float] = field(default_factory=list)
    failover: dict[str, Any] = field(default_factory=dict)
    #: ``bench.fleet_workers``: the api role with ``--workers 2`` vs a 2-worker baseline.
    workers: WorkersReport = field(default_factory=WorkersReport)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fleet(redis_url: str, role: str) -> dict[str, Any]:
    return {"fleet": {"redis_url": redis_url, "namespace": NAMESPACE, "role": role}}


def _config(
    opts: Options, sim_url: str, tmp: Path, redis_url: str, role: str, *, order_rate: bool
) -> dict[str, Any]:
    port = free_port()
    config = scenario.guard_config(
        opts.accounts,
        port=port,
        sim_url=sim_url,
        data_dir=tmp / f"data-fleet-{role}-{port}",
        policy=None if order_rate else NO_ORDER_RATE,
    )
    config.update(_fleet(redis_url, role))
    return config


def _metric(guard: GuardProcess, name: str) -> float:
    text = httpx.get(
        f"{guard.base_url}/metrics",
        headers={"Authorization": f"Bearer {scenario.READ_TOKEN}"},
        timeout=5,
    ).text
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
            return float(line.rsplit(" ", 1)[1])
    return float("nan")


def _wait(what: str, check: Callable[[], bool], timeout_s: float = WAIT_S) -> float:
    """Poll ``check`` until true; the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"fleet: {what} not seen within {timeout_s:.0f} s")
        time.sleep(0.001 if timeout_s <= WAIT_S else 0.2)
    return time.monotonic() - started


class PinnedRedis(RedisServer):
    """The tests' private Redis (AOF ``appendfsync always``), under a ``taskset`` prefix."""

    def __init__(self, workdir: Path, prefix: list[str]) -> None:
        super().__init__(workdir)
        self._prefix = prefix

    def command(self) -> list[str]:
        return [*self._prefix, *super().command()]


class _Fleet:
    """Redis, refreshers and api replicas of one fleet; ``close`` stops them all."""

    def __init__(self, opts: Options, pinning: Pinning, tmp: Path, sim_url: str) -> None:
        self.opts, self.pinning, self.tmp, self.sim_url = opts, pinning, tmp, sim_url
        # Redis stands in for another host: the load core, like the simulator.
        self.redis = PinnedRedis(tmp / "fleet-redis", pinning.load())
        self.guards: list[GuardProcess] = []

    def start_redis(self) -> None:
        self.redis.start()

    def start(self, role: str, *, order_rate: bool = False) -> GuardProcess:
        (guard,) = self.start_many((role,), order_rate=order_rate)
        return guard

    def start_many(self, roles: tuple[str, ...], *, order_rate: bool = False) -> list[GuardProcess]:
        """Start guards of these roles at once; wait until each answers ``/healthz``
        (refreshers) or ``/readyz`` (api replicas: every account fresh from the feed)."""
        started = []
        for role in roles:
            config = _config(
                self.opts, self.sim_url, self.tmp, self.redis.url, role, order_rate=order_rate
            )
            prefix = self.pinning.load() if role == "refresher" else self.pinning.server()
            say(f"fleet: starting a {role} guard ({self.opts.accounts} accounts)")
            guard = GuardProcess(config, self.tmp, command=[*prefix, sys.executable, "-m", "app"])
            guard.start(wait=False)
            self.guards.append(guard)
            started.append((role, guard))
        for role, guard in started:
            probe = "/healthz" if role == "refresher" else "/readyz"
            _wait(f"{probe} of the {role} guard", partial(_answers_200, guard, probe), 90)
        return [guard for _role, guard in started]

    def stop(self, guard: GuardProcess) -> None:
        guard.stop()
        self.guards.remove(guard)

    def close(self) -> None:
        for guard in self.guards:
            guard.stop()
        self.guards.clear()
        self.redis.stop()


def _answers_200(guard: GuardProcess, probe: str) -> bool:
    if guard.proc is not None and guard.proc.poll() is not None:
        raise RuntimeError(f"guard exited with {guard.proc.returncode}:\n{guard.logs()[-3000:]}")
    try:
        return httpx.get(f"{guard.base_url}{probe}", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _allowed(guard: GuardProcess, accounts: int) -> bool:
    try:
        _check_allowed(guard, accounts)
    except RuntimeError:
        return False
    return True


def _check_allowed(guard: GuardProcess, accounts: int) -> None:
    path = next(scenario.order_paths(accounts))
    answer = httpx.get(
        guard.base_url + path,
        headers={"Authorization": f"Bearer {scenario.BOT_TOKEN}"},
        timeout=10,
    )
    if answer.status_code != 200 or answer.json().get("allowed") is not True:
        raise RuntimeError(f"fleet api GET {path}: {answer.status_code} {answer.text[:300]}")


def _rounds(
    api: GuardProcess,
    baseline: BaselineProcess,
    opts: Options,
    pinning: Pinning,
    get_lua: Path,
    out: FleetReport,
) -> None:
    assert baseline.proc is not None
    for index in range(1, opts.rounds + 1):
        base = _measure(
            "fleet-baseline",
            BASELINE_LABEL,
            baseline.base_url,
            get_lua,
            opts,
            pinning,
            baseline.proc.pid,
            round_index=index,
        )
        _check_allowed(api, opts.accounts)
        assert api.proc is not None
        row = _measure(
            "fleet-api-get",
            "fleet api GET /can-trade [refresher in another process]",
            api.base_url,
            get_lua,
            opts,
            pinning,
            api.proc.pid,
            round_index=index,
        )
        out.rounds.append((base, row))
        say(
            f"fleet round {index}: throughput ratio {_ratio(row.rps, base.rps):.3f}, "
            f"p99 ratio {_ratio(row.p99_ms, base.p99_ms):.2f}"
        )


def _rate_limited(
    fleet: _Fleet, opts: Options, pinning: Pinning, get_lua: Path, out: FleetReport
) -> None:
    api = fleet.start("api", order_rate=True)
    try:
        # The first order also connects and loads the script: on a busy machine it may miss
        # the order-rate bound (and be denied, as designed). Then every one must pass.
        _wait("an allowed rate-limited order", partial(_allowed, api, opts.accounts), 10)
        assert api.proc is not None
        out.rate_limited = _measure(
            "fleet-api-get-order-rate",
            "fleet api GET /can-trade [order_rate on every account: Redis per order]",
            api.base_url,
            get_lua,
            opts,
            pinning,
            api.proc.pid,
        )
    finally:
        fleet.stop(api)


def _paced(
    api: GuardProcess,
    baseline: BaselineProcess,
    get_text: str,
    opts: Options,
    pinning: Pinning,
    tmp: Path,
    out: FleetReport,
) -> None:
    loads = PACED_LOADS[:2] if opts.quick else PACED_LOADS
    scripts = {}
    for connections, delay_ms in loads:
        path = tmp / f"fleet-paced-{connections}x{delay_ms}ms.lua"
        path.write_text(paced_script(get_text, delay_ms), encoding="utf-8")
        scripts[connections, delay_ms] = path
    assert baseline.proc is not None
    for load, path in scripts.items():
        out.paced.append(
            _measure_paced(
                "baseline", baseline.base_url, path, load, opts, pinning, baseline.proc.pid
            )
        )
    assert api.proc is not None
    for load, path in scripts.items():
        out.paced.append(
            _measure_paced("fleet api", api.base_url, path, load, opts, pinning, api.proc.pid)
        )


def _propagation(a: GuardProcess, b: GuardProcess, opts: Options, out: FleetReport) -> None:
    account = scenario.account_name(0)
    path = next(scenario.order_paths(opts.accounts))
    admin = httpx.Client(
        base_url=a.base_url,
        headers={"Authorization": f"Bearer {scenario.ADMIN_TOKEN}"},
        timeout=10,
    )
    bot = httpx.Client(
        base_url=b.base_url,
        headers={"Authorization": f"Bearer {scenario.BOT_TOKEN}"},
        timeout=10,
    )

    def allowed_on_b() -> bool:
        answer = bot.get(path)
        if answer.status_code != 200:
            raise RuntimeError(f"replica B: {answer.status_code} {answer.text[:300]}")
        return bool(answer.json()["allowed"])

    samples = 3 if opts.quick else FLEET_PROPAGATION_SAMPLES
    try:
        _wait("replica B allowing the order", allowed_on_b)
        for _ in range(samples):
            started = time.monotonic()
            engaged = admin.post(
                "/admin/kill-switches",
                json={
                    "actor": "bench",
                    "reason": "propagation",
                    "mode": "HALT",
                    "scope": "account",
                    "account": account,
                },
            )
            if engaged.status_code != 201:
                raise RuntimeError(f"engage on A: {engaged.status_code} {engaged.text[:300]}")
            _wait("the switch denying on replica B", lambda: not allowed_on_b())
            out.engage_ms.append(1000 * (time.monotonic() - started))
            started = time.monotonic()
            released = admin.delete(
                f"/admin/kill-switches/{engaged.json()['id']}",
                params={"actor": "bench", "reason": "propagation"},
            )
            if released.status_code != 200:
                raise RuntimeError(f"release on A: {released.status_code} {released.text[:300]}")
            _wait("the release allowing on replica B", allowed_on_b)
            out.release_ms.append(1000 * (time.monotonic() - started))
            time.sleep(0.05)
    finally:
        admin.close()
        bot.close()


def _failover(
    fleet: _Fleet, refresher: GuardProcess, api: GuardProcess, opts: Options, out: FleetReport
) -> None:
    """A second refresher joins; SIGKILL whichever holds more leases; time the takeover."""
    leases = "pretrade_guard_fleet_leases_held"
    second = fleet.start("refresher")
    both = (refresher, second)
    spread_s = _wait(
        "the two refreshers sharing every lease",
        lambda: (
            min(_metric(r, leases) for r in both) > 0
            and sum(_metric(r, leases) for r in both) == opts.accounts
        ),
        timeout_s=60,
    )
    held = {r.port: _metric(r, leases) for r in both}
    victim = max(both, key=lambda r: held[r.port])
    survivor = second if victim is refresher else refresher
    assert victim.proc is not None
    say(f"fleet failover: leases {sorted(held.values())}; SIGKILL the refresher holding more")
    killed_at = time.monotonic()
    victim.proc.kill()
    victim.proc.wait()
    fleet.guards.remove(victim)
    victim.proc = None
    not_ready_since: float | None = None
    longest_not_ready = 0.0
    took: float | None = None
    # Watch /readyz of the api replica until the survivor holds every lease, then
    # FAILOVER_WATCH_AFTER_S more (the data it publishes must reach the replica).
    deadline = killed_at + 60
    watch_until = deadline
    while time.monotonic() < watch_until:
        now = time.monotonic()
        ready = httpx.get(f"{api.base_url}/readyz", timeout=5).status_code == 200
        if ready:
            not_ready_since = None
        else:
            not_ready_since = not_ready_since or now
            longest_not_ready = max(longest_not_ready, now - not_ready_since)
        if took is None and _metric(survivor, leases) == opts.accounts:
            took = now - killed_at
            watch_until = min(deadline, now + FAILOVER_WATCH_AFTER_S)
        time.sleep(0.05)
    if took is None:
        raise RuntimeError("fleet failover: the survivor never held every lease")
    out.failover = {
        "accounts": opts.accounts,
        "leases_before": sorted(held.values()),
        "spread_s": spread_s,
        "takeover_s": took,
        "longest_not_ready_s": longest_not_ready,
        "lease_ttl_s": FleetSettings().lease_ttl_s,
    }


def run_fleet(
    opts: Options,
    pinning: Pinning,
    tmp: Path,
    start_baseline: Callable[[], BaselineProcess],
    get_lua: Path,
    get_text: str,
    step: Callable[[str, Callable[[], object]], None],
) -> FleetReport:
    """Every fleet measurement; each sub-part through ``step`` (a failure is reported, the
    others still run)."""
    out = FleetReport()
    with simulator(opts.accounts, pinning, tmp, "sim-fleet") as sim:
        fleet = _Fleet(opts, pinning, tmp, sim.base_url)
        baseline = start_baseline()
        try:
            fleet.start_redis()
            # Api replica B (idle but for the state feed) runs during the rounds too: both
            # sides of every ratio see it alike.
            refresher, api, api_b = fleet.start_many(("refresher", "api", "api"))
            step("fleet[rounds]", lambda: _rounds(api, baseline, opts, pinning, get_lua, out))
            step(
                "fleet[latency]",
                lambda: _paced(api, baseline, get_text, opts, pinning, tmp, out),
            )
            step("fleet[propagation]", lambda: _propagation(api, api_b, opts, out))
            step("fleet[order-rate]", lambda: _rate_limited(fleet, opts, pinning, get_lua, out))
            step("fleet[failover]", lambda: _failover(fleet, refresher, api, opts, out))
            step(
                "fleet[2 workers]",
                lambda: measure_two_workers(
                    opts,
                    pinning,
                    tmp,
                    _config(opts, sim.base_url, tmp, fleet.redis.url, "api", order_rate=False),
                    len(baseline.body()),
                    get_lua,
                    out.workers,
                ),
            )
        finally:
            baseline.stop()
            fleet.close()
    return out


def _pcts(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 (inclusive method; with few samples p99 is about the max) and max."""
    if len(values) < 2:
        only = values[0] if values else float("nan")
        return only, only, only
    cuts = quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98], max(values)


def render_fleet(out: FleetReport) -> list[str]:
    lines = [
        "",
        "== Fleet mode (Redis + a refresher process polling + an api process answering; "
        "one worker each, as the baseline) ==",
        f"  {'server':<72} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu%':>5} "
        f"{'other%':>6} {'errors':>6}",
    ]
    rows = [row for pair in out.rounds for row in pair]
    if out.rate_limited is not None:
        rows.append(out.rate_limited)
    for row in rows:
        where = f"r{row.round} " if row.round else "   "
        lines.append(
            f"  {where}{row.label:<69} {row.rps:>9.0f} {row.p50_ms:>8.2f} {row.p99_ms:>8.2f} "
            f"{row.server_cpu_pct:>5.0f} {row.server_core_other_pct:>6.0f} "
            f"{row.non_2xx + row.socket_errors:>6}"
        )
    if out.rounds:
        ratios = [_ratio(api.rps, base.rps) for base, api in out.rounds]
        p99s = [_ratio(api.p99_ms, base.p99_ms) for base, api in out.rounds]
        got = median(ratios)
        verdict = (
            "meets the goal"
            if got >= TARGET_THROUGHPUT_RATIO
            else "meets acceptance, misses the goal"
            if got >= ACCEPTANCE_THROUGHPUT_RATIO
            else "MISSES acceptance"
        )
        lines.append(
            f"  fleet GET throughput api/baseline: {got:.3f} (median of {len(ratios)}; "
            f"min-max {min(ratios):.3f}-{max(ratios):.3f}; goal >= {TARGET_THROUGHPUT_RATIO}, "
            f"acceptance >= {ACCEPTANCE_THROUGHPUT_RATIO}: {verdict})"
        )
        lines.append(
            f"  fleet GET p99 api/baseline: {median(p99s):.2f} (goal <= {TARGET_P99_RATIO})"
        )
        if out.rate_limited is not None:
            base_rps = median(base.rps for base, _api in out.rounds)
            lines.append(
                "  with order_rate on every account (one Redis round trip per order): "
                f"{_ratio(out.rate_limited.rps, base_rps):.3f} of the baseline's median"
            )
    if out.paced:
        lines.append("  paced loads (GET /can-trade), p50 / p90 / p99 ms:")
        loads = list(dict.fromkeys((r.connections, r.delay_ms) for r in out.paced))
        for connections, delay_ms in loads:
            found = {
                r.server: r
                for r in out.paced
                if (r.connections, r.delay_ms) == (connections, delay_ms)
            }
            base, api = found.get("baseline"), found.get("fleet api")
            for paced in (base, api):
                if paced is not None:
                    lines.append(
                        f"    {connections} connections, {delay_ms} ms apart  "
                        f"{paced.server:<10} {paced.rps:>6.0f} req/s  {paced.p50_ms:.3f} / "
                        f"{paced.p90_ms:.3f} / {paced.p99_ms:.3f}  errors {paced.errors}"
                    )
            if base is not None and api is not None:
                lines.append(
                    f"    {'':<30} fleet api adds p50 {1000 * (api.p50_ms - base.p50_ms):+.0f} us, "
                    f"p99 {1000 * (api.p99_ms - base.p99_ms):+.0f} us (goal at ~1k req/s: "
                    "<= +300 us at p99)"
                )
    for name, values in (("engage", out.engage_ms), ("release", out.release_ms)):
        if values:
            p50, p99, top = _pcts(values)
            lines.append(
                f"  switch {name} on replica A -> replica B answers accordingly: p50 {p50:.1f} ms, "
                f"p99 {p99:.1f} ms, max {top:.1f} ms over {len(values)} samples (bound "
                f"{PROPAGATION_BOUND_MS:.0f} ms, aim {PROPAGATION_AIM_MS:.0f} ms)"
            )
    if out.failover:
        fo = out.failover
        lines.append(
            f"  failover: two refreshers held {fo['leases_before']} of {fo['accounts']} leases; "
            f"SIGKILL the larger: the survivor held all after {fo['takeover_s']:.2f} s (lease "
            f"TTL {fo['lease_ttl_s']:.0f} s); the api replica's /readyz was not ready for at "
            f"most {fo['longest_not_ready_s']:.2f} s at a stretch"
        )
    lines.extend(render_two_workers(out.workers))
    return lines
