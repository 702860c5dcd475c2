"""Counters and histograms for the hot path: plain Python numbers, read when scraped.

A ``prometheus_client`` counter increment takes a lock and checks its type (about 0.35 µs
here), a histogram observation walks its buckets in Python under locks (about 0.8 µs); a
``GET /can-trade`` made seven of them. ``LeanCounter`` and ``LeanHistogram`` keep the same
metric families (names, help, labels, bucket bounds, the same text on ``/metrics``) in plain
numbers instead: an increment is one addition, an observation one ``bisect`` and two
additions.

They are registered on the registry as collectors, so ``/metrics`` and
``registry.get_sample_value`` read them like any other metric. Their updates are not locked:
they are made on the event loop's thread only (the request path, which never runs in a
thread pool). A scrape from another thread may see the sum one observation behind the
buckets; the count is always the sum of the buckets.

Several worker processes (``server.workers`` > 1, fleet api role): given a ``SharedSamples``
the families hand out ``Shared*`` children, which also write every new value into this
process's file in prometheus_client's multiprocess format (``counter_lean_<pid>.db``,
``histogram_lean_<pid>.db`` in the worker pool's metrics directory), so a scrape of any
worker sums every worker's, including those of workers that died (``app/worker_pool.py``).
Without one (embedded mode, one worker) the children are the plain ones above: the hot path
is unchanged.
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.utils import floatToGoString


class SharedSamples:
    """This process's files of lean samples in a multiprocess metrics directory (one for
    counters, one for histograms), named so ``MultiProcessCollector`` reads them by type and
    never mixes them up with prometheus_client's own ``counter_<pid>.db``."""

    def __init__(self, directory: Path, process_id: int | None = None) -> None:
        pid = os.getpid() if process_id is None else process_id
        self.counters = _file(directory, "counter", pid)
        self.histograms = _file(directory, "histogram", pid)

    def close(self) -> None:
        self.counters.close()  # type: ignore[no-untyped-call]
        self.histograms.close()  # type: ignore[no-untyped-call]


def _file(directory: Path, kind: str, pid: int) -> MmapedDict:
    path = directory / f"{kind}_lean_{pid}.db"
    return MmapedDict(str(path))  # type: ignore[no-untyped-call]


#: A sample's value as stored in the file (its timestamp, the next 8 bytes, stays 0).
_DOUBLE = struct.Struct("d").pack


def _slot(samples: MmapedDict, key: str) -> int:
    """Where ``key``'s value lies in the file (created at 0: the series exists from the start).

    The children then write their value there, 8 bytes by slice assignment, as ``MmapedDict``
    itself does (one store, never a transient 0), without its per-write dictionary lookups;
    they read ``samples._m`` at each write, as the map is replaced when the file grows."""
    samples.write_value(key, 0.0, 0.0)  # type: ignore[no-untyped-call]
    position: int = samples._positions[key]
    return position


class LeanCounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class LeanHistogramChild:
    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        #: One count per bucket (not cumulative); the last one is ``+Inf``.
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self._bounds, amount)] += 1
        self.sum += amount

    def observe_many(self, amount: float, times: int) -> None:
        """``observe(amount)`` ``times`` times."""
        self.counts[bisect_left(self._bounds, amount)] += times
        self.sum += amount * times


class SharedCounterChild(LeanCounterChild):
    """A lean counter child that also writes its value to this process's shared file."""

    __slots__ = ("_at", "_samples")

    def __init__(self, samples: MmapedDict, key: str) -> None:
        super().__init__()
        self._samples = samples
        self._at = _slot(samples, key)

    def inc(self, amount: float = 1) -> None:
        self.value += amount
        at = self._at
        self._samples._m[at : at + 8] = _DOUBLE(self.value)


