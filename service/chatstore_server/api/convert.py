"""Conversion between protobuf messages and store records: the only place it happens,
but for a stored message's body, which the store keeps in the Message wire format
(`store.bodies`) and which is parsed here as it is."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from chatstore.v1 import (
    checkpoint_pb2,
    event_pb2,
    message_pb2,
    session_pb2,
    session_service_pb2,
    shared_state_pb2,
)
from chatstore_server.store import (
    ABSENT,
    AccessMode,
    CheckpointRecord,
    ContextWindowRecord,
    EventRecord,
    NewEvent,
    NewMessage,
    PeerKind,
    Retention,
    SessionKey,
    SessionRecord,
    SessionStatus,
    SharedStateRecord,
    TokenUsage,
    ToolCallRecord,
)
from chatstore_server.store.bodies import ROLE_FROM_PROTO
from chatstore_server.timestamps import set_timestamp

STATUS_TO_PROTO = {
    SessionStatus.ACTIVE: session_pb2.SESSION_STATUS_ACTIVE,
    SessionStatus.IDLE: session_pb2.SESSION_STATUS_IDLE,
    SessionStatus.COMPACTED: session_pb2.SESSION_STATUS_COMPACTED,
    SessionStatus.ARCHIVED: session_pb2.SESSION_STATUS_ARCHIVED,
}
STATUS_FROM_PROTO = {proto: status for status, proto in STATUS_TO_PROTO.items()}
RETENTION_TO_PROTO = {
    Retention.EPHEMERAL: session_pb2.RETENTION_EPHEMERAL,
    Retention.SAVED: session_pb2.RETENTION_SAVED,
}
RETENTION_FROM_PROTO = {proto: value for value, proto in RETENTION_TO_PROTO.items()}
ACCESS_MODE_TO_PROTO = {
    AccessMode.READ_WRITE: session_pb2.ACCESS_MODE_READ_WRITE,
    AccessMode.READ_ONLY: session_pb2.ACCESS_MODE_READ_ONLY,
}
ACCESS_MODE_FROM_PROTO = {proto: value for value, proto in ACCESS_MODE_TO_PROTO.items()}
PEER_KIND_TO_PROTO = {
    PeerKind.DM: session_pb2.PEER_KIND_DM,
    PeerKind.GROUP: session_pb2.PEER_KIND_GROUP,
}
PEER_KIND_FROM_PROTO = {proto: value for value, proto in PEER_KIND_TO_PROTO.items()}


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A datetime (naive means UTC) as a Timestamp (None stays unset)."""
    if value is None:
        return None
    result = timestamp_pb2.Timestamp()
    set_timestamp(result, value)
    return result


