"""Services are added as generic handlers, each the handler the generated code builds."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from chatstore.v1 import session_pb2, session_service_pb2, session_service_pb2_grpc
from chatstore_server.api.registration import method_handlers


class _Recorder:
    """Takes what a generated `add_<Service>Servicer_to_server` registers."""

    def __init__(self) -> None:
        self.registered: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.registered = handlers


class _Servicer:
    """Any attribute is a distinct behavior, so that each handler's can be told apart."""

    def __init__(self) -> None:
        self.behaviors: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return self.behaviors.setdefault(name, lambda request, context, name=name: name)


@pytest.mark.parametrize(
    ("service", "add_generated"),
    [
        (
            session_service_pb2.DESCRIPTOR.services_by_name["SessionService"],
            session_service_pb2_grpc.add_SessionServiceServicer_to_server,
        ),
        (
            health_pb2.DESCRIPTOR.services_by_name["Health"],
            health_pb2_grpc.add_HealthServicer_to_server,
        ),
        (
            reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
            reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
        ),
    ],
)
def test_method_handlers_match_the_generated_ones(service: Any, add_generated: Any) -> None:
    servicer, recorder = _Servicer(), _Recorder()
    add_generated(servicer, recorder)

    ours = method_handlers(service, servicer)

    assert sorted(ours) == sorted(recorder.registered) == sorted(m.name for m in service.methods)
    for name, generated in recorder.registered.items():
        handler = ours[name]
        assert (handler.request_streaming, handler.response_streaming) == (
            generated.request_streaming,
            generated.response_streaming,
        ), name
        assert handler.request_deserializer == generated.request_deserializer, name
        assert handler.response_serializer == generated.response_serializer, name
        behaviors = [
            getattr(handler, kind)
            for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
        ]
        assert servicer.behaviors[name] in behaviors, name


def test_methods_named_encoded_pass_their_answers_bytes_on() -> None:
    service = session_service_pb2.DESCRIPTOR.services_by_name["SessionService"]
    handlers = method_handlers(service, _Servicer(), encoded={"ListMessages"})
    serialize = handlers["ListMessages"].response_serializer
    assert serialize is not None
    response = session_service_pb2.ListMessagesResponse(next_page_token="t")

    assert serialize(response) == response.SerializeToString()
    assert serialize(b"already encoded") == b"already encoded"
    # The others keep the generated serializer, with no call in between.
    assert handlers["GetSession"].response_serializer == session_pb2.Session.SerializeToString


def test_method_handlers_need_every_method() -> None:
    service = health_pb2.DESCRIPTOR.services_by_name["Health"]

    with pytest.raises(AttributeError):
        method_handlers(service, object())


async def test_health_watch_streams_the_status(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        first = await call.read()
        call.cancel()

    assert isinstance(first, health_pb2.HealthCheckResponse)
    assert first.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        answers = [answer async for answer in call]

    names = {s.name for s in answers[0].list_services_response.service}
    assert names == {
        "chatstore.v1.SessionService",
        health.SERVICE_NAME,
        reflection.SERVICE_NAME,
    }


@pytest.mark.parametrize(
    ("symbol", "file"),
    [
        ("chatstore.v1.SessionService", "chatstore/v1/session_service.proto"),
        ("chatstore.v1.SessionService.GetSession", "chatstore/v1/session_service.proto"),
        ("chatstore.v1.Session.title", "chatstore/v1/session.proto"),
        ("google.rpc.ErrorInfo", "google/rpc/error_details.proto"),
        ("google.rpc.BadRequest.FieldViolation", "google/rpc/error_details.proto"),
        ("chatstore.v1.SessionService.NoSuchMethod", None),
        ("chatstore.v1.Session.no_such_field", None),
        ("nothing", None),
    ],
)
async def test_reflection_finds_types_methods_fields_and_error_details(
    target: str, symbol: str, file: str | None
) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
        [answer] = [answer async for answer in stub.ServerReflectionInfo(iter([request]))]

    if file is None:
        assert answer.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    else:
        first = descriptor_pb2.FileDescriptorProto.FromString(
            answer.file_descriptor_response.file_descriptor_proto[0]
        )
        assert first.name == file
