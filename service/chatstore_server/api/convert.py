"""Conversion between protobuf messages and store records: the only place it happens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from chatstore.v1 import message_pb2, session_pb2
from chatstore_server.store import MessageRecord, NewMessage, Role, SessionRecord, ToolCallRecord

ROLE_TO_PROTO = {
    Role.USER: message_pb2.ROLE_USER,
    Role.ASSISTANT: message_pb2.ROLE_ASSISTANT,
    Role.SYSTEM: message_pb2.ROLE_SYSTEM,
    Role.TOOL: message_pb2.ROLE_TOOL,
}
ROLE_FROM_PROTO = {proto: role for role, proto in ROLE_TO_PROTO.items()}


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """An aware datetime as a Timestamp."""
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def struct_to_dict(value: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as the JSON object it stands for."""
    result: dict[str, Any] = json_format.MessageToDict(value)
    return result


def dict_to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    """A JSON object as a Struct."""
    result = struct_pb2.Struct()
    result.update(value)
    return result


def session_to_proto(record: SessionRecord) -> session_pb2.Session:
    """A stored session as the API's Session."""
    return session_pb2.Session(
        id=str(record.id),
        tenant_id=record.tenant_id,
        agent_id=record.agent_id,
        title=record.title,
        metadata=dict_to_struct(record.metadata) if record.metadata else None,
        create_time=timestamp(record.create_time),
        update_time=timestamp(record.update_time),
        message_count=record.message_count,
        last_seq=record.last_seq,
    )


def message_to_proto(record: MessageRecord) -> message_pb2.Message:
    """A stored message as the API's Message."""
    return message_pb2.Message(
        id=str(record.id),
        session_id=str(record.session_id),
        seq=record.seq,
        role=ROLE_TO_PROTO[record.role],
        content=record.content,
        tool_calls=[
            message_pb2.ToolCall(id=c.id, name=c.name, arguments=c.arguments)
            for c in record.tool_calls
        ],
        token_count=record.token_count,
        create_time=timestamp(record.create_time),
    )


def new_message(
    message: message_pb2.Message, *, id: Any, create_time: datetime | None
) -> NewMessage:
    """A validated Message (its id and create time already parsed) as a NewMessage."""
    return NewMessage(
        role=ROLE_FROM_PROTO[message.role],
        content=message.content,
        tool_calls=tuple(
            ToolCallRecord(id=c.id, name=c.name, arguments=c.arguments) for c in message.tool_calls
        ),
        token_count=message.token_count if message.HasField("token_count") else None,
        id=id,
        create_time=create_time,
    )
