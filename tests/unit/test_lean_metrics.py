"""Lean counters and histograms expose exactly what prometheus_client's would."""

from __future__ import annotations

from pathlib import Path

import prometheus_client.metrics
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

from app.lean_metrics import LeanCounter, LeanHistogram, SharedSamples
from app.metrics import Metrics

BUCKETS = (0.000005, 0.0001, 0.25, 1.0, 2.5)
#: On a bucket bound, between bounds, below the first, above the last.
OBSERVED = (0.000005, 0.00003, 0.0000001, 7.0, 0.25, 0.3)


def _exposition(lean: bool) -> bytes:
    registry = CollectorRegistry()
    counter, histogram = (LeanCounter, LeanHistogram) if lean else (Counter, Histogram)
    requests = counter("x_requests_total", "Requests.", ["route", "status"], registry=registry)
    plain = counter("x_fast_total", "Unlabelled.", registry=registry)
    seconds = histogram("x_seconds", "Latency.", ["route"], buckets=BUCKETS, registry=registry)
    single = histogram("x_single_seconds", "Unlabelled.", buckets=BUCKETS, registry=registry)
    requests.labels("/a", "200").inc()
    requests.labels("/a", "200").inc(2)
    requests.labels("/b", "500")  # created at 0
    plain.inc()
    for value in OBSERVED:
        seconds.labels("/a").observe(value)
        single.observe(value)
    seconds.labels("/b")
    return generate_latest(registry)


def test_same_text_on_metrics_as_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in production (app/server.py calls ``disable_created_metrics``): no ``_created``.
    monkeypatch.setattr(prometheus_client.metrics, "_use_created", False)
    assert _exposition(lean=True) == _exposition(lean=False)


def test_observe_many_counts_each_time() -> None:
    registry = CollectorRegistry()
    many = LeanHistogram("m_seconds", "Many.", buckets=BUCKETS, registry=registry)
    many.observe_many(0.00003, 100)
    assert registry.get_sample_value("m_seconds_count") == 100
    assert registry.get_sample_value("m_seconds_bucket", {"le": "0.0001"}) == 100
    assert registry.get_sample_value("m_seconds_bucket", {"le": "5e-06"}) == 0
    assert registry.get_sample_value("m_seconds_sum") == pytest.approx(0.003)


def test_a_kept_child_is_the_family_s_series(tmp_path: Path) -> None:
    """``child()`` (kept by hot paths) updates what the family reports, shared or not."""
    samples = SharedSamples(tmp_path, 1)
    try:
        for shared in (None, samples):
            registry = CollectorRegistry()
            plain = LeanCounter("k_total", "Kept.", registry=registry, shared=shared)
            single = LeanHistogram(
                "k_seconds", "Kept.", buckets=BUCKETS, registry=registry, shared=shared
            )
            kept, kept_seconds = plain.child(), single.child()
            assert plain.child() is kept
            assert single.child() is kept_seconds
            kept.inc()
            plain.inc(2)
            kept_seconds.observe(0.00003)
            single.observe(0.3)
            assert registry.get_sample_value("k_total") == 3
            assert registry.get_sample_value("k_seconds_count") == 2
            assert registry.get_sample_value("k_seconds_bucket", {"le": "0.0001"}) == 1
    finally:
        samples.close()


def test_names_and_labels_are_checked() -> None:
    registry = CollectorRegistry()
    LeanCounter("dup_total", "One.", registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("dup_total", "Two.", registry=registry)
    labelled = LeanCounter("l_total", "Labelled.", ["a"], registry=registry)
    with pytest.raises(ValueError, match="expected labels"):
        labelled.labels("x", "y")
    with pytest.raises(ValueError, match=r"use \.labels"):
        labelled.inc()
    with pytest.raises(ValueError, match=r"use \.labels"):
        labelled.child()
    with pytest.raises(ValueError, match="ascending"):
        LeanHistogram("h_seconds", "Bad.", buckets=(1.0, 0.5), registry=registry)


def test_shared_children_sum_over_processes_like_one_process(tmp_path: Path) -> None:
    """Several workers' files, read by prometheus_client's multiprocess collector, report
    what one process making every observation would (and keep a closed worker's counts)."""
    one = CollectorRegistry()
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=str(tmp_path))  # type: ignore[no-untyped-call]
    together = (
        LeanCounter("w_requests_total", "Requests.", ["route"], registry=one),
        LeanHistogram("w_seconds", "Latency.", ["route"], buckets=BUCKETS, registry=one),
    )
    for worker, values in ((1, OBSERVED[:4]), (2, OBSERVED[4:])):
        shared = SharedSamples(tmp_path, process_id=worker)
        registry = CollectorRegistry()
        requests = LeanCounter(
            "w_requests_total", "Requests.", ["route"], registry=registry, shared=shared
        )
        seconds = LeanHistogram(
            "w_seconds", "Latency.", ["route"], buckets=BUCKETS, registry=registry, shared=shared
        )
        requests.labels("/b")  # created at 0 in the files too
        for value in values:
            requests.labels("/a").inc()
            seconds.labels("/a").observe(value)
            together[0].labels("/a").inc()
            together[1].labels("/a").observe(value)
        seconds.labels("/a").observe_many(0.3, 2)
        together[1].labels("/a").observe_many(0.3, 2)
        # What this worker reports on its own registry stays its own.
        assert registry.get_sample_value("w_requests_total", {"route": "/a"}) == len(values)
        shared.close()  # a worker that ended: its counts stay in the host's total
    assert merged.get_sample_value("w_requests_total", {"route": "/a"}) == len(OBSERVED)
    assert merged.get_sample_value("w_requests_total", {"route": "/b"}) == 0
    for le in (*(floatToGoString(b) for b in BUCKETS), "+Inf"):  # type: ignore[no-untyped-call]
        labels = {"route": "/a", "le": le}
        assert merged.get_sample_value("w_seconds_bucket", labels) == one.get_sample_value(
            "w_seconds_bucket", labels
        ), le
    assert merged.get_sample_value("w_seconds_count", {"route": "/a"}) == len(OBSERVED) + 4
    assert merged.get_sample_value("w_seconds_sum", {"route": "/a"}) == pytest.approx(
        one.get_sample_value("w_seconds_sum", {"route": "/a"})
    )


def test_every_gauge_says_how_workers_combine() -> None:
    """With several workers a gauge without a ``live*`` mode would show one series per pid,
    dead workers' included, instead of the host's value."""
    metrics = Metrics(CollectorRegistry(), "test")
    gauges = {name: m for name, m in vars(metrics).items() if isinstance(m, Gauge)}
    assert gauges
    for name, gauge in gauges.items():
        assert gauge._multiprocess_mode.startswith("live"), name


def test_shared_values_land_after_the_file_grows(tmp_path: Path) -> None:
    """The file starts at 64 KiB and is mapped anew when it grows: children created before
    the growth still write where the collector reads."""
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=str(tmp_path))  # type: ignore[no-untyped-call]
    shared = SharedSamples(tmp_path, process_id=7)
    requests = LeanCounter(
        "g_requests_total", "Requests.", ["client"], registry=CollectorRegistry(), shared=shared
    )
    first = requests.labels("client-0")
    for n in range(3000):  # ~300 KiB of keys
        requests.labels(f"client-{n}").inc()
    first.inc()
    try:
        assert merged.get_sample_value("g_requests_total", {"client": "client-0"}) == 2
        assert merged.get_sample_value("g_requests_total", {"client": "client-2999"}) == 1
        assert (tmp_path / "counter_lean_7.db").stat().st_size > 64 * 1024
    finally:
        shared.close()
