"""ForkSession: a new session whose history is a copy of another's up to a point.

The copy is made in SQL (`INSERT ... SELECT`), so a fork of a long history costs a few
statements, not one per message; copied rows get fresh UUID v4 ids, which the same
statement appends to their bodies (`store.bodies`: of a field given twice, a parser
keeps the last).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    case,
    func,
    insert,
    literal,
    literal_column,
    select,
)

from chatstore_server.ids import uuid4
from chatstore_server.store import bodies
from chatstore_server.store.connection import StoreConnection
from chatstore_server.store.database import Database
from chatstore_server.store.errors import InvalidReferenceError, NotFoundError, translate_errors
from chatstore_server.store.records import (
    AccessMode,
    Retention,
    Role,
    SessionPolicy,
    SessionRecord,
    SessionStatus,
)
from chatstore_server.store.rows import session_record
from chatstore_server.store.schema import (
    checkpoints,
    events,
    messages,
    session_labels,
    sessions,
)
from chatstore_server.store.scope import read_session
from chatstore_server.store.sessions import utc_now

# A random UUID v4 per row, computed by the database: PostgreSQL has a function; on
# SQLite (which stores UUIDs as 32 hex digits) it is assembled from random bytes.
_SQLITE_UUID4: ColumnElement[Any] = literal_column(
    "lower(hex(randomblob(4)) || hex(randomblob(2)) || '4' || substr(hex(randomblob(2)), 2)"
    " || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2)"
    " || hex(randomblob(6)))"
)


def _new_uuid(conn: StoreConnection) -> ColumnElement[Any]:
    if conn.dialect.name == "postgresql":
        return func.gen_random_uuid()
    return _SQLITE_UUID4


# A copied message's body with its new id appended as the Message's `id` field (key
# 0x0a, 36 bytes of canonical text), from the columns `body` and `new_id` of the CTE
# `copied`: SQLite's 32 hex digits get their dashes; on PostgreSQL the text (ASCII) is
# cast to bytea (`convert_to` is STABLE, which Citus refuses over column values).
_BODY_WITH_ID = {
    "postgresql": "copied.body || '\\x0a24'::bytea || CAST(CAST(copied.new_id AS TEXT) AS BYTEA)",
    "sqlite": "CAST(copied.body || X'0a24' || substr(copied.new_id, 1, 8) || '-'"
    " || substr(copied.new_id, 9, 4) || '-' || substr(copied.new_id, 13, 4) || '-'"
    " || substr(copied.new_id, 17, 4) || '-' || substr(copied.new_id, 21) AS BLOB)",
}


async def fork_session(
    database: Database,
    tenant_id: str,
    source_id: str,
    *,
    message_seq: int | None,
    event_seq: int,
    checkpoint_id: str | None,
    new_session_id: str | None,
    title: str | None,
    policy: SessionPolicy,
    clock: Callable[[], datetime] = utc_now,
) -> SessionRecord:
    """Copy the source's messages up to `message_seq` and events up to `event_seq` (or
    both from `checkpoint_id`) into a new session, in one transaction.

    The new session takes the source's agent, model, persona, metadata, labels and
    retention, and its compaction if the fork point is at or past it; not its key,
    pin, archive state or checkpoints. `fork_source` records the origin.

    Raises:
        NotFoundError: No such source session ("session") or checkpoint ("checkpoint").
        InvalidReferenceError: A seq beyond the source's newest.
        AlreadyExistsError: `new_session_id` is taken.
        UnavailableError: The database cannot be reached.
    """
    now = clock()
    new_id = new_session_id or str(uuid4())
    async with database.write(offload=True) as conn:  # copies history
        source = await read_session(conn, tenant_id, source_id)
        if source is None:
            raise NotFoundError("session", source_id)
        if checkpoint_id is not None:
            point = (
                await conn.execute(
                    select(checkpoints.c.message_seq, checkpoints.c.event_seq).where(
                        checkpoints.c.tenant_id == tenant_id,
                        checkpoints.c.session_id == source_id,
                        checkpoints.c.namespace == "",
                        checkpoints.c.id == checkpoint_id,
                    )
                )
            ).first()
            if point is None:
                raise NotFoundError("checkpoint", checkpoint_id)
            message_seq, event_seq = point.message_seq, point.event_seq
        assert message_seq is not None
        if message_seq > source.last_seq:
            raise InvalidReferenceError(
                "message_seq", f"the session's newest message is {source.last_seq}"
            )
        if event_seq > source.last_event_seq:
            raise InvalidReferenceError(
                "event_seq", f"the session's newest event is {source.last_event_seq}"
            )
        in_source = [messages.c.tenant_id == tenant_id, messages.c.session_id == source_id]
        copied = [*in_source, messages.c.seq <= message_seq]
        output = case((messages.c.role == Role.ASSISTANT.value, messages.c.token_count), else_=0)
        totals = (
            await conn.execute(
                select(
                    func.coalesce(func.sum(messages.c.size_bytes), 0).label("size"),
                    func.coalesce(func.sum(messages.c.token_count), 0).label("tokens"),
                    func.coalesce(func.sum(output), 0).label("output"),
                ).where(*copied)
            )
        ).one()
        newest = (
            await conn.execute(
                select(messages.c.body, messages.c.create_time).where(
                    *in_source, messages.c.seq == message_seq
                )
            )
        ).first()
        compacted = (
            source.compacted_through_seq if source.compacted_through_seq <= message_seq else 0
        )
        values = {
            "id": new_id,
            "tenant_id": tenant_id,
            "agent_id": source.agent_id,
            "title": source.title if title is None else title,
            "metadata": source.metadata,
            "create_time": now,
            "update_time": now,
            "message_count": message_seq,
            "last_seq": message_seq,
            "status": (SessionStatus.COMPACTED if compacted else SessionStatus.ACTIVE).value,
            "retention": source.retention.value,
            "access_mode": AccessMode.READ_WRITE.value,
            "model": source.model,
            "persona_id": source.persona_id,
            "recap": source.recap if compacted else "",
            "labels": source.labels or None,
            "expire_time": now + policy.ephemeral_ttl
            if source.retention is Retention.EPHEMERAL
            else None,
            "last_message_time": newest.create_time if newest else None,
            "last_message_preview": bodies.preview(newest.body) if newest else "",
            "input_tokens": totals.tokens - totals.output,
            "output_tokens": totals.output,
            "total_tokens": totals.tokens,
            "size_bytes": totals.size,
            "event_count": event_seq,
            "last_event_seq": event_seq,
            "compacted_through_seq": compacted,
            "fork_session_id": source_id,
            "fork_message_seq": message_seq,
            "fork_event_seq": event_seq,
            "fork_checkpoint_id": checkpoint_id,
        }
        with translate_errors("session", new_id):
            created = (
                await conn.execute(insert(sessions).values(values).returning(*sessions.c))
            ).one()
        if source.labels:
            await conn.execute(
                insert(session_labels),
                [
                    {"session_id": new_id, "tenant_id": tenant_id, "key": k, "value": v}
                    for k, v in source.labels.items()
                ],
            )
        # Each row's new id is drawn once (the CTE is MATERIALIZED: SQLite would
        # otherwise inline it and draw one for the id and another for the body).
        rows = (
            select(*messages.c, _new_uuid(conn).label("new_id"))
            .where(*copied)
            .cte("copied")
            .prefix_with("MATERIALIZED")
        )
        await conn.execute(
            insert(messages).from_select(
                [c.name for c in messages.c],
                select(
                    *(
                        rows.c.new_id.label("id")
                        if c.name == "id"
                        else literal(new_id, String()).label("session_id")
                        if c.name == "session_id"
                        else literal_column(_BODY_WITH_ID[conn.dialect.name]).label("body")
                        if c.name == "body"
                        else rows.c[c.name]
                        for c in messages.c
                    )
                ),
            )
        )
        await conn.execute(
            insert(events).from_select(
                [c.name for c in events.c],
                select(
                    *(
                        _new_uuid(conn).label("id")
                        if c.name == "id"
                        else literal(new_id, String()).label("session_id")
                        if c.name == "session_id"
                        else c
                        for c in events.c
                    )
                ).where(
                    events.c.tenant_id == tenant_id,
                    events.c.session_id == source_id,
                    events.c.seq <= event_seq,
                ),
            )
        )
    return session_record(created)
