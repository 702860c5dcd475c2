"""Soak: the guard under steady load while its exchange misbehaves, for as long as you like.

    python -m bench.soak [--duration 180] [--rate 300] [--accounts 20] [--interval 10]

Starts the simulator (``--accounts`` realistic generic-v2 accounts) and the guard (production
settings, JSON decision log on, poll intervals shortened so faults show up within seconds),
then for ``--duration`` seconds, all at once:

* load: ``--rate`` requests/s of ``GET /can-trade`` over every account. With wrk on PATH (the
  default) wrk runs once per reporting interval, each of its ``--connections`` pausing between
  requests so the total comes to the rate; without it (or with ``--load httpx``) an async
  httpx loop sends requests on schedule (open loop, at most ``--connections`` in flight; a
  request due while all are busy is counted as skipped);
* a probe: 20 requests/s (GET and POST) whose bodies are read: an ``allowed: true`` resting on
  data older than the policy's max ages is counted as unsafe;
* chaos every ``--chaos-every`` seconds, cycling through: a trading status flapped to
  RESTRICTED and back, a 503 burst, malformed JSON, dropped connections, latency beyond the
  guard's timeout, a 429 with Retry-After, an unknown trading status, a 30 s clock skew (each
  fault on one account's key, for ``--fault-s`` seconds);
* the guard's resident memory (VmRSS) sampled once per interval.

It prints one row per interval (answered, errors, p50/p99/max latency, RSS), the totals and
the RSS growth, then stops the guard with SIGTERM. Exit code 1 when any request failed (a
non-200 or a transport error), any allow was unsafe, or the guard did not exit 0 in time.
Not part of the test suite: run it on demand.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import scenario
from bench.procs import GuardProcess, SimulatorProcess, free_port, rss_kib, start_guard
from bench.wrk import WrkResult, get_script, run_wrk

#: Poll fast and go stale fast, so a fault of a few seconds turns decisions to STALE_DATA and
#: back within the soak (production defaults would hide faults shorter than 10 s).
POLL: dict[str, Any] = {
    "status_interval_s": 0.5,
    "snapshot_interval_s": 1.0,
    "timeout_s": 1.0,
    "backoff_base_s": 0.2,
    "backoff_max_s": 2.0,
    "auth_backoff_s": 10.0,
}
MAX_STATUS_AGE_S = 3.0
MAX_SNAPSHOT_AGE_S = 4.0
PROBE_RATE = 20.0
#: Method, URL and JSON body of one request of the httpx load.
_Request = tuple[str, str, dict[str, str] | None]


@dataclass
class Window:
    """What happened in one reporting interval."""

    started_s: float
    answered: int = 0
    errors: int = 0
    skipped: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    probed: int = 0
    denied: int = 0
    unsafe: int = 0
    rss_kib: int | None = None
    latencies_ms: list[float] = field(default_factory=list)  # the httpx load's, until summed

    def summarize(self) -> None:
        """Percentiles of the httpx load's latencies (wrk reports its own)."""
        lat = sorted(self.latencies_ms)
        if lat:
            self.answered = len(lat)
            self.p50_ms = statistics.median(lat)
            self.p99_ms = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            self.max_ms = lat[-1]

    def row(self) -> str:
        rss = f"{self.rss_kib / 1024:8.1f}" if self.rss_kib else "       -"
        return (
            f"{self.started_s:7.0f} {self.answered:9d} {self.errors:7d} {self.skipped:8d} "
            f"{self.p50_ms:7.2f} {self.p99_ms:7.2f} {self.max_ms:8.2f} "
            f"{self.probed:7d} {self.denied:7d} {self.unsafe:7d} {rss}"
        )


HEADER = (
    "  t (s)  answered  errors  skipped  p50 ms  p99 ms   max ms  probed  denied  unsafe  RSS MiB"
)
_WRK_MAX = re.compile(r"^\s+Latency\s+\S+\s+\S+\s+([0-9.]+)(us|ms|s)\b", re.MULTILINE)


def _max_ms(result: WrkResult) -> float:
    found = _WRK_MAX.search(result.output)
    if found is None:
        return 0.0
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]


