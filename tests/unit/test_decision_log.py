"""The decision log writer: valid JSON lines with structlog's fields, batched, bounded."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry

from app.api.decider import Decider
from app.decision_log import (
    DecisionLog,
    DecisionLogWriter,
    line_fragment,
    render_with,
    timestamp,
)
from app.domain import Instant, OrderIntent, OrderSide, Policy
from app.logs import configure_logging, stderr_sink
from app.metrics import Metrics
from app.state.store import StateStore
from tests.unit.rules.builders import snapshot, status

FIELDS = [
    "decision_id",
    "account",
    "symbol",
    "side",
    "reduce_only",
    "allowed",
    "reasons",
    "warnings",
    "event",
    "level",
    "logger",
    "timestamp",
]


def _line(decision_id: str, *fields: Any) -> bytes:
    """A whole decision line as the writer gets it: the id, ``line_fragment``, the time."""
    return render_with(decision_id, line_fragment(*fields))


class Sink:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, data: bytes) -> None:
        with self.lock:
            self.writes.append(data)

    def lines(self) -> list[dict[str, object]]:
        with self.lock:
            text = b"".join(self.writes).decode()
        assert text == "" or text.endswith("\n")
        return [json.loads(line) for line in text.splitlines()]


def _metrics() -> Metrics:
    return Metrics(CollectorRegistry(), "test")


def _dropped(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("pretrade_guard_decision_log_dropped_total")
    assert value is not None
    return value


def test_a_line_is_the_json_structlog_would_write() -> None:
    line = _line("ab-1", "alpha", "BTCUSDT", "BUY", False, False, ["KILL_SWITCH"], ["W"])
    event = json.loads(line)
    assert list(event) == FIELDS
    assert event["decision_id"] == "ab-1"
    assert event["reasons"] == ["KILL_SWITCH"]
    assert event["warnings"] == ["W"]
    assert event["allowed"] is False
    assert event["reduce_only"] is False
    assert (event["event"], event["level"], event["logger"]) == (
        "decision",
        "info",
        "app.decisions",
    )
    assert str(event["timestamp"]).endswith("Z")
    assert line.endswith(b"}\n")
    assert b'"event": "decision"' in line  # the separators of every other log line


def test_a_line_matches_structlog_byte_for_byte_but_the_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("json", "info")
    structlog.configure(cache_logger_on_first_use=False)  # leave no configured logger behind
    try:
        Decider(
            _store(), {"a": Policy()}, _metrics(), decision_log="all", clock=lambda: NOW
        ).decide(ORDER)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
    logged = capsys.readouterr().err.strip()
    structlog_event = json.loads(logged)
    ours = _line(
        structlog_event["decision_id"], "a", "BTCUSDT", "BUY", False, True, [], []
    ).decode()
    assert ours.rpartition('"timestamp"')[0] == logged.rpartition('"timestamp"')[0]


def test_missing_values_are_null_and_text_is_escaped() -> None:
    event = json.loads(_line('x"1', "a\\b", None, None, False, True, [], []))
    assert event["decision_id"] == 'x"1'
    assert event["account"] == "a\\b"
    assert event["symbol"] is None
    assert event["side"] is None


def test_lines_are_written_in_batches_by_the_thread() -> None:
    sink = Sink()
    writer = DecisionLogWriter(sink, _metrics().decision_log_dropped, interval_s=0.01)
    for i in range(100):
        writer.write(_line(f"id-{i}", "a", None, None, False, True, [], []))
    deadline = time.monotonic() + 5
    while len(sink.lines()) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e["decision_id"] for e in sink.lines()] == [f"id-{i}" for i in range(100)]
    assert len(sink.writes) < 100  # batched, not one write per line
    writer.close()


def test_close_writes_what_is_left() -> None:
    sink = Sink()
    writer = DecisionLogWriter(sink, _metrics().decision_log_dropped, interval_s=60)
    for i in range(10):
        writer.write(_line(f"id-{i}", "a", None, None, False, True, [], []))
    writer.close()
    assert len(sink.lines()) == 10
    assert writer.pending == 0
    # After close (a straggler during shutdown), a line is written at once.
    writer.write(_line("late", "a", None, None, False, True, [], []))
    assert sink.lines()[-1]["decision_id"] == "late"


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    metrics = _metrics()
    release = threading.Event()
    sink = Sink()

    def stalled(data: bytes) -> None:  # a log pipe nobody reads
        release.wait(5)
        sink(data)

    writer = DecisionLogWriter(
        stalled, metrics.decision_log_dropped, max_lines=10, flush_lines=5, interval_s=0.01
    )
    started = time.monotonic()
    for i in range(100):
        writer.write(_line(f"id-{i}", "a", None, None, False, True, [], []))
    assert time.monotonic() - started < 1
    # At most 10 waiting, plus those the stalled thread already took.
    assert _dropped(metrics) >= 100 - 10 - 10
    release.set()
    writer.close()
    written = len(sink.lines())
    assert written + _dropped(metrics) == 100


def test_a_broken_sink_counts_the_lost_lines() -> None:
    metrics = _metrics()

    def broken(data: bytes) -> None:
        raise OSError("EPIPE")

    writer = DecisionLogWriter(broken, metrics.decision_log_dropped, interval_s=60)
    for i in range(3):
        writer.write(_line(f"id-{i}", "a", None, None, False, True, [], []))
    writer.close()
    assert _dropped(metrics) == 3


def test_stderr_sink_writes_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    monkeypatch.setattr(sys, "stderr", stream)
    stream.write("before\n")
    stderr_sink()(b'{"a": 1}\n')
    assert raw.getvalue() == b'before\n{"a": 1}\n'


# ------------------------------------------------------------------ through the decider

NOW = Instant.now()
ORDER = OrderIntent("a", "BTCUSDT", OrderSide.BUY, Decimal("0.01"), Decimal("100"))
HUGE = OrderIntent("a", "BTCUSDT", OrderSide.BUY, Decimal("1000000"), Decimal("100"))


def _store() -> StateStore:
    store = StateStore([("a", "generic-v2")])
    store.put_status("a", status(), NOW)
    store.put_snapshot("a", snapshot(available="10000"), NOW)
    return store


@pytest.mark.parametrize(
    ("mode", "logged"), [("all", [True, False]), ("denied", [False]), ("none", [])]
)
def test_decision_log_mode_picks_the_decisions(mode: str, logged: list[bool]) -> None:
    sink = Sink()
    metrics = _metrics()
    writer = DecisionLogWriter(sink, metrics.decision_log_dropped, interval_s=60)
    decider = Decider(
        _store(),
        {"a": Policy()},
        metrics,
        decision_log=DecisionLog(mode, writer),
        clock=lambda: NOW,
    )
    ids = [decider.decide(ORDER)["decision_id"], decider.decide(HUGE)["decision_id"]]
    writer.close()
    lines = sink.lines()
    assert [e["allowed"] for e in lines] == logged
    assert all(e["decision_id"] in ids for e in lines)
    if mode == "all":
        assert lines[1]["reasons"] == ["INSUFFICIENT_MARGIN"]
        assert lines[0]["side"] == "BUY"
        assert lines[0]["symbol"] == "BTCUSDT"


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        DecisionLog("some")


def test_each_way_of_recording_refuses_the_other_format() -> None:
    """The batched writer takes pre-rendered lines (``record_fragment``); the console format
    goes through structlog (``record``). A call to the wrong one is a bug, not a lost line."""
    writer = DecisionLogWriter(lambda _data: None, _metrics().decision_log_dropped, interval_s=60)
    with pytest.raises(RuntimeError, match="record_fragment"):
        DecisionLog("all", writer).record("id-1", "a", None, None, False, True, [], [])
    with pytest.raises(RuntimeError, match="use record"):
        DecisionLog("all").record_fragment(
            b"id-1", line_fragment("a", None, None, False, True, [], [])
        )
    writer.close()


def _iso(ns: int) -> bytes:
    """structlog's ``TimeStamper(fmt="iso", utc=True)`` of the time ``ns``."""
    second = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    return b"%s.%06dZ" % (
        second.strftime("%Y-%m-%dT%H:%M:%S").encode(),
        (ns // 1000) % 1_000_000,
    )


def test_timestamp_is_exact_to_the_microsecond_across_ms_and_second_boundaries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cached second and millisecond prefixes never leak into another instant, also
    when the wall clock steps back."""
    base = 1_796_000_000_000_000_000  # late 2026
    instants = [
        base,
        base + 1_000,  # the next microsecond: same ms
        base + 999_999,  # the last us of the ms
        base + 1_000_000,  # the next ms
        base + 999_999_999,  # the last us of the second
        base + 1_000_000_000,  # the next second
        base + 1_000_000_500,  # same us, sub-us part differs
        base - 1,  # the clock stepped back into the previous second
        base + 86_400_000_000_123,  # a day later
        base,
    ]
    for ns in instants:
        monkeypatch.setattr(time, "time_ns", lambda ns=ns: ns)
        assert timestamp() == _iso(ns), ns
