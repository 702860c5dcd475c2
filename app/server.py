"""Serving: the guard under uvicorn (uvloop + httptools); ``python -m app`` runs ``serve``.

Embedded mode (and fleet roles ``all`` and ``refresher``): one process, one worker; pollers
and the cache live in this process, more workers would multiply exchange weight. Fleet role
``api`` may run several worker processes on one host (``--workers N``, ``server.workers``):
each is a whole api process; ``app/worker_pool.py`` supervises them.

With no sub-command the program serves (the container's ``CMD``); ``--help`` lists the
operator sub-commands (``check-config``, ``admin``, ``reset-kill-switches``; ``app/cli/``).
The worker target lives here, not in ``app/__main__.py``: a spawned worker imports it by
module name, and ``multiprocessing`` does not import a package's ``__main__`` in its workers.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import socket
import sys
import threading
from types import FrameType
from typing import NoReturn

import prometheus_client
import structlog
import uvicorn
from fastapi import FastAPI

from app.config import Settings, load_settings
from app.errors import ConfigError, DataError
from app.logs import configure_logging
from app.main import begin_shutdown, create_checked_app, server_options
from app.worker_pool import WorkerIdentity, WorkerPool

#: ``prctl`` option: the signal to get when the parent dies (``<linux/prctl.h>``).
_PR_SET_PDEATHSIG = 1
#: Seconds an orphaned worker's shutdown may take beyond the graceful-shutdown time.
_ORPHAN_MARGIN_S = 5.0


class _GuardServer(uvicorn.Server):
    """uvicorn waits for open connections before the app's lifespan hears of a shutdown, and an
    ``/events`` stream never closes by itself; ending the streams when the signal arrives keeps
    SIGTERM from waiting out the whole graceful-shutdown timeout."""

    def __init__(
        self, config: uvicorn.Config, app: FastAPI, *, supervisor: int | None = None
    ) -> None:
        super().__init__(config)
        self._guard_app = app
        #: A pool worker stops when its supervisor (this pid) is gone: it is re-parented.
        self._supervisor = supervisor
        self._pool_worker = supervisor is not None
        self._backstop: threading.Timer | None = None

    async def on_tick(self, counter: int) -> bool:
        if self._supervisor is not None and counter % 5 == 0 and os.getppid() != self._supervisor:
            structlog.get_logger("app.workers").error(
                "worker pool supervisor gone; stopping", pid=os.getpid()
            )
            self._supervisor = None
            self.should_exit = True
            begin_shutdown(self._guard_app)
            self._arm_backstop()
        return await super().on_tick(counter)

    def _arm_backstop(self) -> None:
        """A pool worker's shutdown ends after the grace, even if something in it hangs.

        The supervisor SIGKILLs a worker that outlives the grace, but only while it lives: a
        worker told to stop (SIGTERM from the supervisor, or from the kernel when the supervisor
        died) whose shutdown then hung used to live on for good, re-parented, once the
        supervisor was gone (``on_tick``, which notices orphans, no longer runs after a
        signal). A thread, not the event loop: the loop may be what is stuck.
        """
        if not self._pool_worker or self._backstop is not None:
            return
        after_s = (self.config.timeout_graceful_shutdown or 0) + _ORPHAN_MARGIN_S
        self._backstop = threading.Timer(after_s, _shutdown_overdue, (after_s,))
        self._backstop.daemon = True
        self._backstop.start()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal once it has shut down, so the process would end "killed
        # by SIGTERM" (exit 143). A requested stop that drained its requests is a clean exit: 0.
        self._captured_signals.clear()
        begin_shutdown(self._guard_app)
        self._arm_backstop()


def _shutdown_overdue(after_s: float) -> None:
    """The backstop (a timer thread): the shutdown hangs; say so, end the process, exit 1."""
    structlog.get_logger("app.workers").error(
        "shutdown did not finish in time; exiting", after_s=after_s, pid=os.getpid()
    )
    sys.stderr.flush()
    os._exit(1)


def _refuse_to_start(message: str) -> NoReturn:
    sys.stderr.write(f"pretrade-guard: {message}\n")
    raise SystemExit(2)


def _load(worker: WorkerIdentity | None = None) -> tuple[Settings, FastAPI]:
    # ``*_created`` series would double the counter series Prometheus stores; nothing reads them.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    # Structured from the first line: warnings while the config loads (a world-readable secret
    # file, say) are JSON too. Reconfigured below with the configured format and level.
    configure_logging("json", "info")
    try:
        settings = load_settings()
        # Before create_app: pollers bind their loggers when they are built.
        configure_logging(settings.server.log_format, settings.server.log_level)
        # The checks `pretrade-guard check-config` makes too: accounts, every validator,
        # the worker count, and (read-only) the kill-switch database; the lifespan opens it
        # and checks again.
        app = create_checked_app(settings, worker=worker)
    except (ConfigError, DataError) as exc:
        _refuse_to_start(str(exc))
    return settings, app


def _run(
    settings: Settings,
    app: FastAPI,
    sock: socket.socket | None = None,
    *,
    supervisor: int | None = None,
) -> None:
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        loop="uvloop",
        **server_options(settings),  # httptools with a header deadline; client limits
        workers=1,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.server.graceful_shutdown_s),  # never 0
    )
    server = _GuardServer(config, app, supervisor=supervisor)
    server.run(sockets=None if sock is None else [sock])
    if not server.started:  # the lifespan failed (logged); uvicorn itself would exit 3
        raise SystemExit(3)


def serve() -> None:
    """Load the configuration, check the kill-switch database, and serve until SIGTERM
    (with ``server.workers`` > 1: start and supervise that many worker processes)."""
    settings, app = _load()
    workers = settings.server.workers
    if workers == 1:
        _run(settings, app)
        return
    del app  # built for its checks only: each worker builds its own
    # uvicorn binds as it would itself (IPv6, SO_REUSEADDR, inheritable), logging through ours.
    listen = uvicorn.Config(
        "app:unused", host=settings.server.host, port=settings.server.port, log_config=None
    )
    pool = WorkerPool(
        _serve_worker,
        listen.bind_socket(),
        workers,
        graceful_shutdown_s=settings.server.graceful_shutdown_s,
    )
    raise SystemExit(pool.run())


def _serve_worker(sock: socket.socket, worker: WorkerIdentity) -> None:
    """One worker of a pool (a spawned process): the whole api process on the shared socket."""
    _stop_with_parent()
    if os.getppid() != worker.supervisor:  # the supervisor died while this one was spawned
        raise SystemExit(1)
    structlog.contextvars.bind_contextvars(worker=worker.index)
    settings, app = _load(worker)
    _run(settings, app, sock, supervisor=worker.supervisor)


def _stop_with_parent() -> None:
    """Linux: the kernel sends this process SIGTERM when its parent dies (``prctl``'s
    ``PR_SET_PDEATHSIG``); best effort, the supervisor check in ``on_tick`` covers the rest."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
