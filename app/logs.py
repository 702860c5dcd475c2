"""Structured logging: JSON lines in production, readable lines on a terminal.

Standard-library loggers (uvicorn, httpx) go through the same renderer, so every line has one
shape. Context (``account``, ``exchange``, ``decision_id``) is bound by the callers.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import structlog

#: The handler ``configure_logging`` installed (its lock keeps lines from interleaving).
_handler: logging.Handler | None = None


def configure_logging(fmt: str = "json", level: str = "info") -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    global _handler  # one handler per process, replaced on reconfiguration
    _handler = handler
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; signed URLs carry the signature: keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def stderr_sink() -> Callable[[bytes], None]:
    """Writes whole pre-rendered lines to stderr, under the log handler's lock (so they never
    interleave with a line being written by another thread) and after flushing the text
    layer (so they stay in order with the lines already logged)."""

    def write(data: bytes) -> None:
        handler = _handler
        if handler is not None:
            handler.acquire()
        try:
            stream = sys.stderr
            stream.flush()
            raw = getattr(stream, "buffer", None)
            if raw is None:  # a text-only stream (a test's capture, say)
                stream.write(data.decode())
                stream.flush()
            else:
                raw.write(data)
                raw.flush()
        finally:
            if handler is not None:
                handler.release()

    return write