@dataclass
class Soak:
    guard: GuardProcess
    sim: SimulatorProcess
    accounts: int
    rate: float
    duration_s: float
    interval_s: float
    connections: int
    chaos_every_s: float
    fault_s: float
    workdir: Path
    windows: list[Window] = field(default_factory=list)
    chaos_log: list[str] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    started: float = 0.0

    def window(self) -> Window:
        index = int((time.monotonic() - self.started) // self.interval_s)
        while len(self.windows) <= index:
            self.windows.append(Window(len(self.windows) * self.interval_s))
        return self.windows[index]

    def _error(self, what: str) -> None:
        self.window().errors += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(what)

    def _paths(self) -> list[str]:
        return list(scenario.order_paths(self.accounts))

    # ----------------------------------------------------------------- load: wrk

    async def load_wrk(self) -> None:
        """wrk once per interval; each connection waits so all of them add up to the rate."""
        delay_ms = self.connections * 1000 / self.rate
        script = self.workdir / "soak.lua"
        for index in range(int(self.duration_s // self.interval_s)):
            script.write_text(
                get_script(self._paths(), scenario.BOT_TOKEN)
                + f"function delay()\n  return {max(1, round(delay_ms))}\nend\n",
                encoding="utf-8",
            )
            result = await asyncio.to_thread(
                run_wrk,
                self.guard.base_url,
                script=script,
                duration_s=int(self.interval_s),
                connections=self.connections,
                threads=min(2, self.connections),
            )
            while len(self.windows) <= index:
                self.windows.append(Window(len(self.windows) * self.interval_s))
            window = self.windows[index]
            window.answered = result.requests
            window.errors += result.non_2xx + result.socket_errors
            window.p50_ms, window.p99_ms = result.p50_ms, result.p99_ms
            window.max_ms = _max_ms(result)
            if result.non_2xx or result.socket_errors:
                self.error_samples.append(result.output)
            # The answer time adds to each connection's pause: steer the pause to the rate.
            delay_ms *= min(2.0, max(0.5, result.rps / self.rate))

    # ----------------------------------------------------------------- load: httpx

    async def load_httpx(self, rate: float, *, probe: bool) -> None:
        """Requests on schedule (open loop). ``probe``: read each body and judge it."""
        headers = {"Authorization": f"Bearer {scenario.BOT_TOKEN}"}
        limits = httpx.Limits(
            max_connections=self.connections, max_keepalive_connections=self.connections
        )
        gets: list[_Request] = [("GET", path, None) for path in self._paths()]
        posts: list[_Request] = [
            ("POST", "/can-trade", {"account": scenario.account_name(i), **scenario.ORDER})
            for i in range(self.accounts)
        ]
        # 9 GETs, then 1 POST, round robin over the accounts; built once, not per request.
        requests = itertools.cycle(gets * 9 + posts)
        in_flight = 0
        tasks: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(
            base_url=self.guard.base_url, headers=headers, limits=limits, timeout=10
        ) as client:

            async def one(method: str, url: str, body: dict[str, str] | None) -> None:
                nonlocal in_flight
                in_flight += 1
                started = time.perf_counter()
                try:
                    response = await client.request(method, url, json=body)
                except httpx.HTTPError as exc:
                    self._error(f"{type(exc).__name__}: {exc}")
                    return
                finally:
                    in_flight -= 1
                window = self.window()
                if not probe:
                    window.latencies_ms.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    self._error(f"HTTP {response.status_code}: {response.text[:200]}")
                elif probe:
                    self._judge(response.json(), window)

            period = 1 / rate
            next_at = time.monotonic()
            end = self.started + self.duration_s
            while next_at < end:
                next_at += period
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if in_flight >= self.connections:
                    self.window().skipped += 1
                    continue
                task = asyncio.create_task(one(*next(requests)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)

    def _judge(self, body: dict[str, Any], window: Window) -> None:
        """Count denials; an ``allowed: true`` on data past the max ages is unsafe."""
        window.probed += 1
        if not body["allowed"]:
            window.denied += 1
            return
        status_age = body["status_age_ms"]
        snapshot_age = body["snapshot_age_ms"]
        if (
            status_age is None
            or snapshot_age is None
            or status_age > MAX_STATUS_AGE_S * 1000
            or snapshot_age > MAX_SNAPSHOT_AGE_S * 1000
        ):
            window.unsafe += 1

    # ----------------------------------------------------------------- chaos

    async def chaos(self) -> None:
        rng = random.Random(7)  # picks accounts, not secrets
        async with httpx.AsyncClient(base_url=f"{self.sim.base_url}/_sim", timeout=10) as sim:

            async def fault(kind: str, **params: Any) -> str:
                i = rng.randrange(self.accounts)
                body = {
                    "kind": kind,
                    "api_key": scenario.api_key(i),
                    "duration_s": self.fault_s,
                    "params": params,
                }
                (await sim.post("/faults", json=body)).raise_for_status()
                return f"{kind} {params or ''} on {scenario.account_name(i)}"

            async def flap() -> str:
                i = rng.randrange(self.accounts)
                path = f"/accounts/B-{i:05d}/status"
                (await sim.patch(path, json={"tradingStatus": "RESTRICTED"})).raise_for_status()
                await asyncio.sleep(self.fault_s)
                (await sim.patch(path, json={"tradingStatus": "NORMAL"})).raise_for_status()
                return f"status flapped RESTRICTED->NORMAL on {scenario.account_name(i)}"

            async def skew() -> str:
                (await sim.put("/clock", json={"offset_ms": 30_000})).raise_for_status()
                await asyncio.sleep(self.fault_s)
                (await sim.put("/clock", json={"offset_ms": 0})).raise_for_status()
                return "clock skewed +30 s for every account"

            actions: list[Callable[[], Awaitable[str]]] = [
                flap,
                lambda: fault("http_5xx", status=503),
                lambda: fault("malformed_json"),
                lambda: fault("drop_connection"),
                lambda: fault("latency", latency_ms=1500),
                lambda: fault("rate_limit_429", retry_after_s=2),
                lambda: fault("unknown_status"),
                skew,
            ]
            end = self.started + self.duration_s
            for action in itertools.cycle(actions):
                await asyncio.sleep(self.chaos_every_s)
                if time.monotonic() >= end - self.fault_s:
                    return
                what = await action()
                self.chaos_log.append(f"{time.monotonic() - self.started:6.1f} s  {what}")

    # ----------------------------------------------------------------- memory

    async def sample_rss(self) -> None:
        assert self.guard.proc is not None
        pid = self.guard.proc.pid
        end = self.started + self.duration_s
        while time.monotonic() < end - 0.1:
            await asyncio.sleep(self.interval_s - 0.05)
            self.window().rss_kib = rss_kib(pid).get("VmRSS")

    async def run(self, *, use_wrk: bool) -> None:
        self.started = time.monotonic()
        load = self.load_wrk() if use_wrk else self.load_httpx(self.rate, probe=False)
        await asyncio.gather(
            load,
            self.load_httpx(PROBE_RATE, probe=True),
            self.chaos(),
            self.sample_rss(),
        )
        del self.windows[int(self.duration_s // self.interval_s) :]  # stragglers after the end
        for window in self.windows:
            window.summarize()


def _metric_lines(guard: GuardProcess) -> list[str]:
    """Non-zero refresh failures and decisions, and any 5xx the API answered."""
    text = httpx.get(f"{guard.base_url}/metrics", timeout=10).text
    wanted = re.compile(
        r"^(pretrade_guard_refresh_failures_total|pretrade_guard_decisions_total)\{"
        r'|^pretrade_guard_http_requests_total\{.*status="5'
    )
    return [line for line in text.splitlines() if wanted.match(line) and not line.endswith(" 0.0")]


def _report(soak: Soak, args: argparse.Namespace, rss: tuple[int, dict[str, int]]) -> int:
    """Print the report; return the number of failed requests plus unsafe allows."""
    rss_start, rss_end = rss
    print("\n" + HEADER)
    for window in soak.windows:
        print(window.row())
    answered = sum(w.answered for w in soak.windows)
    errors = sum(w.errors for w in soak.windows)
    unsafe = sum(w.unsafe for w in soak.windows)
    p99s = [w.p99_ms for w in soak.windows if w.answered]
    print(
        f"\ntotal: {answered} answered ({answered / args.duration:.0f}/s), {errors} errors, "
        f"{sum(w.skipped for w in soak.windows)} skipped; probe: "
        f"{sum(w.probed for w in soak.windows)} bodies read, "
        f"{sum(w.denied for w in soak.windows)} denied, {unsafe} unsafe allows; "
        f"p99 per interval: median {statistics.median(p99s) if p99s else 0:.2f} ms, "
        f"worst {max(p99s, default=0):.2f} ms"
    )
    warm = next((w.rss_kib for w in soak.windows if w.rss_kib), rss_start)
    print(
        f"RSS: start {rss_start / 1024:.1f} MiB, after the first interval {warm / 1024:.1f} MiB, "
        f"end {rss_end['VmRSS'] / 1024:.1f} MiB "
        f"(growth {(rss_end['VmRSS'] - rss_start) / 1024:+.1f} MiB, "
        f"{(rss_end['VmRSS'] - warm) / 1024:+.1f} MiB after the first interval), "
        f"peak {rss_end['VmHWM'] / 1024:.1f} MiB"
    )
    print(f"\nchaos ({len(soak.chaos_log)} actions):")
    print("\n".join(f"  {line}" for line in soak.chaos_log))
    if soak.error_samples:
        print("\nfirst errors:\n" + "\n".join(f"  {e}" for e in soak.error_samples))
    return errors + unsafe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--duration", type=float, default=180, help="seconds of load")
    parser.add_argument("--rate", type=float, default=300, help="requests per second")
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--interval", type=int, default=10, help="seconds per report row")
    parser.add_argument("--connections", type=int, default=16, help="load connections")
    parser.add_argument("--load", choices=("wrk", "httpx"), default=None, help="default: wrk")
    parser.add_argument("--chaos-every", type=float, default=5.0, help="seconds between faults")
    parser.add_argument("--fault-s", type=float, default=4.0, help="how long each fault lasts")
    parser.add_argument("--keep", action="store_true", help="keep the logs (prints where)")
    args = parser.parse_args(argv)
    use_wrk = args.load == "wrk" or (args.load is None and shutil.which("wrk") is not None)

    tmp = Path(tempfile.mkdtemp(prefix="pretrade-soak-"))
    scenario_path = scenario.write_sim_scenario(tmp / "scenario.yaml", args.accounts)
    sim = SimulatorProcess(scenario_path, log_path=tmp / "simulator.log").start()
    guard: GuardProcess | None = None
    try:
        config = scenario.guard_config(
            args.accounts,
            port=free_port(),
            sim_url=sim.base_url,
            data_dir=tmp / "data",
            poll=POLL,
            policy={"max_status_age_s": MAX_STATUS_AGE_S, "max_snapshot_age_s": MAX_SNAPSHOT_AGE_S},
        )
        guard = start_guard(config, tmp, prefix=[])
        assert guard.proc is not None
        rss_start = rss_kib(guard.proc.pid)["VmRSS"]
        print(
            f"soak: {args.rate:g} req/s ({'wrk' if use_wrk else 'httpx'}) for {args.duration:g} s "
            f"over {args.accounts} accounts; guard pid {guard.proc.pid}, "
            f"RSS at start {rss_start / 1024:.1f} MiB"
        )
        soak = Soak(
            guard=guard,
            sim=sim,
            accounts=args.accounts,
            rate=args.rate,
            duration_s=args.duration,
            interval_s=args.interval,
            connections=args.connections,
            chaos_every_s=args.chaos_every,
            fault_s=args.fault_s,
            workdir=tmp,
        )
        asyncio.run(soak.run(use_wrk=use_wrk))
        rss_end = rss_kib(guard.proc.pid)
        metrics = _metric_lines(guard)
        guard.proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        code = guard.proc.wait(timeout=30)
        stop_s = time.monotonic() - stopped
    finally:
        if guard is not None:
            guard.stop()
        sim.close()

    failures = _report(soak, args, (rss_start, rss_end))
    print("\nguard metrics at the end (non-zero):")
    print("\n".join(f"  {line}" for line in metrics))
    print(f"\nguard stopped by SIGTERM in {stop_s:.2f} s, exit code {code}")
    if args.keep:
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp)
    ok = failures == 0 and code == 0
    print(json.dumps({"ok": ok, "failures": failures, "exit_code": code}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
