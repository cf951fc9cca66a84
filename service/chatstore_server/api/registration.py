"""Services added to the gRPC server as generic handlers, never as registered methods.

The generated `add_<Service>Servicer_to_server` functions register each method twice:
as a generic handler and as a "registered method" (`add_registered_method_handlers`).
grpcio's asyncio server (from 1.81, still in 1.85) pays for registered methods on every
call: it keeps one pending call request per registered method, plus one for everything
else, and waits on all of them with `asyncio.wait` for each incoming RPC
(grpc/grpc#43092; the fix under review is grpc/grpc#43461). With SessionService's,
health's and reflection's methods registered that way, a GetSession cost the server
~13% more instructions (callgrind, 1,000 calls: 1,028k -> 897k per call with
SessionService alone made generic). Added here from the service descriptor, each method
gets the same handler the generated code would build, and every call waits on one
pending request, as in the echo server that the benchmark measures against.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

# Per (client streaming, server streaming): the handler constructor for that arity.
_HANDLER_FOR: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler[Any, Any]]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


Decoder = Callable[[type[Message]], Callable[[bytes], Any]]
"""Makes the request deserializer of a message class (default: its `FromString`)."""


def method_handlers(
    service: ServiceDescriptor,
    servicer: Any,
    decoder: Decoder | None = None,
    encoded: Collection[str] = (),
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """A handler per method of `service`, by method name, calling `servicer`'s
    attribute of that name, with the request and response types the descriptor names
    (what the generated `add_<Service>Servicer_to_server` builds); requests are parsed
    by `decoder(request class)` when given. The methods named in `encoded` may answer
    with their response's encoding (`bytes`) instead of the message.

    Raises:
        AttributeError: `servicer` lacks one of the service's methods.
    """
    handlers = {}
    for method in service.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        make = _HANDLER_FOR[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=decoder(request) if decoder else request.FromString,
            response_serializer=_serializer(response)
            if method.name in encoded
            else response.SerializeToString,
        )
    return handlers


def _serializer(response: type[Message]) -> Callable[[Any], bytes]:
    """Serializes a `response` message, or passes on its encoding when the handler
    answered with `bytes` (as ListMessages does: `api.wire`)."""
    serialize = response.SerializeToString

    def serialized(message: Any) -> bytes:
        if type(message) is bytes:
            return message
        data: bytes = serialize(message)
        return data

    return serialized


def add_service(
    server: grpc.aio.Server,
    service: ServiceDescriptor,
    servicer: Any,
    decoder: Decoder | None = None,
    encoded: Collection[str] = (),
) -> None:
    """Serve `service` from `servicer` on `server` (before it starts), as a generic
    handler only; requests parsed and answers serialized as in `method_handlers`.

    Raises:
        AttributeError: `servicer` lacks one of the service's methods.
    """
    handler = grpc.method_handlers_generic_handler(
        service.full_name, method_handlers(service, servicer, decoder, encoded)
    )
    server.add_generic_rpc_handlers((handler,))
