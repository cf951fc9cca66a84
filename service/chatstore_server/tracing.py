"""OpenTelemetry tracing: a span per RPC and per database statement, exported by OTLP.

On when the standard OpenTelemetry variables ask for traces:
`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, or
`OTEL_TRACES_EXPORTER` is `otlp` or `console`. `OTEL_SDK_DISABLED=true` or
`OTEL_TRACES_EXPORTER=none` keeps it off. The exporter is OTLP over gRPC and reads the
other `OTEL_EXPORTER_OTLP_*` variables itself (headers, certificates, timeout);
`OTEL_SERVICE_NAME` (default `chatstore`) and `OTEL_RESOURCE_ATTRIBUTES` describe the
process; `OTEL_TRACES_SAMPLER` and `OTEL_BSP_*` (batching) apply as the SDK defines them.

Spans: one server span per chatstore RPC (health and reflection are left out), a child
of the caller's span when the call carries W3C trace context (`traceparent`,
`tracestate` metadata), with `rpc.grpc.status_code` and `chatstore.request_id`; under
it, one client span per SQL statement (SQLAlchemy's engines, and on PostgreSQL
asyncpg's own pool). Needs the tracing extra: `pip install 'chatstore[server,tracing]'`.

Off, nothing is installed: no interceptor, no hooks, no imports of the SDK; the cost is
the one look at the environment when the server starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc

    from chatstore_server.store import Database

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
EXTRA_HINT = "pip install 'chatstore[tracing]'"


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces (the module docstring's rule)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return exporter in ("otlp", "console") or any(environ.get(name) for name in _ENDPOINTS)


class Tracing:
    """This process's tracer provider and what it instruments.

    Raises (from `start`):
        ModuleNotFoundError: The tracing extra is not installed.
    """

    def __init__(self, provider: Any) -> None:
        self._provider = provider

    @classmethod
    def start(cls, environ: Mapping[str, str] = os.environ) -> Tracing:
        """A tracer provider exporting by the environment's rules, in a batch."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )

        resource = Resource.create(
            {"service.name": environ.get("OTEL_SERVICE_NAME") or "chatstore"}
        )
        provider = TracerProvider(resource=resource)
        exporter: SpanExporter
        if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
            exporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """The interceptor that opens a server span per chatstore call."""
        from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

        internal = filters.any_of(filters.health_check(), filters.service_prefix("grpc.reflection"))
        interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=self._provider, filter_=filters.negate(internal)
        )
        return [interceptor]

    def instrument(self, database: Database) -> None:
        """A span per statement on `database`'s engines, asyncpg's connections, and
        the statements SQLite runs straight on its driver (`store.spans`)."""
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.trace import SpanKind

        from chatstore_server.store import spans

        spans.tracer = self._provider.get_tracer("chatstore_server.store")
        spans.client_kind = SpanKind.CLIENT

        SQLAlchemyInstrumentor().instrument(
            engines=database.engines(), tracer_provider=self._provider
        )
        if database.dialect_name == "postgresql":
            from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

            AsyncPGInstrumentor().instrument(tracer_provider=self._provider)  # type: ignore[no-untyped-call]

    def shutdown(self) -> None:
        """Export what is buffered (bounded by `OTEL_BSP_EXPORT_TIMEOUT`) and stop."""
        self._provider.shutdown()


def annotate(request_id: str) -> None:
    """Put the request id on the current span (set by the call interceptor when tracing
    is on, so a trace leads to the call's log lines)."""
    from opentelemetry import trace

    trace.get_current_span().set_attribute("chatstore.request_id", request_id)