def struct_to_dict(value: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as the JSON object it stands for."""
    result: dict[str, Any] = json_format.MessageToDict(value)
    return result


def value_to_json(value: struct_pb2.Value) -> Any:
    """A protobuf Value as the JSON value it stands for."""
    return json_format.MessageToDict(value)


def compact_json(value: Any) -> str:
    """A JSON value's compact text, numbers as Python holds them (integers exact) and
    object keys sorted: PostgreSQL's jsonb keeps no key order, so sorting is what makes
    every backend, and an append's answer and a later read, give the same text."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def etag(revision: int) -> str:
    """The etag of a session revision."""
    return str(revision)


def key_to_proto(key: SessionKey) -> session_pb2.SessionKey:
    """A routing key as the API's SessionKey."""
    return session_pb2.SessionKey(
        channel=key.channel,
        account_id=key.account_id,
        peer_kind=PEER_KIND_TO_PROTO[key.peer_kind],
        peer_id=key.peer_id,
    )


def key_from_proto(key: session_pb2.SessionKey) -> SessionKey:
    """A validated SessionKey as a store key."""
    return SessionKey(
        channel=key.channel,
        account_id=key.account_id,
        peer_kind=PEER_KIND_FROM_PROTO[key.peer_kind],
        peer_id=key.peer_id,
    )


def token_usage_from_proto(usage: session_pb2.TokenUsage) -> TokenUsage:
    """A validated TokenUsage as the store's."""
    return TokenUsage(usage.input_tokens, usage.output_tokens, usage.total_tokens)


def session_to_proto(
    record: SessionRecord, recent_messages: Sequence[StoredParts] = ()
) -> session_pb2.Session:
    """A stored session as the API's Session (`recent_messages` oldest first).

    Optional parts (metadata, labels, key, fork source, the optional times) are set
    only when present: an empty map or an unset field passed to the constructor still
    costs (GetSession's whole handler is a few dozen microseconds).
    """
    usage = record.token_usage
    session = session_pb2.Session(
        id=str(record.id),
        tenant_id=record.tenant_id,
        agent_id=record.agent_id,
        title=record.title,
        message_count=record.message_count,
        last_seq=record.last_seq,
        status=STATUS_TO_PROTO[record.status],
        retention=RETENTION_TO_PROTO[record.retention],
        access_mode=ACCESS_MODE_TO_PROTO[record.access_mode],
        model=record.model,
        persona_id=record.persona_id,
        recap=record.recap,
        token_usage=session_pb2.TokenUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
        ),
        event_count=record.event_count,
        checkpoint_count=record.checkpoint_count,
        size_bytes=record.size_bytes,
        last_message_preview=record.last_message_preview,
        etag=etag(record.revision),
        last_event_seq=record.last_event_seq,
        compacted_through_seq=record.compacted_through_seq,
    )
    set_timestamp(session.create_time, record.create_time)
    set_timestamp(session.update_time, record.update_time)
    if record.metadata:
        session.metadata.update(record.metadata)
        session.metadata_json = compact_json(record.metadata)
    if record.labels:
        session.labels.update(record.labels)
    if record.key is not None:
        session.key.CopyFrom(key_to_proto(record.key))
    for field, value in (
        ("pin_time", record.pin_time),
        ("archive_time", record.archive_time),
        ("delete_time", record.delete_time),
        ("expire_time", record.expire_time),
        ("last_message_time", record.last_message_time),
    ):
        if value is not None:
            set_timestamp(getattr(session, field), value)
    if record.fork_source is not None:
        source = record.fork_source
        session.fork_source.SetInParent()
        session.fork_source.session_id = str(source.session_id)
        session.fork_source.message_seq = source.message_seq
        session.fork_source.event_seq = source.event_seq
        session.fork_source.checkpoint_id = str(source.checkpoint_id or "")
    if recent_messages:
        add_messages(session.recent_messages, recent_messages, session.id)
    return session


class StoredParts(Protocol):
    """What a Message is built from: a `StoredMessage` or a `MessageRecord`."""

    @property
    def seq(self) -> int: ...
    @property
    def body(self) -> bytes: ...
    @property
    def compacted(self) -> int: ...


def _message(
    make: Callable[..., message_pb2.Message], record: StoredParts, session_id: str
) -> message_pb2.Message:
    """The message from its seq and its stored body (`store.bodies`: every other
    field but the session id and the compaction mark, already in the Message wire
    format, parsed in C)."""
    message = make(session_id=session_id, seq=record.seq)
    message.MergeFromString(record.body)
    if record.compacted:  # set only when true: a keyword argument costs every message
        message.compacted = True
    return message


def message_to_proto(record: StoredParts, session_id: str) -> message_pb2.Message:
    """A stored message of the session `session_id` (its id as text) as the API's
    Message."""
    return _message(message_pb2.Message, record, session_id)


def add_messages(
    target: RepeatedCompositeFieldContainer[message_pb2.Message],
    records: Iterable[StoredParts],
    session_id: str,
) -> None:
    """Append a session's stored messages to a repeated Message field, built in place.

    What `message_to_proto` does for each, without the copy that assigning a list of
    built messages makes. `session_id` is the session's id as text (made once, not per
    message).
    """
    add = target.add
    for record in records:
        _message(add, record, session_id)


