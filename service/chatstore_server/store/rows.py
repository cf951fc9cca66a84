"""Database rows to records, and records to column values: one place for both."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Integer, Row, type_coerce

from chatstore_server.store.records import (
    AccessMode,
    CheckpointRecord,
    EventRecord,
    ForkSource,
    MessageRecord,
    PeerKind,
    Retention,
    Role,
    SessionKey,
    SessionRecord,
    SessionStatus,
    TokenUsage,
)
from chatstore_server.store.schema import messages, sessions
from chatstore_server.store.types import EnumText, UUIDText

# Stored value -> enum member by dict lookup: calling the enum class costs about ten times as much.
_ROLES = {member.value: member for member in Role}
_STATUSES = {member.value: member for member in SessionStatus}
_RETENTIONS = {member.value: member for member in Retention}
_ACCESS_MODES = {member.value: member for member in AccessMode}
_PEER_KINDS = {member.value: member for member in PeerKind}


def _columns(row: Row[Any] | Mapping[str, Any]) -> Mapping[str, Any]:
    """A row's values by column name: a SQLAlchemy row's mapping, or a `fetch` row as it is."""
    if type(row) is dict:
        return row
    return cast(Mapping[str, Any], row._mapping) if isinstance(row, Row) else row


_new_tuple = tuple.__new__


def session_from_columns(
    id: str,
    tenant_id: str,
    agent_id: str,
    title: str,
    metadata: dict[str, Any] | None,
    create_time: datetime,
    update_time: datetime,
    message_count: int,
    last_seq: int,
    key_channel: str | None,
    key_account_id: Any,
    key_peer_kind: Any,
    key_peer_id: Any,
    status: str,
    retention: str,
    access_mode: str,
    model: str,
    persona_id: str,
    recap: str,
    labels: dict[str, str] | None,
    pin_time: datetime | None,
    archive_time: datetime | None,
    delete_time: datetime | None,
    expire_time: datetime | None,
    last_message_time: datetime | None,
    input_tokens: int,
    output_tokens: int,
    total_tokens: int,
    event_count: int,
    checkpoint_count: int,
    size_bytes: int,
    last_message_preview: str,
    revision: int,
    last_event_seq: int,
    compacted_through_seq: int,
    fork_session_id: str | None,
    fork_message_seq: Any,
    fork_event_seq: Any,
    fork_checkpoint_id: uuid.UUID | None,
) -> SessionRecord:
    """A record from the values of every column of `sessions`, in the table's column
    order (a test holds the two together): `StoreConnection.fetch_into`'s `make` for
    statements that select or return the whole row, so no mapping is built per row."""
    return _new_tuple(
        SessionRecord,
        (
            id,
            tenant_id,
            agent_id,
            title,
            metadata,
            create_time,
            update_time,
            message_count,
            last_seq,
            None
            if key_channel is None
            else _new_tuple(
                SessionKey, (key_channel, key_account_id, _PEER_KINDS[key_peer_kind], key_peer_id)
            ),
            _STATUSES[status],
            _RETENTIONS[retention],
            _ACCESS_MODES[access_mode],
            model,
            persona_id,
            recap,
            labels or {},
            pin_time,
            archive_time,
            delete_time,
            expire_time,
            last_message_time,
            _new_tuple(TokenUsage, (input_tokens, output_tokens, total_tokens)),
            event_count,
            checkpoint_count,
            size_bytes,
            last_message_preview,
            revision,
            last_event_seq,
            compacted_through_seq,
            None
            if fork_session_id is None
            else _new_tuple(
                ForkSource, (fork_session_id, fork_message_seq, fork_event_seq, fork_checkpoint_id)
            ),
        ),
    )


_TOKEN_COLUMNS = ("input_tokens", "output_tokens", "total_tokens")


def session_after(before: SessionRecord, columns: Mapping[str, Any]) -> SessionRecord:
    """`before` with new values of some of the row's columns (named and valued as
    `session_from_columns` takes them): the record the whole new row would give, for
    columns of the record's own fields, `status` and the token counts.

    Raises:
        ValueError: A column that is not one of those.
    """
    changes = dict(columns)
    if "status" in changes:
        changes["status"] = _STATUSES[changes["status"]]
    if not changes.keys().isdisjoint(_TOKEN_COLUMNS):
        usage = before.token_usage
        changes["token_usage"] = _new_tuple(
            TokenUsage,
            (
                changes.pop("input_tokens", usage.input_tokens),
                changes.pop("output_tokens", usage.output_tokens),
                changes.pop("total_tokens", usage.total_tokens),
            ),
        )
    return before._replace(**changes)


SESSION_COLUMN_NAMES = tuple(c.name for c in sessions.c)
"""The columns `session_from_columns` takes, in order."""


def session_record(row: Row[Any] | Mapping[str, Any]) -> SessionRecord:
    """A record from a row holding every column of `sessions`."""
    m = _columns(row)
    return session_from_columns(*[m[name] for name in SESSION_COLUMN_NAMES])


def key_columns(key: SessionKey | None) -> dict[str, str | None]:
    """The `key_*` column values of a routing key (all None for no key)."""
    if key is None:
        return {
            "key_channel": None,
            "key_account_id": None,
            "key_peer_kind": None,
            "key_peer_id": None,
        }
    return {
        "key_channel": key.channel,
        "key_account_id": key.account_id,
        "key_peer_kind": key.peer_kind.value,
        "key_peer_id": key.peer_id,
    }


def token_columns(usage: TokenUsage) -> dict[str, int]:
    """The token-usage column values."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


