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
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString


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


Child = TypeVar("Child", LeanCounterChild, LeanHistogramChild)


class _LeanFamily(Generic[Child]):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], Child] = {}
        if not self.labelnames:
            self._children[()] = self._new_child()
        registry.register(self)

    def _new_child(self) -> Child:
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
            child = self._children[key] = self._new_child()
        return child

    def _only_child(self) -> Child:
        if self.labelnames:
            raise ValueError(f"{self.name}: has labels {self.labelnames}; use .labels(...)")
        return self._children[()]

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def children(self) -> list[tuple[tuple[str, ...], Child]]:
        return list(self._children.items())


class LeanCounter(_LeanFamily[LeanCounterChild]):
    """A counter family (``name`` ends in ``_total``) with unlocked children."""

    def _new_child(self) -> LeanCounterChild:
        return LeanCounterChild()

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
    ) -> None:
        bounds = tuple(float(b) for b in buckets)
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"{name}: bucket bounds must be strictly ascending")
        self.bounds = bounds
        self._les = [*(floatToGoString(b) for b in bounds), "+Inf"]  # type: ignore[no-untyped-call]
        super().__init__(name, documentation, labelnames, registry=registry)

    def _new_child(self) -> LeanHistogramChild:
        return LeanHistogramChild(self.bounds)

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
