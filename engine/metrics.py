"""Prometheus metrics of one engine instance (its own registry, so tests can run several).

The per-message metrics (messages received/acked/nacked/filtered, ACK latency) are
counted in plain Python objects on the event loop and turned into Prometheus samples
only when scraped: ``inc``/``observe`` on the hot path are an attribute add and a
``bisect`` instead of a lock and a label lookup. Names, labels, buckets and the text
exposition are the same as ``prometheus_client``'s ``Counter``/``Histogram`` would give
(minus the ``_created`` samples).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

ACK_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

__all__ = ["ACK_BUCKETS", "FastCounter", "FastHistogram", "Metrics"]


class _CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.value += amount


class FastCounter:
    """A labelled counter for the event loop's hot path: ``labels(...)`` returns a child
    whose ``value`` is a plain float (``child.value += 1`` or ``child.inc()``); samples
    are built at scrape time. Not thread-safe: increment from one thread (the loop)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _CounterChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> _CounterChild:
        key = tuple(str(v) for v in values)
        if len(key) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {key}")
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = _CounterChild()
        return child

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        fam = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in list(self._children.items()):
            fam.add_metric(list(key), child.value)
        yield fam


class _HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount


class FastHistogram:
    """A labelled histogram for the hot path (see ``FastCounter``): ``observe`` is one
    ``bisect`` and two adds; cumulative buckets are computed at scrape time."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        self._children: dict[tuple[str, ...], _HistogramChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> _HistogramChild:
        key = tuple(str(v) for v in values)
        if len(key) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {key}")
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = _HistogramChild(self.bounds)
        return child

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        fam = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        les = [*(floatToGoString(b) for b in self.bounds), "+Inf"]  # type: ignore[no-untyped-call]
        for key, child in list(self._children.items()):
            counts, total = list(child.counts), child.sum
            running = 0
            buckets: list[tuple[str, float]] = []
            for le, n in zip(les, counts, strict=True):
                running += n
                buckets.append((le, float(running)))
            fam.add_metric(list(key), buckets, total)
        yield fam


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = FastCounter(
            "radbridge_messages_received", "Inbound messages received", ["channel"], r
        )
        self.acked = FastCounter(
            "radbridge_messages_acked", "Inbound messages answered AA/CA", ["channel"], r
        )
        self.nacked = FastCounter(
            "radbridge_messages_nacked",
            "Inbound messages answered AE/AR/CE/CR",
            ["channel", "code"],
            r,
        )
        self.filtered = FastCounter(
            "radbridge_messages_filtered", "Inbound messages filtered", ["channel"], r
        )
        self.junk = Counter(
            "radbridge_mllp_junk_bytes", "Bytes skipped outside MLLP frames", ["channel"],
            registry=r,
        )
        self.connections = Gauge(
            "radbridge_connections_open", "Open inbound connections", ["channel"], registry=r
        )
        self.ack_latency = FastHistogram(
            "radbridge_ack_latency_seconds",
            "From the end of the inbound frame to the ACK handed to the socket",
            ["channel"],
            ACK_BUCKETS,
            r,
        )
        self.sent = Counter(
            "radbridge_deliveries_sent", "Deliveries sent", ["destination"], registry=r
        )
        self.retried = Counter(
            "radbridge_deliveries_retried", "Delivery attempts to retry", ["destination"],
            registry=r,
        )
        self.dead = Counter(
            "radbridge_deliveries_dead", "Deliveries dead-lettered", ["destination"], registry=r
        )
        self.queue_depth = Gauge(
            "radbridge_queue_depth", "Pending deliveries", ["destination"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
