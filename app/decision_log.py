"""The decision log: one JSON line per decision, written in batches off the event loop.

Rendering a decision line through structlog and writing it unbuffered to stderr cost more
than the decision itself (one ``write`` system call per answer, on the event loop). Here each
line is rendered to bytes directly (the same fields, the same JSON layout as structlog's
``JSONRenderer``: ``", "`` and ``": "`` separators), appended to an in-memory queue, and a
writer thread flushes the queue every ``interval_s`` (sooner once ``flush_lines`` are waiting)
in one write, under the logging handler's lock so lines never interleave with other log lines.

The queue is bounded: when the writer cannot keep up (a stalled log pipe), new lines are
dropped and counted (``pretrade_guard_decision_log_dropped_total``) rather than blocking the
decisions. ``close()`` (on shutdown) writes what is left.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import orjson
import structlog
from prometheus_client import Counter

_log = structlog.get_logger("app.decisions")

#: Lines waiting at most (~250 B each: ~12 MiB); beyond it lines are dropped and counted.
MAX_LINES = 50_000
#: Wake the writer early once this many lines wait.
FLUSH_LINES = 2_000
FLUSH_INTERVAL_S = 0.05

_TRUE_FALSE = {True: b"true", False: b"false"}


def _codes(codes: Sequence[str]) -> bytes:
    if not codes:
        return b"[]"
    return b"[" + b", ".join(orjson.dumps(c) for c in codes) + b"]"


#: (second, "YYYY-MM-DDTHH:MM:SS." of that second): formatting a date is the costly part.
_second: list[tuple[int, bytes]] = [(-1, b"")]
#: (millisecond, "YYYY-MM-DDTHH:MM:SS.mmm" of that millisecond).
_milli: list[tuple[int, bytes]] = [(-1, b"")]
#: The last three digits of the microseconds and the "Z", for each value: no formatting per
#: line (~0.5 us with it, ~0.2 us without).
_MICROS = tuple(b"%03dZ" % us for us in range(1000))


def timestamp() -> bytes:
    """What structlog's ``TimeStamper(fmt="iso", utc=True)`` writes, e.g.
    ``2026-11-21T16:51:34.722849Z`` (always with the microseconds)."""
    us = time.time_ns() // 1000
    ms = us // 1000
    cached, prefix = _milli[0]
    if ms != cached:
        second = ms // 1000
        cached_second, date = _second[0]
        if second != cached_second:
            date = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.").encode()
            _second[0] = (second, date)
        prefix = b"%s%03d" % (date, ms % 1000)
        _milli[0] = (ms, prefix)
    return prefix + _MICROS[us % 1000]


def line_fragment(
    account: str,
    symbol: str | None,
    side: str | None,
    reduce_only: bool,
    allowed: bool,
    reasons: Sequence[str],
    warnings: Sequence[str],
) -> bytes:
    """The middle of a decision line: every field but the decision id and the time.

    It depends on the intent and the decision only, so the decider keeps it with a reused
    evaluation and renders a line with one formatting operation (``render_with``)."""
    return (
        b', "account": %s, "symbol": %s, "side": %s, "reduce_only": %s, '
        b'"allowed": %s, "reasons": %s, "warnings": %s, "event": "decision", "level": "info", '
        b'"logger": "app.decisions", "timestamp": "'
        % (
            orjson.dumps(account),
            orjson.dumps(symbol),
            orjson.dumps(side),
            _TRUE_FALSE[reduce_only],
            _TRUE_FALSE[allowed],
            _codes(reasons),
            _codes(warnings),
        )
    )


#: A whole line: the id as JSON string content, the ``line_fragment``, the ``timestamp()``.
_LINE = b'{"decision_id": "%s"%s%s"}\n'


def render_with(decision_id: str, fragment: bytes) -> bytes:
    """A whole decision line from its id and its ``line_fragment``."""
    return _LINE % (orjson.dumps(decision_id)[1:-1], fragment, timestamp())


class DecisionLogWriter:
    """Bounded queue of rendered lines, written by a daemon thread (started on first use)."""

    def __init__(
        self,
        sink: Callable[[bytes], None],
        dropped: Counter,
        *,
        max_lines: int = MAX_LINES,
        flush_lines: int = FLUSH_LINES,
        interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        self._sink = sink
        self._dropped = dropped
        self._max_lines = max_lines
        self._flush_lines = flush_lines
        self._interval_s = interval_s
        # deque append/popleft are atomic: the event loop appends, the writer thread pops.
        self._lines: deque[bytes] = deque()
        self._wake = threading.Event()
        self._flushing = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def write(self, line: bytes) -> None:
        lines = self._lines
        waiting = len(lines)
        if waiting >= self._max_lines:
            self._dropped.inc()
            return
        lines.append(line)
        if self._thread is None or self._closed:
            self._start()
        if waiting + 1 == self._flush_lines:
            self._wake.set()

    def flush(self) -> None:
        """Write every queued line now (the caller's thread)."""
        with self._flushing:
            lines = self._lines
            batch: list[bytes] = []
            pop = lines.popleft
            for _ in range(len(lines)):
                batch.append(pop())
            if not batch:
                return
            try:
                self._sink(b"".join(batch))
            except Exception:  # stderr closed or broken: the lines are lost, and counted
                self._dropped.inc(len(batch))

    def close(self) -> None:
        """Stop the writer thread and write what is left (idempotent)."""
        self._closed = True
        thread = self._thread
        if thread is not None:
            self._wake.set()
            thread.join(timeout=5)
        self.flush()

    @property
    def pending(self) -> int:
        return len(self._lines)

    def _start(self) -> None:
        if self._closed:  # after close (shutdown): no thread, write at once
            self.flush()
            return
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            self.flush()


class DecisionLog:
    """Where ``Decider`` sends a decision: the batched writer, or structlog (console format),
    or nowhere. ``mode`` is ``server.decision_log``: ``all``, ``denied`` or ``none``."""

    def __init__(self, mode: str = "all", writer: DecisionLogWriter | None = None) -> None:
        if mode not in ("all", "denied", "none"):
            raise ValueError(f"decision_log: unknown mode {mode!r}")
        self.mode = mode
        self.writer = writer

    def wants(self, allowed: bool) -> bool:
        return self.mode == "all" or (self.mode == "denied" and not allowed)

    def record(
        self,
        decision_id: str,
        account: str,
        symbol: str | None,
        side: str | None,
        reduce_only: bool,
        allowed: bool,
        reasons: list[str],
        warnings: list[str],
    ) -> None:
        if self.writer is not None:
            raise RuntimeError("with the batched writer, use record_fragment")
        _log.info(
            "decision",
            decision_id=decision_id,
            account=account,
            symbol=symbol,
            side=side,
            reduce_only=reduce_only,
            allowed=allowed,
            reasons=reasons,
            warnings=warnings,
        )

    def record_fragment(
        self, decision_id: bytes, fragment: bytes, stamp: bytes | None = None
    ) -> None:
        """``record`` for a line whose ``line_fragment`` is already rendered, at ``stamp`` (a
        ``timestamp()``; None: now). The id must be JSON text as it is (ASCII letters, digits
        and dashes, as the decider's ids are). Only with a writer: the console format goes
        through structlog and needs ``record``."""
        writer = self.writer
        if writer is None:
            raise RuntimeError("record_fragment needs the batched writer; use record")
        writer.write(_LINE % (decision_id, fragment, timestamp() if stamp is None else stamp))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
