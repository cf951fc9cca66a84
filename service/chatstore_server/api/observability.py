"""Prometheus metrics of the API: calls by method and status, latency, open watches.

The per-call metrics (`chatstore_requests_total`, `chatstore_request_duration_seconds`)
are counted in plain numbers on the event loop, by `Metrics.observe`, and handed to
prometheus_client when it is scraped (`_CallCollector`, a custom collector: the
library's documented way to expose numbers kept elsewhere). Counting through a
`Counter` and a `Histogram` took a lock per value and several calls into the library per
call: in the server, about a tenth of a GetSession's time (docs/performance.md). The
exposition is the one those metrics give: the same names, labels, buckets and
`_created` samples.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

# Latency buckets from 1 ms to 10 s: most calls are a few milliseconds.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _Latency:
    """One method's latency histogram: non-cumulative counts per bucket (the last one
    above the largest bound), their sum, and when it was first observed."""

    __slots__ = ("counts", "created", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS) + 1)
        self.sum = 0.0
        self.created = time.time()


class _CallCollector(Collector):
    """Exposes the counts of `Metrics` as a Counter and a Histogram would."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        # Copied first: the event loop goes on counting while this thread reads.
        calls = list(self._metrics.calls.items())
        latencies = list(self._metrics.latencies.items())
        requests = CounterMetricFamily(
            "chatstore_requests",
            "Completed calls, by method and gRPC status code.",
            labels=["method", "code"],
        )
        for (method, code), (count, created) in calls:
            requests.add_metric([method, code], count, created=created)
        yield requests
        latency = HistogramMetricFamily(
            "chatstore_request_duration_seconds",
            "Time from a call's arrival to its status, by method.",
            labels=["method"],
        )
        for method, histogram in latencies:
            counts = list(histogram.counts)
            cumulative, buckets = 0, []
            for bound, count in zip((*_BUCKETS, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append((_bound_text(bound), cumulative))
            latency.add_metric([method], buckets, histogram.sum)
            # As a Histogram exposes it (the family's add_metric takes no created time).
            latency.samples.append(
                Sample(f"{latency.name}_created", {"method": method}, histogram.created)
            )
        yield latency

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families are made at collection: nothing to check up front


def _bound_text(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (`le="0.005"`, `le="+Inf"`)."""
    if bound == float("inf"):
        return "+Inf"
    return repr(float(bound))


class Metrics:
    """The server's metrics, in a registry of their own (one per server)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.calls: dict[tuple[str, str], list[float]] = {}
        """(method name, code) -> [completed calls, when first counted]."""
        self.latencies: dict[str, _Latency] = {}
        """Method name -> its latency histogram."""
        self._names: dict[str, str] = {}  # full gRPC path -> method name
        self.registry.register(_CallCollector(self))
        self.watch_streams = Gauge(
            "chatstore_watch_streams",
            "WatchSession streams open now.",
            registry=self.registry,
        )

    def observe(self, method: str, code: str, seconds: float) -> None:
        """Count one completed call (`method` is the full gRPC path, `seconds` its time).

        Called on the event loop only.
        """
        name = self._names.get(method)
        if name is None:
            name = self._names[method] = method.rsplit("/", 1)[-1]
        counted = self.calls.get((name, code))
        if counted is None:
            self.calls[(name, code)] = [1, time.time()]
        else:
            counted[0] += 1
        histogram = self.latencies.get(name)
        if histogram is None:
            histogram = self.latencies[name] = _Latency()
        histogram.counts[bisect.bisect_left(_BUCKETS, seconds)] += 1
        histogram.sum += seconds

    def watch_pool(self, stats: Callable[[], dict[str, int]]) -> None:
        """Report the database pool (`stats()` gives connection counts by state)."""
        gauge = Gauge(
            "chatstore_db_pool_connections",
            "Database pool connections, by state (in_use, idle, overflow, size).",
            ["state"],
            registry=self.registry,
        )

        def reader(state: str) -> Callable[[], float]:
            return lambda: float(stats()[state])

        for state in stats():
            gauge.labels(state).set_function(reader(state))
