"""``pretrade-guard``: run the guard with one uvicorn worker (uvloop + httptools).

One process, one worker: pollers and the cache live in this process; more workers would
multiply exchange weight and split the cache. Scale with replicas.
"""

from __future__ import annotations

import sys

import uvicorn

from app.config import load_settings
from app.errors import ConfigError
from app.logs import configure_logging
from app.main import create_app


def main() -> None:
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
        timeout_graceful_shutdown=int(settings.server.graceful_shutdown_s),
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