def new_message(
    message: message_pb2.Message,
    *,
    id: Any,
    create_time: datetime | None,
    structured_content: Any = ABSENT,
    metadata: dict[str, Any] | None = None,
) -> NewMessage:
    """A validated Message (its id and create time already parsed) as a NewMessage;
    `structured_content` and `metadata` as parsed from the JSON text fields, when the
    message gave them so (the texts are kept verbatim)."""
    record = NewMessage(
        role=ROLE_FROM_PROTO[message.role],
        content=message.content,
        tool_calls=tuple(
            ToolCallRecord(id=c.id, name=c.name, arguments=c.arguments) for c in message.tool_calls
        )
        if message.tool_calls
        else (),
        token_count=message.token_count if message.HasField("token_count") else None,
        id=id,
        create_time=create_time,
        structured_content=value_to_json(message.structured_content)
        if message.HasField("structured_content")
        else ABSENT,
        tool_call_id=message.tool_call_id,
        name=message.name,
        agent_id=message.agent_id,
        model=message.model,
        # json_format is pure Python: skip it for the usual empty metadata.
        metadata=struct_to_dict(message.metadata) if message.metadata.fields else None,
    )
    if message.structured_content_json:
        record = dataclasses.replace(
            record,
            structured_content=structured_content,
            structured_content_json=message.structured_content_json,
        )
    if message.metadata_json:
        record = dataclasses.replace(record, metadata=metadata, metadata_json=message.metadata_json)
    return record


def new_event(
    event: event_pb2.Event, *, create_time: datetime | None, custom_data: Any = ABSENT
) -> NewEvent:
    """A validated Event (one payload set) as a NewEvent: the payload's field name and
    its fields as JSON; a custom event's data as parsed from `data_json`
    (`custom_data`) when given so, its numbers exact."""
    kind = event.WhichOneof("payload")
    assert kind is not None
    payload = json_format.MessageToDict(getattr(event, kind), preserving_proto_field_name=True)
    if kind == "custom":
        payload.pop("data_json", None)
        if custom_data is not ABSENT:
            payload["data"] = custom_data
    return NewEvent(type=kind, payload=payload, create_time=create_time)


def event_to_proto(record: EventRecord) -> event_pb2.Event:
    """A stored event as the API's Event (a custom event's data in both forms)."""
    event = event_pb2.Event(
        id=str(record.id),
        session_id=str(record.session_id),
        seq=record.seq,
        create_time=timestamp(record.create_time),
    )
    json_format.ParseDict(record.payload, getattr(event, record.type))
    if record.type == "custom" and "data" in record.payload:
        event.custom.data_json = compact_json(record.payload["data"])
    return event


def checkpoint_to_proto(record: CheckpointRecord) -> checkpoint_pb2.Checkpoint:
    """A stored checkpoint as the API's Checkpoint (its payload and writes when read)."""
    checkpoint = checkpoint_pb2.Checkpoint(
        id=record.id,
        session_id=record.session_id,
        message_seq=record.message_seq,
        event_seq=record.event_seq,
        label=record.label,
        description=record.description,
        tags=record.tags,
        create_time=timestamp(record.create_time),
        namespace=record.namespace,
        parent_id=record.parent_id,
        payload=record.payload or b"",
        payload_type=record.payload_type,
        pending_writes=[
            checkpoint_pb2.CheckpointWrite(
                task_id=w.task_id,
                index=w.index,
                channel=w.channel,
                payload=w.payload or b"",
                payload_type=w.payload_type,
                task_path=w.task_path,
            )
            for w in record.pending_writes
        ],
    )
    if record.metadata:
        checkpoint.metadata.update(record.metadata)
        checkpoint.metadata_json = compact_json(record.metadata)
    return checkpoint


def shared_state_to_proto(record: SharedStateRecord) -> shared_state_pb2.SharedState:
    """A shared state as the API's SharedState."""
    state = shared_state_pb2.SharedState(
        name=record.name,
        data_json=compact_json(record.data),
        etag=etag(record.revision),
        update_time=timestamp(record.update_time),
    )
    state.data.update(record.data)
    return state


def context_window_to_proto(
    record: ContextWindowRecord, session_id: str
) -> session_service_pb2.ContextWindow:
    """A context window of the session `session_id` (its id as text) as the API's
    ContextWindow."""
    window = session_service_pb2.ContextWindow(
        recap=record.recap,
        compacted_through_seq=record.compacted_through_seq,
        token_count=record.token_count,
        truncated=record.truncated,
    )
    add_messages(window.messages, record.messages, session_id)
    return window
