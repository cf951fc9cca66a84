"""The call metrics, counted in plain numbers, expose what prometheus_client's own
Counter and Histogram would for the same calls."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from chatstore_server.api.observability import _BUCKETS, Metrics

_CALLS = [
    ("GetSession", "OK", 0.0004),
    ("GetSession", "OK", 0.001),  # on a bound: counted in that bucket
    ("GetSession", "NOT_FOUND", 0.02),
    ("CreateSession", "OK", 12.0),  # past the largest bound
    ("CreateSession", "OK", 0.0025),
    ("AppendMessages", "ABORTED", 0.0),
]


def _exposition(registry: CollectorRegistry) -> list[str]:
    """The registry's text exposition, lines sorted, creation times masked."""
    text = generate_latest(registry).decode()
    return sorted(re.sub(r"(_created(\{[^}]*\})?) \S+", r"\1 T", text).splitlines())


def test_call_metrics_expose_what_a_counter_and_a_histogram_would() -> None:
    ours = Metrics()
    reference = CollectorRegistry()
    requests = Counter(
        "chatstore_requests",
        "Completed calls, by method and gRPC status code.",
        ["method", "code"],
        registry=reference,
    )
    latency = Histogram(
        "chatstore_request_duration_seconds",
        "Time from a call's arrival to its status, by method.",
        ["method"],
        buckets=_BUCKETS,
        registry=reference,
    )
    Gauge("chatstore_watch_streams", "WatchSession streams open now.", registry=reference)
    for method, code, seconds in _CALLS:
        ours.observe(f"/chatstore.v1.SessionService/{method}", code, seconds)
        requests.labels(method, code).inc()
        latency.labels(method).observe(seconds)

    assert _exposition(ours.registry) == _exposition(reference)
    assert 'chatstore_requests_total{code="OK",method="GetSession"} 2.0' in _exposition(
        ours.registry
    )
