"""``pretrade-guard``: run the guard with one uvicorn worker (uvloop + httptools).

One process, one worker: pollers and the cache live in this process; more workers would
multiply exchange weight and split the cache. Scale with replicas.

With no sub-command the program serves (the container's ``CMD``); ``--help`` lists the
operator sub-commands (``check-config``, ``admin``, ``reset-kill-switches``; ``app/cli/``).
"""

from __future__ import annotations

import math
import sys
from types import FrameType
from typing import NoReturn

import prometheus_client
import uvicorn
from fastapi import FastAPI

from app.cli import build_cli
from app.config import load_settings
from app.errors import ConfigError, DataError
from app.logs import configure_logging
from app.main import begin_shutdown, create_checked_app, server_options


class _GuardServer(uvicorn.Server):
    """uvicorn waits for open connections before the app's lifespan hears of a shutdown, and an
    ``/events`` stream never closes by itself; ending the streams when the signal arrives keeps
    SIGTERM from waiting out the whole graceful-shutdown timeout."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._guard_app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal once it has shut down, so the process would end "killed
        # by SIGTERM" (exit 143). A requested stop that drained its requests is a clean exit: 0.
        self._captured_signals.clear()
        begin_shutdown(self._guard_app)


def _refuse_to_start(message: str) -> NoReturn:
    sys.stderr.write(f"pretrade-guard: {message}\n")
    raise SystemExit(2)


def serve() -> None:
    """Load the configuration, check the kill-switch database, and serve until SIGTERM."""
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
        # and (read-only) the kill-switch database; the lifespan opens it and checks again.
        app = create_checked_app(settings)
    except (ConfigError, DataError) as exc:
        _refuse_to_start(str(exc))
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
    server = _GuardServer(config, app)
    server.run()
    if not server.started:  # the lifespan failed (logged); uvicorn itself would exit 3
        raise SystemExit(3)


def main() -> None:
    """``pretrade-guard [COMMAND]``: serve when no command is given."""
    build_cli(serve)(prog_name="pretrade-guard")


if __name__ == "__main__":
    main()
