"""``pretrade-guard``: run the guard with one uvicorn worker (uvloop + httptools).

One process, one worker: pollers and the cache live in this process; more workers would
multiply exchange weight and split the cache. Scale with replicas.
"""

from __future__ import annotations

import math
import sys
from types import FrameType

import prometheus_client
import uvicorn
from fastapi import FastAPI

from app.config import load_settings
from app.errors import ConfigError
from app.logs import configure_logging
from app.main import begin_shutdown, create_app


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


def main() -> None:
    # ``*_created`` series would double the counter series Prometheus stores; nothing reads them.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    # Structured from the first line: warnings while the config loads (a world-readable secret
    # file, say) are JSON too. Reconfigured below with the configured format and level.
    configure_logging("json", "info")
    try:
        settings = load_settings()
        # Before create_app: pollers bind their loggers when they are built.
        configure_logging(settings.server.log_format, settings.server.log_level)
        app = create_app(settings)
    except ConfigError as exc:
        sys.stderr.write(f"pretrade-guard: {exc}\n")
        raise SystemExit(2) from None
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.server.graceful_shutdown_s),  # never 0
    )
    _GuardServer(config, app).run()


if __name__ == "__main__":
    main()
