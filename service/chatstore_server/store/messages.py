"""Messages: append (seq assigned in the committing transaction) and keyset paging."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import case, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chatstore_server.store.database import Database
from chatstore_server.store.errors import NotFoundError, SessionStateError, translate_errors
from chatstore_server.store.records import (
    AccessMode,
    MessageRecord,
    NewMessage,
    Page,
    Retention,
    Role,
    SessionPolicy,
    SessionRecord,
    SessionStatus,
)
from chatstore_server.store.rows import message_record, session_record, tool_calls_json
from chatstore_server.store.schema import PREVIEW_CHARS, messages, sessions
from chatstore_server.store.sessions import utc_now


async def _refusal(
    conn: AsyncConnection, tenant_id: str, session_id: uuid.UUID
) -> NotFoundError | SessionStateError:
    """Why a session refused new history: it is missing, deleted, archived or read-only."""
    row = (
        await conn.execute(
            select(sessions.c.delete_time, sessions.c.archive_time, sessions.c.access_mode).where(
                sessions.c.id == session_id, sessions.c.tenant_id == tenant_id
            )
        )
    ).first()
    if row is None:
        return NotFoundError("session", session_id)
    if row.delete_time is not None:
        return SessionStateError(session_id, "DELETED", f"session {session_id} is deleted")
    if row.archive_time is not None:
        return SessionStateError(session_id, "ARCHIVED", f"session {session_id} is archived")
    return SessionStateError(session_id, "READ_ONLY", f"session {session_id} is read-only")


class MessageRepository:
    """A session's message history, scoped by tenant through its session."""

    def __init__(
        self,
        database: Database,
        policy: SessionPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = database
        self._policy = policy or SessionPolicy()
        self._clock = clock

    async def append(
        self, tenant_id: str, session_id: uuid.UUID, batch: Sequence[NewMessage]
    ) -> tuple[SessionRecord, list[MessageRecord]]:
        """Append `batch` (non-empty) to the session's history in one transaction.

        Two statements: an `UPDATE ... RETURNING` on the session row reserves the next
        `len(batch)` seqs and moves every counter (message count, token usage, size,
        preview, last message time, status back to ACTIVE, an EPHEMERAL session's
        expiry), and on PostgreSQL locks the row so concurrent appends to one session
        queue up; then one multi-row INSERT. Both commit together or not at all, so
        seqs have no gaps.

        Returns:
            The session after the append, and the stored messages in batch order.

        Raises:
            NotFoundError: No such session in the tenant.
            SessionStateError: The session is deleted, archived or read-only.
            AlreadyExistsError: A caller-supplied message id is taken.
            UnavailableError: The database cannot be reached.
        """
        if not batch:
            raise ValueError("append needs at least one message")
        now = self._clock()
        count = len(batch)
        output_tokens = sum(m.token_count or 0 for m in batch if m.role is Role.ASSISTANT)
        input_tokens = sum(m.token_count or 0 for m in batch if m.role is not Role.ASSISTANT)
        c = sessions.c
        reserve = (
            update(sessions)
            .where(
                c.id == session_id,
                c.tenant_id == tenant_id,
                c.delete_time.is_(None),
                c.archive_time.is_(None),
                c.access_mode == AccessMode.READ_WRITE.value,
            )
            .values(
                last_seq=c.last_seq + count,
                message_count=c.message_count + count,
                update_time=now,
                revision=c.revision + 1,
                status=SessionStatus.ACTIVE.value,
                last_message_time=now,
                last_message_preview=batch[-1].content[:PREVIEW_CHARS],
                size_bytes=c.size_bytes + sum(len(m.content.encode()) for m in batch),
                input_tokens=c.input_tokens + input_tokens,
                output_tokens=c.output_tokens + output_tokens,
                total_tokens=c.total_tokens + input_tokens + output_tokens,
                expire_time=case(
                    (
                        c.retention == Retention.EPHEMERAL.value,
                        now + self._policy.ephemeral_ttl,
                    ),
                    else_=c.expire_time,
                ),
            )
            .returning(*sessions.c)
        )
        async with self._db.write() as conn:
            row = (await conn.execute(reserve)).first()
            if row is None:
                raise await _refusal(conn, tenant_id, session_id)
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
                            "tool_calls": tool_calls_json(m.tool_calls),
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
        items = [message_record(row) for row in rows[:limit]]
        return Page(items, items[-1].seq if len(rows) > limit else None)
