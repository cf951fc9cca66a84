"""Spans for the statements that bypass SQLAlchemy's execution (the hot `Prepared`
statements SQLite's connections run straight on the driver: `InlineConnection`).

SQLAlchemy's engines and asyncpg's connections are instrumented by OpenTelemetry's own
instrumentations (`chatstore_server.tracing`); these statements would be missing from
a trace without this. `tracer` is None unless tracing is on, so the cost when off is one
attribute check per statement.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

tracer: Any = None
"""An OpenTelemetry `Tracer` when tracing is on (set by `chatstore_server.tracing`)."""
client_kind: Any = None
"""`opentelemetry.trace.SpanKind.CLIENT`, set with `tracer`."""


def statement(sql: str, system: str) -> AbstractContextManager[Any]:
    """A client span around one statement, named and described as OpenTelemetry's
    SQLAlchemy instrumentation names its own (the SQL's first word, `db.system`,
    `db.statement`). Only call it when `tracer` is set."""
    verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "SQL"
    return tracer.start_as_current_span(  # type: ignore[no-any-return]
        verb, kind=client_kind, attributes={"db.system": system, "db.statement": sql}
    )
