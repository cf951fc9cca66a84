"""Requests as they arrive: parsed from their bytes here, not by grpcio.

grpcio answers a request its deserializer cannot parse (a string field holding invalid
UTF-8, messages nested deeper than protobuf's recursion limit of 100) with UNKNOWN and
the parser's exception text, before any handler runs. Parsed here instead, such a
request becomes a `Rejected` value that the call interceptor answers with
INVALID_ARGUMENT (reason `MALFORMED_REQUEST`) and nothing of the exception.

One rule holds for every string of every request, so it is checked here too: no string
field, map key or `google.protobuf.Struct` key or value may hold U+0000 (NUL).
PostgreSQL's `text` and `jsonb` cannot store it and SQLite could, so both backends
refuse it alike, with INVALID_ARGUMENT naming each field that holds one. The walk over
the request runs only when its bytes hold a 0x00 byte at all: most requests' do not
(a NUL character is encoded as that byte, and proto3 leaves zero-valued scalars out).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from chatstore_server.api.errors import ApiError, FieldViolation, invalid_argument

NUL = "\x00"
_NUL_DESCRIPTION = "must not contain U+0000 (NUL)"
_STRING = FieldDescriptor.TYPE_STRING
_MESSAGE = FieldDescriptor.TYPE_MESSAGE
_STRUCT = "google.protobuf.Struct"
_VALUE = "google.protobuf.Value"
_LIST_VALUE = "google.protobuf.ListValue"


class Rejected:
    """A request refused before its handler: what the interceptor answers instead."""

    __slots__ = ("error",)

    def __init__(self, error: ApiError) -> None:
        self.error = error


def malformed(message_type: str) -> ApiError:
    """INVALID_ARGUMENT for a request that is not a valid `message_type`."""
    return ApiError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"the request is not a valid {message_type}: a string field holds invalid UTF-8,"
        " or messages (Struct values count) nest more than 100 deep",
        reason="MALFORMED_REQUEST",
    )


def decoder(message_class: type[Message]) -> Callable[[bytes], Any]:
    """A gRPC request deserializer for `message_class` that never raises: the parsed
    request, or a `Rejected` when it cannot be parsed or a string holds a NUL."""
    parse = message_class.FromString
    name = message_class.DESCRIPTOR.full_name

    def decode(raw: bytes) -> Any:
        try:
            request = parse(raw)
        except DecodeError:
            return Rejected(malformed(name))
        if b"\x00" in raw:
            found = list(nul_fields(request))
            if found:
                return Rejected(
                    invalid_argument([FieldViolation(path, _NUL_DESCRIPTION) for path in found])
                )
        return request

    return decode


# How a field can hold a string, by kind: what `nul_fields` does with it.
_TEXT, _TEXTS, _ONE, _MANY, _MAP = range(5)
_Plan = tuple[tuple[str, int, Any], ...]


@functools.cache
def _plan(descriptor: Descriptor) -> _Plan:
    """The fields of a message type that can hold a string: name, kind, and for a map
    whether its keys are text and its values' type. Worked out once per type (each
    descriptor attribute is a call into the protobuf runtime)."""
    plan: list[tuple[str, int, Any]] = []
    for field in descriptor.fields:
        if field.type == _STRING:
            plan.append((field.name, _TEXTS if field.is_repeated else _TEXT, None))
        elif field.type == _MESSAGE and field.message_type is not None:
            entry = field.message_type
            if entry.GetOptions().map_entry:
                key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
                plan.append((field.name, _MAP, (key.type == _STRING, value.type)))
            else:
                plan.append((field.name, _MANY if field.is_repeated else _ONE, None))
    return tuple(plan)


def nul_fields(message: Message, prefix: str = "") -> Iterator[str]:
    """The paths (`messages[2].content`, `session.labels['k']`, `session.metadata['a'][0]`)
    of the strings in `message` that hold U+0000, map keys and Struct keys included."""
    descriptor = message.DESCRIPTOR
    full_name = descriptor.full_name
    if full_name == _STRUCT:
        for key, value in message.fields.items():  # type: ignore[attr-defined]
            path = f"{prefix}[{key!r}]"
            if NUL in key:
                yield path
            yield from nul_fields(value, path)
        return
    if full_name == _LIST_VALUE:
        for index, value in enumerate(message.values):  # type: ignore[attr-defined]
            yield from nul_fields(value, f"{prefix}[{index}]")
        return
    if full_name == _VALUE:
        kind = message.WhichOneof("kind")
        if kind == "string_value" and NUL in message.string_value:  # type: ignore[attr-defined]
            yield prefix
        elif kind in ("struct_value", "list_value"):
            yield from nul_fields(getattr(message, kind), prefix)
        return
    # By name from the plan, not ListFields(), which builds a descriptor per set field.
    for name, kind, detail in _plan(descriptor):
        if kind == _TEXT:
            if NUL in getattr(message, name):
                yield f"{prefix}.{name}" if prefix else name
        elif kind == _ONE:
            if message.HasField(name):
                yield from nul_fields(
                    getattr(message, name), f"{prefix}.{name}" if prefix else name
                )
        else:
            value = getattr(message, name)
            if not value:
                continue
            path = f"{prefix}.{name}" if prefix else name
            if kind == _TEXTS:
                yield from (f"{path}[{i}]" for i, item in enumerate(value) if NUL in item)
            elif kind == _MANY:
                for index, item in enumerate(value):
                    yield from nul_fields(item, f"{path}[{index}]")
            else:
                yield from _map_nul_fields(detail, value, path)


def _map_nul_fields(types: tuple[bool, int], entries: Any, path: str) -> Iterator[str]:
    key_is_text, value_type = types
    for key, value in entries.items():
        where = f"{path}[{key!r}]"
        if key_is_text and NUL in key:
            yield where
        if value_type == _STRING:
            if NUL in value:
                yield where
        elif value_type == _MESSAGE:
            yield from nul_fields(value, where)
