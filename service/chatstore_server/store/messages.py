"""Messages: append (seq assigned in the committing transaction) and keyset paging."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update

from chatstore_server.store.database import Database
from chatstore_server.store.errors import NotFoundError, translate_errors
from chatstore_server.store.records import (
    MessageRecord,
    NewMessage,
    Page,
    Role,
    SessionRecord,
    ToolCallRecord,
)
from chatstore_server.store.schema import messages, sessions
from chatstore_server.store.sessions import session_record, utc_now


def _tool_calls_json(calls: tuple[ToolCallRecord, ...]) -> list[dict[str, str]] | None:
    if not calls:
        return None
    return [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]


def _message_record(row: Row[Any]) -> MessageRecord:
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


class MessageRepository:
    """A session's message history, scoped by tenant through its session."""

    def __init__(self, database: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = database
        self._clock = clock

    async def append(
        self, tenant_id: str, session_id: uuid.UUID, batch: Sequence[NewMessage]
    ) -> tuple[SessionRecord, list[MessageRecord]]:
        """Append `batch` (non-empty) to the session's history in one transaction.

        Two statements: an `UPDATE ... RETURNING` on the session row reserves the next
        `len(batch)` seqs and moves the counters (and, on PostgreSQL, locks the row, so
        concurrent appends to one session queue up); then one multi-row INSERT. Both
        commit together or not at all, so seqs have no gaps.

        Returns:
            The session after the append, and the stored messages in batch order.

        Raises:
            NotFoundError: No such session in the tenant.
            AlreadyExistsError: A caller-supplied message id is taken.
            UnavailableError: The database cannot be reached.
        """
        if not batch:
            raise ValueError("append needs at least one message")
        now = self._clock()
        count = len(batch)
        reserve = (
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.tenant_id == tenant_id)
            .values(
                last_seq=sessions.c.last_seq + count,
                message_count=sessions.c.message_count + count,
                update_time=now,
            )
            .returning(*sessions.c)
        )
        async with self._db.write() as conn:
            row = (await conn.execute(reserve)).first()
            if row is None:
                raise NotFoundError("session", session_id)
            session = session_record(row)
            first_seq = session.last_seq - count + 1
            stored = [
                MessageRecord(
                    id=message.id or uuid.uuid4(),
                    session_id=session_id,
                    seq=first_seq + offset,
                    role=message.role,
                    content=message.content,
                    tool_calls=message.tool_calls,
                    token_count=message.token_count,
                    create_time=message.create_time or now,
                )
                for offset, message in enumerate(batch)
            ]
            # Only a caller-supplied id can clash (server ids are fresh UUID v4s).
            supplied = ", ".join(str(m.id) for m in batch if m.id is not None)
            with translate_errors("message", supplied):
                await conn.execute(
                    insert(messages),
                    [
                        {
                            "id": m.id,
                            "session_id": m.session_id,
                            "seq": m.seq,
                            "role": m.role.value,
                            "content": m.content,
                            "tool_calls": _tool_calls_json(m.tool_calls),
                            "token_count": m.token_count,
                            "create_time": m.create_time,
                        }
                        for m in stored
                    ],
                )
        return session, stored

    async def list(
        self, tenant_id: str, session_id: uuid.UUID, *, limit: int, after_seq: int = 0
    ) -> Page[MessageRecord, int]:
        """A page of the session's messages with `seq > after_seq`, oldest first.

        One range scan on the (session_id, seq) unique index, so a page deep in a long
        history costs what the first page costs. The cursor is the last seq returned.

        Raises:
            NotFoundError: No such session in the tenant.
            UnavailableError: The database cannot be reached.
        """
        query = (
            select(messages)
            .join(sessions, sessions.c.id == messages.c.session_id)
            .where(
                messages.c.session_id == session_id,
                sessions.c.tenant_id == tenant_id,
                messages.c.seq > after_seq,
            )
            .order_by(messages.c.seq)
            .limit(limit + 1)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
            if not rows:
                # Empty page: an empty history, or no such session? One more look.
                found = await conn.scalar(
                    select(sessions.c.id).where(
                        sessions.c.id == session_id, sessions.c.tenant_id == tenant_id
                    )
                )
                if found is None:
                    raise NotFoundError("session", session_id)
        items = [_message_record(row) for row in rows[:limit]]
        return Page(items, items[-1].seq if len(rows) > limit else None)
