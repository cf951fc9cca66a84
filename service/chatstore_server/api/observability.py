"""Prometheus metrics of the API: calls by method and status, latency, open watches."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Latency buckets from 1 ms to 10 s: most calls are a few milliseconds.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The server's metrics, in a registry of their own (one per server)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "chatstore_requests",
            "Completed calls, by method and gRPC status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "chatstore_request_duration_seconds",
            "Time from a call's arrival to its status, by method.",
            ["method"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self.watch_streams = Gauge(
            "chatstore_watch_streams",
            "WatchSession streams open now.",
            registry=self.registry,
        )

    def observe(self, method: str, code: str, seconds: float) -> None:
        """Count one completed call (`method` is the full gRPC path, `seconds` its time)."""
        children = self._children.get((method, code))
        if children is None:  # labels() is a locked lookup: do it once per method and code
            name = method.rsplit("/", 1)[-1]
            children = (self.requests.labels(name, code), self.latency.labels(name))
            self._children[(method, code)] = children
        children[0].inc()
        children[1].observe(seconds)

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
