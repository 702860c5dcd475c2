"""Several worker processes on one host: ``server.workers`` > 1 (fleet mode, role ``api``).

The supervisor (this module, in the process the operator started) binds the listening socket
once and starts ``count`` worker processes (``multiprocessing``'s ``spawn``: a fresh
interpreter each) that inherit it; each worker is a whole api process (``app/server.py``:
the same ``_GuardServer``, header-deadline protocol and fast path as one worker, its own
Redis connections, its own in-memory store applying the fleet's state feed). The kernel hands
each new connection to one worker; a keep-alive connection stays with the worker that
accepted it.

Why an inherited socket (not uvicorn's ``--workers`` supervisor, not ``SO_REUSEPORT``):

* uvicorn's supervisor pickles its ``Config`` into each worker, so the app must be an import
  string and the protocol class importable: the guard builds both at run time (the header
  deadline and the fast path in front of FastAPI). Here each worker builds them itself.
* With one socket, connections waiting in the accept queue are not lost when a worker dies
  (with ``SO_REUSEPORT`` each worker has its own queue, reset with it), the port stays bound
  while a worker is replaced, and no other process can join the group by binding the port.
* The supervisor needs hooks uvicorn's does not offer: a worker that cannot start (exit 2:
  configuration, 3: startup failed) stops the pool with its exit code instead of being
  restarted for ever, and a dead worker's ``live*`` gauge files are removed
  (``mark_process_dead``) so ``/metrics`` stops reporting it.

Crashes: a worker that dies (killed, or exits when nobody asked) is restarted at once, in
the same slot; more than ``max_restarts`` deaths within ``restart_window_s`` stops the pool
with exit 1 (a crash loop is a bug to look at, not to hide). SIGTERM or SIGINT: every worker
gets SIGTERM and drains its requests (``server.graceful_shutdown_s``); one still running
after that and a margin is killed. The pool exits 0 after a requested stop.

Workers watch the supervisor: the kernel sends a worker SIGTERM when the supervisor dies
(``PR_SET_PDEATHSIG``), and a worker whose parent is no longer the supervisor stops itself,
exiting at the latest ``server.graceful_shutdown_s`` + 5 s later (no orphaned workers serving
on a socket nobody supervises).

Metrics: the supervisor makes a private directory for prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, set before the workers start, removed at exit); see
``app/metrics.py``.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import cast

import structlog
from prometheus_client.multiprocess import mark_process_dead

log = structlog.get_logger("app.workers")

#: Exit codes with which a worker says it cannot start (a restart would fail the same way).
REFUSED_TO_START = frozenset({2, 3})
#: Seconds a worker gets beyond ``server.graceful_shutdown_s`` before it is killed.
STOP_MARGIN_S = 5.0


@dataclass(frozen=True)
class WorkerIdentity:
    """Which worker this process is (1..count) and where the pool's metric files live."""

    index: int
    count: int
    metrics_dir: Path
    #: 0 for the pool's first worker in this slot, then 1, 2, ... for each replacement.
    generation: int = 0
    #: The supervisor's pid: a worker whose parent is another process is an orphan and stops.
    supervisor: int = 0


#: Runs one worker until it stops; a module-level function (it is pickled to the worker).
WorkerTarget = Callable[[socket.socket, WorkerIdentity], None]


class WorkerPool:
    def __init__(
        self,
        target: WorkerTarget,
        sock: socket.socket,
        count: int,
        *,
        graceful_shutdown_s: float,
        max_restarts: int = 5,
        restart_window_s: float = 60.0,
    ) -> None:
        self._target = target
        self._sock = sock
        self._count = count
        self._stop_after_s = graceful_shutdown_s + STOP_MARGIN_S
        self._max_restarts = max_restarts
        self._window_s = restart_window_s
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, BaseProcess] = {}
        self._generations: dict[int, int] = {}
        self._deaths: deque[float] = deque()
        self._stop_signal: int | None = None
        self.metrics_dir = Path(tempfile.mkdtemp(prefix="pretrade-guard-metrics-"))

    def run(self) -> int:
        """Start the workers and supervise them until a stop; returns the exit code."""
        # Before any worker imports prometheus_client: multiprocess values, in our directory.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        code = 0
        try:
            for index in range(1, self._count + 1):
                self._start(index)
            log.info("worker pool started", workers=self._count, pid=os.getpid())
            code = self._supervise()
        finally:
            self._stop_all()
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        log.info("worker pool stopped", exit_code=code)
        return code

    def _on_signal(self, sig: int, _frame: FrameType | None) -> None:
        self._stop_signal = sig

    def _start(self, index: int) -> None:
        generation = self._generations.get(index, -1) + 1
        self._generations[index] = generation
        identity = WorkerIdentity(index, self._count, self.metrics_dir, generation, os.getpid())
        process = self._context.Process(
            target=self._target, args=(self._sock, identity), name=f"pretrade-guard-worker-{index}"
        )
        process.start()
        self._workers[index] = process
        log.info("worker started", worker=index, pid=process.pid)

    def _supervise(self) -> int:
        while self._stop_signal is None:
            by_sentinel = {p.sentinel: i for i, p in self._workers.items()}
            for sentinel in multiprocessing.connection.wait(list(by_sentinel), timeout=0.25):
                if self._stop_signal is not None:
                    break
                index = by_sentinel[cast(int, sentinel)]
                code = self._reap(index)
                if code is not None:
                    return code
        log.info("stopping workers", signal=signal.Signals(self._stop_signal).name)
        return 0

    def _reap(self, index: int) -> int | None:
        """A worker ended unasked: restart it, or return the pool's exit code."""
        process = self._workers[index]
        process.join()
        exitcode = process.exitcode
        self._forget(process)
        if exitcode in REFUSED_TO_START:
            log.error(
                "worker could not start; stopping the pool",
                worker=index,
                pid=process.pid,
                exit_code=exitcode,
            )
            return int(exitcode or 1)
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths and now - self._deaths[0] > self._window_s:
            self._deaths.popleft()
        died = (
            {"signal": signal.Signals(-exitcode).name}
            if exitcode is not None and exitcode < 0
            else {"exit_code": exitcode}
        )
        if len(self._deaths) > self._max_restarts:
            log.error(
                "workers keep dying; stopping the pool",
                worker=index,
                pid=process.pid,
                deaths=len(self._deaths),
                window_s=self._window_s,
                **died,
            )
            return 1
        log.error("worker died; starting a new one", worker=index, pid=process.pid, **died)
        self._start(index)
        return None

    def _forget(self, process: BaseProcess) -> None:
        if process.pid is not None:
            mark_process_dead(process.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]

    def _stop_all(self) -> None:
        running = [p for p in self._workers.values() if p.is_alive()]
        for process in running:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._stop_after_s
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker did not stop in time; killing it", pid=process.pid)
                process.kill()
                process.join()
            self._forget(process)
        self._workers.clear()
