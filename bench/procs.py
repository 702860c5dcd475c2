"""Processes of a benchmark run: CPU pinning, the simulator, the guard, the baseline app.

Pinning (``taskset``, util-linux): servers under test on one core, the load generator (and
the simulator, which stands in for a remote exchange) on another, so wrk never competes with
the server it measures. With fewer than two usable cores, or without ``taskset``, nothing is
pinned and the report says so.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from tests.support.guard import GuardProcess
from tests.support.processes import REPO_ROOT, SimulatorProcess, free_port

__all__ = [
    "REPO_ROOT",
    "BaselineProcess",
    "GuardProcess",
    "PinnedSimulator",
    "Pinning",
    "SimulatorProcess",
    "core_ticks",
    "cpu_seconds",
    "free_port",
    "rss_kib",
    "start_guard",
    "wait_idle",
]


@dataclass(frozen=True, slots=True)
class Pinning:
    server_cpu: int | None
    load_cpu: int | None
    note: str

    @staticmethod
    def detect(enabled: bool = True) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled:
            return Pinning(None, None, "not pinned (--no-pin)")
        if shutil.which("taskset") is None:
            return Pinning(None, None, "not pinned: taskset not found (apt-get install util-linux)")
        if len(cpus) < 2:
            return Pinning(None, None, f"not pinned: only {len(cpus)} usable CPU")
        return Pinning(
            cpus[0],
            cpus[1],
            f"servers pinned to CPU {cpus[0]}; wrk, simulator and harness to CPU {cpus[1]} "
            f"(taskset; {len(cpus)} usable CPUs)",
        )

    def server(self) -> list[str]:
        """Command prefix that runs a server under test on its own core."""
        return [] if self.server_cpu is None else ["taskset", "-c", str(self.server_cpu)]

    def load(self) -> list[str]:
        """Command prefix for the load generator's core."""
        return [] if self.load_cpu is None else ["taskset", "-c", str(self.load_cpu)]

    def pin_self_to_load_cpu(self) -> None:
        """Keep the harness (mostly idle) off the server's core."""
        if self.load_cpu is not None:
            os.sched_setaffinity(0, {self.load_cpu})


class PinnedSimulator(SimulatorProcess):
    """The simulator, started under a ``taskset`` prefix."""

    def __init__(self, scenario: Path, *, prefix: Sequence[str], **kwargs: Any) -> None:
        self._prefix = list(prefix)
        super().__init__(scenario, **kwargs)

    def command(self) -> list[str]:
        return [*self._prefix, *super().command()]


def start_guard(
    config: dict[str, Any],
    workdir: Path,
    *,
    prefix: Sequence[str],
    ready_timeout_s: float = 60,
    wait_ready: bool = True,
) -> GuardProcess:
    """Start ``python -m app`` with ``config`` and wait until ``/readyz`` says every account is
    fresh (so the measurement sees real, allowed decisions), or only until ``/healthz``
    answers. With many accounts the first polls all start at once and the guard answers slowly
    for a while: each probe may take 5 s."""
    probe = "/readyz" if wait_ready else "/healthz"
    guard = GuardProcess(config, workdir, command=[*prefix, sys.executable, "-m", "app"])
    guard.start(wait=False)
    deadline = time.monotonic() + ready_timeout_s
    while True:
        if guard.proc is not None and guard.proc.poll() is not None:
            raise RuntimeError(
                f"guard exited with {guard.proc.returncode}:\n{guard.logs()[-3000:]}"
            )
        try:
            if httpx.get(f"{guard.base_url}{probe}", timeout=5).status_code == 200:
                return guard
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            logs = guard.logs()[-3000:]
            guard.stop()
            raise RuntimeError(f"no 200 from {probe} after {ready_timeout_s} s; log:\n{logs}")
        time.sleep(0.2)


class BaselineProcess:
    """``python -m bench.baseline_app`` on a free port."""

    def __init__(
        self,
        body_bytes: int,
        *,
        prefix: Sequence[str],
        log_path: Path,
        busy_us: float = 0,
        workers: int = 1,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._command = [
            *prefix,
            sys.executable,
            "-m",
            "bench.baseline_app",
            "--port",
            str(self.port),
            "--body-bytes",
            str(body_bytes),
            "--busy-us",
            str(busy_us),
            "--workers",
            str(workers),
        ]
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20) -> BaselineProcess:
        self._log = self._log_path.open("ab")
        self.proc = subprocess.Popen(
            self._command, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"baseline app exited with {self.proc.returncode}")
            try:
                httpx.get(self.base_url, timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("baseline app did not start")

    def body(self) -> bytes:
        return httpx.get(self.base_url, timeout=5).content

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds used so far by a process and each of its descendants, by pid (a process
    that ended between the scan and the read is left out)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    used: dict[int, float] = {}
    for member in tree:
        try:
            used[member] = cpu_seconds(member)
        except OSError:
            continue
    return used


def rss_kib(pid: int | str = "self") -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of a process, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def core_ticks(cpu: int) -> tuple[int, int]:
    """(busy, total) clock ticks of one CPU since boot (``/proc/stat``)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            return sum(values) - idle, sum(values)
    return 0, 0


def wait_idle(
    pid: int, *, below: float = 0.3, window_s: float = 0.25, timeout_s: float = 20
) -> float:
    """Wait until a server uses less than ``below`` of a core (requests of a finished load run
    still in its queues are done), at most ``timeout_s``. Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = cpu_seconds(pid)
        time.sleep(window_s)
        if (cpu_seconds(pid) - before) / window_s < below:
            break
    return time.monotonic() - started