class SharedHistogramChild(LeanHistogramChild):
    """A lean histogram child that also writes its bucket counts and sum to the shared file
    (counts per bucket, not cumulative: the collector accumulates them)."""

    __slots__ = ("_buckets_at", "_samples", "_sum_at")

    def __init__(
        self, bounds: tuple[float, ...], samples: MmapedDict, bucket_keys: list[str], sum_key: str
    ) -> None:
        super().__init__(bounds)
        self._samples = samples
        self._buckets_at = [_slot(samples, key) for key in bucket_keys]
        self._sum_at = _slot(samples, sum_key)

    def observe(self, amount: float) -> None:
        index = bisect_left(self._bounds, amount)
        counts = self.counts
        counts[index] += 1
        self.sum += amount
        mapped = self._samples._m
        at = self._buckets_at[index]
        mapped[at : at + 8] = _DOUBLE(counts[index])
        at = self._sum_at
        mapped[at : at + 8] = _DOUBLE(self.sum)

    def observe_many(self, amount: float, times: int) -> None:
        index = bisect_left(self._bounds, amount)
        self.counts[index] += times
        self.sum += amount * times
        mapped = self._samples._m
        at = self._buckets_at[index]
        mapped[at : at + 8] = _DOUBLE(self.counts[index])
        at = self._sum_at
        mapped[at : at + 8] = _DOUBLE(self.sum)


Child = TypeVar("Child", LeanCounterChild, LeanHistogramChild)


class _LeanFamily(Generic[Child]):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry,
        shared: SharedSamples | None = None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._shared = shared
        self._children: dict[tuple[str, ...], Child] = {}
        if not self.labelnames:
            self._children[()] = self._new_child(())
        registry.register(self)

    def _new_child(self, values: tuple[str, ...]) -> Child:
        raise NotImplementedError

    def _family(self) -> Metric:
        raise NotImplementedError

    def collect(self) -> Iterable[Metric]:
        raise NotImplementedError

    def labels(self, *values: str) -> Child:
        """The child for these label values (created at 0 on first use)."""
        if len(values) != len(self.labelnames) or not self.labelnames:
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._new_child(key)
        return child

    def _only_child(self) -> Child:
        if self.labelnames:
            raise ValueError(f"{self.name}: has labels {self.labelnames}; use .labels(...)")
        return self._children[()]

    def child(self) -> Child:
        """The series of a family without labels (made with the family, never replaced): a
        hot path keeps it, as it keeps a labelled one, instead of two calls per update."""
        return self._only_child()

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def children(self) -> list[tuple[tuple[str, ...], Child]]:
        return list(self._children.items())


class LeanCounter(_LeanFamily[LeanCounterChild]):
    """A counter family (``name`` ends in ``_total``) with unlocked children."""

    def _new_child(self, values: tuple[str, ...]) -> LeanCounterChild:
        if self._shared is None:
            return LeanCounterChild()
        family = self.name.removesuffix("_total")
        key = mmap_key(family, self.name, list(self.labelnames), list(values), self.documentation)
        return SharedCounterChild(self._shared.counters, key)

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def inc(self, amount: float = 1) -> None:
        self._only_child().inc(amount)

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for values, child in self.children():
            family.add_metric(values, child.value)
        return [family]


class LeanHistogram(_LeanFamily[LeanHistogramChild]):
    """A histogram family with unlocked children (bucket bounds in seconds, ascending)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
        shared: SharedSamples | None = None,
    ) -> None:
        bounds = tuple(float(b) for b in buckets)
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"{name}: bucket bounds must be strictly ascending")
        self.bounds = bounds
        self._les = [*(floatToGoString(b) for b in bounds), "+Inf"]  # type: ignore[no-untyped-call]
        super().__init__(name, documentation, labelnames, registry=registry, shared=shared)

    def _new_child(self, values: tuple[str, ...]) -> LeanHistogramChild:
        if self._shared is None:
            return LeanHistogramChild(self.bounds)
        names, doc = list(self.labelnames), self.documentation
        bucket_keys = [
            mmap_key(self.name, f"{self.name}_bucket", [*names, "le"], [*values, le], doc)
            for le in self._les
        ]
        sum_key = mmap_key(self.name, f"{self.name}_sum", names, list(values), doc)
        return SharedHistogramChild(self.bounds, self._shared.histograms, bucket_keys, sum_key)

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def observe(self, amount: float) -> None:
        self._only_child().observe(amount)

    def observe_many(self, amount: float, times: int) -> None:
        self._only_child().observe_many(amount, times)

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for values, child in self.children():
            total, sum_value = 0, child.sum
            buckets = []
            for le, count in zip(self._les, list(child.counts), strict=True):
                total += count
                buckets.append((le, float(total)))
            family.add_metric(list(values), buckets, sum_value)
        return [family]
