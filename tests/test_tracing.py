"""OpenTelemetry: with the OTEL_* variables set, a real server exports a span per RPC
(continuing the caller's W3C trace) and per statement to a real OTLP receiver."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from chatstore import AsyncChatStoreClient, NotFound
from chatstore_server.tracing import wanted
from tests.conftest import TENANT
from tests.processes import BIN, ServerProcess


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[trace_pb2.Span] = []

    async def Export(  # noqa: N802 - the generated servicer's name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


def _attributes(span: trace_pb2.Span) -> dict[str, Any]:
    return {a.key: getattr(a.value, a.value.WhichOneof("value") or "") for a in span.attributes}


async def test_spans_per_call_and_statement_continue_the_callers_trace(
    database_url: str,
) -> None:
    receiver = Receiver()
    collector = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, collector)  # type: ignore[no-untyped-call]
    collector_port = collector.add_insecure_port("127.0.0.1:0")
    await collector.start()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_SERVICE_NAME": "chatstore-under-test",
    }
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = ("traceparent", f"00-{trace_id}-{parent_id}-01")
    server = await ServerProcess.start(
        "--listen", "127.0.0.1:0", "--database-url", database_url, env=env
    )
    try:
        async with AsyncChatStoreClient(server.target, tenant_id=TENANT) as client:
            created = await client.create_session(title="traced")
            await client.get_session(created.id, metadata=[traceparent, ("x-request-id", "r-1")])
            with pytest.raises(NotFound):
                await client.get_session("missing", metadata=[traceparent])
        async with grpc.aio.insecure_channel(server.target) as channel:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    finally:
        assert await server.stop() == 0  # flushes the spans
        await collector.stop(None)

    [start_up] = [line for line in server.log if "serving on" in line]
    assert "tracing on" in start_up
    mine = [s for s in receiver.spans if s.trace_id.hex() == trace_id]
    calls = [s for s in mine if s.kind == trace_pb2.Span.SPAN_KIND_SERVER]
    assert [(s.name, s.parent_span_id.hex()) for s in calls] == [
        ("/chatstore.v1.SessionService/GetSession", parent_id)
    ] * 2
    found, missing = sorted(calls, key=lambda s: _attributes(s)["rpc.grpc.status_code"])
    assert _attributes(found)["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
    assert _attributes(found)["chatstore.request_id"] == "r-1"
    assert _attributes(missing)["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    statements = [s for s in mine if s.parent_span_id == found.span_id]
    assert statements, [(s.name, s.parent_span_id.hex(), s.span_id.hex()) for s in receiver.spans]
    assert all(s.kind == trace_pb2.Span.SPAN_KIND_CLIENT for s in statements)
    assert all("db.system" in _attributes(s) for s in statements)
    assert not [s for s in receiver.spans if "Health" in s.name]
    # CreateSession had no trace context: a trace of its own, also exported.
    assert any(s.name.endswith("/CreateSession") for s in receiver.spans)


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
    ],
)
def test_what_turns_tracing_on(environ: dict[str, str], on: bool) -> None:
    assert wanted(environ) is on


async def test_without_the_extra_the_server_names_it(tmp_path: Any) -> None:
    # The extra's modules made unimportable in the server process alone.
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['opentelemetry.sdk'] = None\n")
    process = await asyncio.create_subprocess_exec(
        str(BIN / "chatstore-server"),
        "--listen", "127.0.0.1:0", "--database-url", f"sqlite:///{tmp_path / 'db'}",
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path),
             "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 2
    assert "pip install 'chatstore[tracing]'" in err.decode()
    assert "Traceback" not in err.decode()
