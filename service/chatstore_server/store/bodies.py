"""A stored message's body: its fields as one `chatstore.v1.Message` in protobuf wire
format, in the `messages.body` column.

The body holds every field of the message except `session_id` and `seq` (columns: the
session is the row's, the seq is assigned when the append commits) and `compacted`
(derived from the session). `id`, `role`, `token_count`, `create_time` and
`tool_call_id` are in the body *and* in columns (the columns are what SQL looks up,
filters and sums on; messages are never changed after they are written, so the two
cannot disagree, but for the id of a fork's copy, which the fork appends to the body:
the last of a field's values is the one a parser keeps). The content is in the body
only. A page of messages is then each row's session id, seq and body written one after
the other (`store.encoded`; protobuf merges concatenated encodings), and a single
message is its body parsed in C into a Message given the session id, seq and
compaction mark.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from google.protobuf import json_format

from chatstore.v1 import message_pb2
from chatstore_server.store.records import (
    ABSENT,
    MessageRecord,
    NewMessage,
    Role,
    ToolCallRecord,
)
from chatstore_server.store.schema import PREVIEW_CHARS
from chatstore_server.timestamps import set_timestamp

# A Role's number in the API (`chatstore.v1.Role`), both ways.
ROLE_TO_PROTO = {
    Role.USER: message_pb2.ROLE_USER,
    Role.ASSISTANT: message_pb2.ROLE_ASSISTANT,
    Role.SYSTEM: message_pb2.ROLE_SYSTEM,
    Role.TOOL: message_pb2.ROLE_TOOL,
}
ROLE_FROM_PROTO = {number: role for role, number in ROLE_TO_PROTO.items()}


class MessageBody(NamedTuple):
    """What a body holds, as record values."""

    role: Role
    token_count: int | None
    create_time: datetime
    tool_calls: tuple[ToolCallRecord, ...] = ()
    structured_content: Any = ABSENT
    """Any JSON value (None is JSON's null); `ABSENT` means none."""
    tool_call_id: str = ""
    name: str = ""
    agent_id: str = ""
    model: str = ""
    metadata: dict[str, Any] | None = None
    id: str = ""
    """The message's id as stored with it ("" in bodies written before 0009)."""
    content: str = ""


def encode(message: NewMessage, id: uuid.UUID | str, create_time: datetime) -> bytes:
    """The body of `message`, stored under `id` and created at `create_time`
    (timezone-aware).

    Deterministic: the same message, id and time give the same bytes.
    """
    body = message_pb2.Message(
        id=str(id),
        role=ROLE_TO_PROTO[message.role],
        content=message.content,
        tool_calls=[
            message_pb2.ToolCall(id=c.id, name=c.name, arguments=c.arguments)
            for c in message.tool_calls
        ]
        or None,
        token_count=message.token_count,
        tool_call_id=message.tool_call_id,
        name=message.name,
        agent_id=message.agent_id,
        model=message.model,
    )
    set_timestamp(body.create_time, create_time)
    if message.structured_content is not ABSENT:
        # Both forms are kept: the caller's JSON text verbatim (or the value's), and
        # the Value view, so that reads parse both in C and convert nothing.
        json_format.ParseDict(message.structured_content, body.structured_content)
        body.structured_content_json = structured_text(message)
    if message.metadata or message.metadata_json:
        body.metadata.update(message.metadata or {})
        body.metadata_json = message.metadata_json or _compact(message.metadata)
    return body.SerializeToString(deterministic=True)


def structured_text(message: NewMessage) -> str:
    """A message's structured content as JSON text: the caller's, or the value's
    (compact); "" when it has none."""
    if message.structured_content is ABSENT:
        return ""
    return message.structured_content_json or _compact(message.structured_content)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def with_json_texts(body: bytes) -> bytes | None:
    """A body written before messages kept their JSON texts (`structured_content_json`,
    `metadata_json`), with the texts added as reads made them (compact, keys sorted);
    None when `body` needs nothing. For migration 0008: since it ran, every body holds
    the text of every value it holds, and reads copy bodies as they are.

    Raises:
        google.protobuf.message.DecodeError: `body` is not a Message.
    """
    parsed = message_pb2.Message.FromString(body)
    missing_structured = (
        parsed.HasField("structured_content") and not parsed.structured_content_json
    )
    missing_metadata = bool(parsed.metadata.fields) and not parsed.metadata_json
    if not (missing_structured or missing_metadata):
        return None
    if missing_structured:
        value = json_format.MessageToDict(parsed.structured_content)
        parsed.structured_content_json = _sorted(value)
    if missing_metadata:
        parsed.metadata_json = _sorted(json_format.MessageToDict(parsed.metadata))
    return parsed.SerializeToString(deterministic=True)


def _with_texts(body: bytes) -> bytes:
    return with_json_texts(body) or body


def _sorted(value: Any) -> str:
    # What `api.convert.compact_json` writes: the text reads gave these bodies.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def decode(body: bytes) -> MessageBody:
    """The values in a body (the inverse of `encode`).

    Raises:
        google.protobuf.message.DecodeError: `body` is not a Message.
    """
    parsed = message_pb2.Message.FromString(body)
    return MessageBody(
        role=ROLE_FROM_PROTO[parsed.role],
        token_count=parsed.token_count if parsed.HasField("token_count") else None,
        create_time=parsed.create_time.ToDatetime(UTC),
        tool_calls=tuple(ToolCallRecord(c.id, c.name, c.arguments) for c in parsed.tool_calls),
        structured_content=json_format.MessageToDict(parsed.structured_content)
        if parsed.HasField("structured_content")
        else ABSENT,
        tool_call_id=parsed.tool_call_id,
        name=parsed.name,
        agent_id=parsed.agent_id,
        model=parsed.model,
        metadata=json_format.MessageToDict(parsed.metadata) if parsed.metadata.fields else None,
        id=parsed.id,
        content=parsed.content,
    )


def preview(body: bytes) -> str:
    """A session's `last_message_preview` when this body's message is its newest: the
    first `PREVIEW_CHARS` characters of the content.

    Raises:
        google.protobuf.message.DecodeError: `body` is not a Message.
    """
    return message_pb2.Message.FromString(body).content[:PREVIEW_CHARS]


def pack(records: Sequence[MessageRecord]) -> bytes:
    """Stored messages as bytes (JSON: their columns, bodies in base64), to keep after
    the rows are gone: what a rewind removed, for its retries (`unpack`)."""
    return json.dumps(
        [
            [
                r.id,
                r.session_id,
                r.seq,
                r.role.value,
                base64.b64encode(r.body).decode(),
                r.token_estimate,
                r.size_bytes,
                r.compacted,
            ]
            for r in records
        ],
        separators=(",", ":"),
    ).encode()


def unpack(packed: bytes) -> list[MessageRecord]:
    """The messages `pack` packed. A pack made before migration 0009 holds each
    message's content beside a body without it or the id (`with_id_and_content`), and
    one made before 0008 may hold bodies without their JSON texts (`with_json_texts`)."""
    records = []
    for entry in json.loads(packed):
        if len(entry) == 9:  # before 0009: the content was a column
            id, session_id, seq, role, content, body, estimate, size, compacted = entry
            body = with_id_and_content(_with_texts(base64.b64decode(body)), id, content)
        else:
            id, session_id, seq, role, body, estimate, size, compacted = entry
            body = base64.b64decode(body)
        records.append(
            MessageRecord(id, session_id, seq, Role(role), body, estimate, size, compacted)
        )
    return records


def with_id_and_content(body: bytes, id: str, content: str) -> bytes:
    """A body written before migration 0009, which kept the id and the content in
    columns only, with both added (as fields in front of the rest: a parser reads the
    fields of a Message in any order): for migration 0009, and for the rewind packs
    made before it (`unpack`)."""
    head = message_pb2.Message(id=id, content=content).SerializeToString(deterministic=True)
    return head + body