# What a MessageRecord is read from: the rest of a message is in its body.
MESSAGE_COLUMNS = (
    type_coerce(messages.c.id, UUIDText()).label("id"),
    messages.c.session_id,
    messages.c.seq,
    messages.c.role,
    messages.c.body,
    messages.c.token_estimate,
    messages.c.size_bytes,
)


def page_columns(compacted_through_seq: Any) -> tuple[Any, ...]:
    """What a `StoredMessage` is read from, in its field order, as the database gives
    them (no conversion per row); `compacted_through_seq` is the session's column (or
    value) that says which messages are compacted."""
    return (
        messages.c.seq,
        messages.c.body,
        # Integer, not Boolean: SQLite's 0 or 1 as it is (PostgreSQL gives a bool), with
        # no conversion per row.
        type_coerce(messages.c.seq <= compacted_through_seq, Integer()).label("compacted"),
    )


def window_columns(compacted_through_seq: Any) -> tuple[Any, ...]:
    """What a `WindowMessage` is read from, in its field order (`compacted_through_seq`
    as in `page_columns`)."""
    return (
        *page_columns(compacted_through_seq),
        type_coerce(messages.c.role, EnumText(Role)).label("role"),
        messages.c.token_estimate,
    )


def message_record(
    row: Row[Any] | Mapping[str, Any], compacted_through_seq: int = 0
) -> MessageRecord:
    """A record from a row holding `MESSAGE_COLUMNS` (or more). `compacted_through_seq`
    is the session's: messages up to it are compacted."""
    m = _columns(row)
    return message_from_columns(
        m["id"],
        m["session_id"],
        m["seq"],
        m["role"],
        m["body"],
        m["token_estimate"],
        m["size_bytes"],
        compacted_through_seq,
    )


def message_from_columns(
    id: str,
    session_id: str,
    seq: int,
    role: str,
    body: bytes,
    token_estimate: int,
    size_bytes: int,
    compacted_through_seq: int = 0,
) -> MessageRecord:
    """A record from the values of `MESSAGE_COLUMNS` (plus, optionally, the session's
    `compacted_through_seq`) in that order: `StoreConnection.fetch_into`'s `make` for
    pages, which skips a mapping per row."""
    return MessageRecord(
        id,
        session_id,
        seq,
        _ROLES[role],
        body,
        token_estimate,
        size_bytes,
        seq <= compacted_through_seq,
    )


def message_values(
    tenant_id: str,
    record: MessageRecord,
    id: uuid.UUID,
    token_count: int | None,
    create_time: datetime,
    tool_call_id: str,
) -> dict[str, Any]:
    """The column values of a message of `tenant_id` to insert: the record's, its `id`
    as a UUID, and the body's fields that have columns too (`store.bodies`)."""
    return {
        "tenant_id": tenant_id,
        "id": id,
        "session_id": record.session_id,
        "seq": record.seq,
        "role": record.role.value,
        "token_count": token_count,
        "create_time": create_time,
        "tool_call_id": tool_call_id,
        "size_bytes": record.size_bytes,
        "token_estimate": record.token_estimate,
        "body": record.body,
    }


def event_record(row: Row[Any]) -> EventRecord:
    """A record from a row holding every column of `events`."""
    m = row._mapping
    return EventRecord(
        m["id"], m["session_id"], m["seq"], m["type"], m["payload"], m["create_time"]
    )


def checkpoint_record(row: Row[Any]) -> CheckpointRecord:
    """A record from a row holding every column of `checkpoints`."""
    m = row._mapping
    return CheckpointRecord(
        id=m["id"],
        session_id=m["session_id"],
        message_seq=m["message_seq"],
        event_seq=m["event_seq"],
        label=m["label"],
        description=m["description"],
        tags=tuple(m["tags"] or ()),
        create_time=m["create_time"],
    )
