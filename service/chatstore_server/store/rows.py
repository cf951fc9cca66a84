"""Database rows to records, and records to column values: one place for both."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from chatstore_server.store.records import (
    AccessMode,
    MessageRecord,
    PeerKind,
    Retention,
    Role,
    SessionKey,
    SessionRecord,
    SessionStatus,
    TokenUsage,
    ToolCallRecord,
)


def session_record(row: Row[Any]) -> SessionRecord:
    """A record from a row holding every column of `sessions`."""
    m = row._mapping
    channel = m["key_channel"]
    return SessionRecord(
        id=m["id"],
        tenant_id=m["tenant_id"],
        agent_id=m["agent_id"],
        title=m["title"],
        metadata=m["metadata"],
        create_time=m["create_time"],
        update_time=m["update_time"],
        message_count=m["message_count"],
        last_seq=m["last_seq"],
        key=None
        if channel is None
        else SessionKey(
            channel, m["key_account_id"], PeerKind(m["key_peer_kind"]), m["key_peer_id"]
        ),
        status=SessionStatus(m["status"]),
        retention=Retention(m["retention"]),
        access_mode=AccessMode(m["access_mode"]),
        model=m["model"],
        persona_id=m["persona_id"],
        recap=m["recap"],
        labels=m["labels"] or {},
        pin_time=m["pin_time"],
        archive_time=m["archive_time"],
        delete_time=m["delete_time"],
        expire_time=m["expire_time"],
        last_message_time=m["last_message_time"],
        token_usage=TokenUsage(m["input_tokens"], m["output_tokens"], m["total_tokens"]),
        event_count=m["event_count"],
        checkpoint_count=m["checkpoint_count"],
        size_bytes=m["size_bytes"],
        last_message_preview=m["last_message_preview"],
        revision=m["revision"],
    )


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


def tool_calls_json(calls: tuple[ToolCallRecord, ...]) -> list[dict[str, str]] | None:
    """Tool calls as stored (a JSON array), None for none."""
    if not calls:
        return None
    return [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]


def message_record(row: Row[Any]) -> MessageRecord:
    """A record from a row holding every column of `messages`."""
    m = row._mapping
    calls = m["tool_calls"] or ()
    return MessageRecord(
        id=m["id"],
        session_id=m["session_id"],
        seq=m["seq"],
        role=Role(m["role"]),
        content=m["content"],
        tool_calls=tuple(ToolCallRecord(c["id"], c["name"], c["arguments"]) for c in calls),
        token_count=m["token_count"],
        create_time=m["create_time"],
    )
