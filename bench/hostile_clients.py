"""Hostile clients against the real guard on loopback (issue 12): what they cost the guard
and the decisions of everyone else. One JSON line per part.

    python -m bench.hostile_clients                      # every part, the issue's sizes
    python -m bench.hostile_clients --part bodies --bodies 8 --body-mib 100
    python -m bench.hostile_clients --part slowloris --slowloris 500
    python -m bench.hostile_clients --part sse --subscribers 1000 --calls 600

* ``bodies``: N parallel unauthenticated ``POST /can-trade`` declaring (and sending as far
  as the guard lets them) a body of M MiB; reports the guard's peak RSS (``VmHWM``) and the
  decision latency of a well-behaved client meanwhile.
* ``slowloris``: N connections that send a request line and then one header byte a second;
  reports how many the guard cut and when, and the decision latency meanwhile.
* ``sse``: N ``/events`` subscribers that never read (small receive buffers), then C kill
  switch engage/release calls in a row; reports their total time and the decision latency.

Bounded (every part has a deadline) and loopback only. The well-behaved client is one
keep-alive connection asking ``GET /can-trade`` in a loop (a full order, fast path).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.procs import rss_kib
from tests.support.guard import ADMIN_TOKEN, BOT_TOKEN, READ_TOKEN, GuardProcess, guard_config
from tests.support.processes import SimulatorProcess, free_port
from tests.support.sim_scenarios import BASIC_SCENARIO, HEALTHY

ORDER = {
    "account": "alpha",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "quantity": "0.01",
    "price": "60000",
}


class Probe:
    """A well-behaved bot: sequential decisions on one connection, latencies recorded."""

    def __init__(self, guard: GuardProcess) -> None:
        self._guard = guard
        self._stop = threading.Event()
        self.latencies_ms: list[float] = []
        self.errors = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(
            base_url=self._guard.base_url,
            headers={"Authorization": f"Bearer {BOT_TOKEN}"},
            timeout=30,
        ) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get("/can-trade", params=ORDER).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.latencies_ms.append((time.perf_counter() - started) * 1000)
                else:
                    self.errors += 1
                time.sleep(0.002)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=35)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        if not lat:
            return {"decisions": 0, "errors": self.errors}
        return {
            "decisions": len(lat),
            "errors": self.errors,
            "p50_ms": round(statistics.median(lat), 2),
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
            "max_ms": round(lat[-1], 2),
        }


@contextmanager
def running_guard(events: dict[str, Any] | None = None) -> Iterator[GuardProcess]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp,
        SimulatorProcess(BASIC_SCENARIO) as sim,
    ):
        account = {
            "exchange": "generic-v2",
            "base_url": sim.base_url,
            "api_key": HEALTHY.api_key,
            "api_secret": HEALTHY.api_secret,
        }
        extra: dict[str, Any] = {"events": events} if events else {}
        config = guard_config({"alpha": account}, port=free_port(), extra=extra)
        guard = GuardProcess(config, Path(tmp)).start()
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if httpx.get(f"{guard.base_url}/readyz", timeout=2).status_code == 200:
                    break
                time.sleep(0.1)
            yield guard
        finally:
            guard.stop()


def _memory(guard: GuardProcess) -> dict[str, int]:
    assert guard.proc is not None
    return rss_kib(guard.proc.pid)


def bodies(count: int, mib: int) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    with running_guard() as guard:
        before = _memory(guard)["VmRSS"]
        with Probe(guard) as probe:
            time.sleep(0.5)

            def attack() -> None:
                sent = 0
                status = None
                head = (
                    f"POST /can-trade HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json"
                    f"\r\nContent-Length: {mib << 20}\r\n\r\n"
                ).encode()
                chunk = b"x" * (1 << 20)
                with socket.create_connection(("127.0.0.1", guard.port), timeout=30) as sock:
                    try:
                        sock.sendall(head)
                        for _ in range(mib):
                            sock.sendall(chunk)
                            sent += len(chunk)
                    except OSError:
                        pass
                    try:
                        sock.settimeout(5)
                        answer = sock.recv(4096)
                        status = int(answer.split(b" ", 2)[1]) if answer else None
                    except (OSError, IndexError, ValueError):
                        pass
                results.append({"sent_mib": round(sent / (1 << 20), 1), "status": status})

            threads = [threading.Thread(target=attack) for _ in range(count)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            attack_s = time.perf_counter() - started
            time.sleep(0.5)
        memory = _memory(guard)
    return {
        "part": "bodies",
        "bodies": count,
        "body_mib": mib,
        "rss_before_mib": round(before / 1024, 1),
        "rss_peak_mib": round(memory["VmHWM"] / 1024, 1),
        "attack_s": round(attack_s, 2),
        "statuses": sorted({str(r["status"]) for r in results}),
        "max_sent_mib": max((r["sent_mib"] for r in results), default=0),
        "decisions": probe.summary(),
    }


def slowloris(count: int, max_s: float) -> dict[str, Any]:
    with running_guard() as guard:
        socks = []
        cut_after: list[float] = []
        with Probe(guard) as probe:
            time.sleep(0.5)
            started = time.monotonic()
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", guard.port), timeout=5)
                sock.sendall(b"GET /can-trade?account=alpha HTTP/1.1\r\nHost: guard\r\n")
                sock.setblocking(False)
                socks.append(sock)
            alive = set(range(count))
            while alive and time.monotonic() - started < max_s:
                for i in list(alive):
                    sock = socks[i]
                    try:
                        data = sock.recv(4096)
                        if data == b"" or data.startswith(b"HTTP/1.1 408"):
                            alive.discard(i)
                            cut_after.append(time.monotonic() - started)
                            continue
                    except BlockingIOError:
                        pass
                    except OSError:
                        alive.discard(i)
                        cut_after.append(time.monotonic() - started)
                        continue
                    try:
                        sock.send(b"X")
                    except BlockingIOError:
                        pass
                    except OSError:
                        alive.discard(i)
                        cut_after.append(time.monotonic() - started)
                time.sleep(1.0)
            for sock in socks:
                sock.close()
        memory = _memory(guard)
    return {
        "part": "slowloris",
        "connections": count,
        "cut": len(cut_after),
        "held_at_end": count - len(cut_after),
        "cut_after_s_max": round(max(cut_after), 1) if cut_after else None,
        "rss_peak_mib": round(memory["VmHWM"] / 1024, 1),
        "decisions": probe.summary(),
    }


def sse(subscribers: int, calls: int, flush_s: float | None = None) -> dict[str, Any]:
    events: dict[str, Any] = {"sse_max_subscribers": max(1000, subscribers)}
    if flush_s is not None:
        events["sse_flush_interval_s"] = flush_s
    with running_guard(events) as guard:
        head = (
            f"GET /events HTTP/1.1\r\nHost: guard\r\nAuthorization: Bearer {READ_TOKEN}\r\n\r\n"
        ).encode()
        socks = []
        for _ in range(subscribers):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", guard.port))
            sock.sendall(head)
            socks.append(sock)
        deadline = time.monotonic() + 30
        connected = 0.0
        while time.monotonic() < deadline:
            connected = guard.metric("pretrade_guard_sse_subscribers") or 0
            if connected >= subscribers:
                break
            time.sleep(0.2)
        switch = {"scope": "account", "account": "alpha", "mode": "HALT", "actor": "bench"}
        statuses: dict[int, int] = {}
        with Probe(guard) as probe, guard.client(ADMIN_TOKEN) as ops:
            time.sleep(0.5)
            started = time.perf_counter()
            for i in range(calls // 2):
                engaged = ops.post("/admin/kill-switches", json={**switch, "reason": f"b{i}"})
                statuses[engaged.status_code] = statuses.get(engaged.status_code, 0) + 1
                if engaged.status_code == 201:
                    released = ops.delete(
                        f"/admin/kill-switches/{engaged.json()['id']}",
                        params={"actor": "bench", "reason": "done"},
                    )
                    statuses[released.status_code] = statuses.get(released.status_code, 0) + 1
            calls_s = time.perf_counter() - started
        dropped = {
            reason: guard.metric("pretrade_guard_sse_dropped_total", {"reason": reason})
            for reason in ("overflow", "send_timeout")
        }
        still = guard.metric("pretrade_guard_sse_subscribers")
        for sock in socks:
            sock.close()
        memory = _memory(guard)
    return {
        "part": "sse",
        "subscribers": subscribers,
        "connected": connected,
        "calls": calls,
        "flush_s": flush_s,
        "calls_s": round(calls_s, 2),
        "call_statuses": statuses,
        "subscribers_at_end": still,
        "dropped": dropped,
        "rss_peak_mib": round(memory["VmHWM"] / 1024, 1),
        "decisions": probe.summary(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("bodies", "slowloris", "sse", "all"), default="all")
    parser.add_argument("--bodies", type=int, default=8)
    parser.add_argument("--body-mib", type=int, default=100)
    parser.add_argument("--slowloris", type=int, default=500)
    parser.add_argument("--slowloris-s", type=float, default=30.0)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--flush-s", type=float, default=None, help="events.sse_flush_interval_s")
    args = parser.parse_args(argv)
    parts = ("bodies", "slowloris", "sse") if args.part == "all" else (args.part,)
    for part in parts:
        if part == "bodies":
            result = bodies(args.bodies, args.body_mib)
        elif part == "slowloris":
            result = slowloris(args.slowloris, args.slowloris_s)
        else:
            result = sse(args.subscribers, args.calls, args.flush_s)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
