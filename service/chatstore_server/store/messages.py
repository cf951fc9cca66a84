"""Messages: append (seqs assigned in the committing transaction, idempotent under a
request id), keyset paging in either direction, and lookups."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, case, select

from chatstore_server.store.appends import Precondition, Replay, replayed, reserve
from chatstore_server.store.changes import Change, ChangeFeed
from chatstore_server.store.database import Database
from chatstore_server.store.errors import NotFoundError, translate_errors
from chatstore_server.store.notify import announce
from chatstore_server.store.records import (
    MessageRecord,
    NewMessage,
    Page,
    Retention,
    Role,
    SessionPolicy,
    SessionRecord,
    SessionStatus,
)
from chatstore_server.store.rows import message_record, message_values
from chatstore_server.store.schema import PREVIEW_CHARS, messages, sessions
from chatstore_server.store.scope import require_session
from chatstore_server.store.session_list import TimeRange
from chatstore_server.store.sessions import utc_now

_WITH_COMPACTION = (*messages.c, sessions.c.compacted_through_seq)


def size_bytes(message: NewMessage) -> int:
    """What a message adds to its session's `size_bytes`."""
    size = len(message.content.encode())
    if message.structured_content is not None:
        size += len(json.dumps(message.structured_content, separators=(",", ":")).encode())
    return size


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """Which messages to list; every given condition must hold."""

    after_seq: int = 0
    """Only seqs greater than this."""
    before_seq: int | None = None
    """Only seqs less than this."""
    roles: frozenset[Role] = frozenset()
    create_time: TimeRange = field(default_factory=TimeRange)
    exclude_compacted: bool = False


def _scoped(tenant_id: str, session_id: uuid.UUID) -> list[ColumnElement[bool]]:
    return [messages.c.session_id == session_id, sessions.c.tenant_id == tenant_id]


class MessageRepository:
    """A session's message history, scoped by tenant through its session."""

    def __init__(
        self,
        database: Database,
        policy: SessionPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
        feed: ChangeFeed | None = None,
    ) -> None:
        self._db = database
        self._policy = policy or SessionPolicy()
        self._clock = clock
        self._feed = feed or ChangeFeed()

    async def append(
        self,
        tenant_id: str,
        session_id: uuid.UUID,
        batch: Sequence[NewMessage],
        *,
        precondition: Precondition | None = None,
        request_id: str | None = None,
        fingerprint: str = "",
    ) -> tuple[SessionRecord, list[MessageRecord]]:
        """Append `batch` (non-empty) to the session's history in one transaction.

        Statements: the seq reservation on the session row (which also moves every
        counter: message count, token usage, size, preview, last message time, status
        back to ACTIVE, an EPHEMERAL session's expiry), one more with a request id,
        and one multi-row INSERT. All commit together or not at all, so seqs have no
        gaps. A retry under the same `request_id` (and `fingerprint`, which identifies
        the request's content) writes nothing and returns what the first call stored.

        Returns:
            The session after the append (for a replay, as it is now), and the stored
            messages in batch order.

        Raises:
            NotFoundError: No such session in the tenant.
            SessionStateError: The session is deleted, archived or read-only.
            ConflictError: The precondition no longer holds.
            RequestReusedError: `request_id` was used with a different request.
            AlreadyExistsError: A caller-supplied message id is taken.
            UnavailableError: The database cannot be reached.
        """
        if not batch:
            raise ValueError("append needs at least one message")
        now = self._clock()
        sizes = [size_bytes(m) for m in batch]
        output_tokens = sum(m.token_count or 0 for m in batch if m.role is Role.ASSISTANT)
        input_tokens = sum(m.token_count or 0 for m in batch if m.role is not Role.ASSISTANT)
        c = sessions.c
        counters = {
            "status": SessionStatus.ACTIVE.value,
            "last_message_time": now,
            "last_message_preview": batch[-1].content[:PREVIEW_CHARS],
            "size_bytes": c.size_bytes + sum(sizes),
            "input_tokens": c.input_tokens + input_tokens,
            "output_tokens": c.output_tokens + output_tokens,
            "total_tokens": c.total_tokens + input_tokens + output_tokens,
            "expire_time": case(
                (c.retention == Retention.EPHEMERAL.value, now + self._policy.ephemeral_ttl),
                else_=c.expire_time,
            ),
        }
        try:
            async with self._db.write() as conn:
                session = await reserve(
                    conn,
                    tenant_id=tenant_id,
                    session_id=session_id,
                    kind="message",
                    count=len(batch),
                    now=now,
                    counters=counters,
                    precondition=precondition or Precondition(),
                    request_id=request_id,
                    fingerprint=fingerprint,
                )
                first_seq = session.last_seq - len(batch) + 1
                stored = [
                    MessageRecord(
                        id=m.id or uuid.uuid4(),
                        session_id=session_id,
                        seq=first_seq + offset,
                        role=m.role,
                        content=m.content,
                        tool_calls=m.tool_calls,
                        token_count=m.token_count,
                        create_time=m.create_time or now,
                        structured_content=m.structured_content,
                        tool_call_id=m.tool_call_id,
                        name=m.name,
                        agent_id=m.agent_id,
                        model=m.model,
                        metadata=m.metadata,
                        size_bytes=sizes[offset],
                    )
                    for offset, m in enumerate(batch)
                ]
                # Only a caller-supplied id can clash (server ids are fresh UUID v4s).
                supplied = ", ".join(str(m.id) for m in batch if m.id is not None)
                with translate_errors("message", supplied):
                    await conn.execute(messages.insert(), [message_values(m) for m in stored])
                await announce(conn, session_id, "messages")
        except Replay as replay:
            return await self._replay(tenant_id, session_id, replay)
        self._feed.publish(Change(session_id, messages=tuple(stored)))
        return session, stored

    async def _replay(
        self, tenant_id: str, session_id: uuid.UUID, replay: Replay
    ) -> tuple[SessionRecord, list[MessageRecord]]:
        session, rows = await replayed(self._db, tenant_id, session_id, messages, replay)
        return session, [message_record(r, session.compacted_through_seq) for r in rows]

    async def list(
        self,
        tenant_id: str,
        session_id: uuid.UUID,
        *,
        limit: int,
        where: MessageFilter | None = None,
        descending: bool = False,
        after: int | None = None,
    ) -> Page[MessageRecord, int]:
        """A page of the session's messages matching `where`, in seq order.

        One range scan on the (session_id, seq) unique index, so a page deep in a long
        history costs what the first page costs. The cursor is the last seq returned;
        pass it back as `after` for the next page.

        Raises:
            NotFoundError: No such session in the tenant.
            UnavailableError: The database cannot be reached.
        """
        where = where or MessageFilter()
        seq = messages.c.seq
        conditions = [*_scoped(tenant_id, session_id), seq > where.after_seq]
        if where.before_seq is not None:
            conditions.append(seq < where.before_seq)
        if after is not None:
            conditions.append(seq < after if descending else seq > after)
        if where.roles:
            conditions.append(messages.c.role.in_(sorted(r.value for r in where.roles)))
        if where.create_time.start is not None:
            conditions.append(messages.c.create_time >= where.create_time.start)
        if where.create_time.end is not None:
            conditions.append(messages.c.create_time < where.create_time.end)
        if where.exclude_compacted:
            conditions.append(seq > sessions.c.compacted_through_seq)
        query = (
            select(*_WITH_COMPACTION)
            .join(sessions, sessions.c.id == messages.c.session_id)
            .where(*conditions)
            .order_by(seq.desc() if descending else seq)
            .limit(limit + 1)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
            if not rows:
                await require_session(conn, tenant_id, session_id)
        items = [message_record(r, r.compacted_through_seq) for r in rows[:limit]]
        return Page(items, items[-1].seq if len(rows) > limit else None)

    async def get(
        self,
        tenant_id: str,
        session_id: uuid.UUID,
        *,
        message_id: uuid.UUID | None = None,
        seq: int | None = None,
    ) -> MessageRecord:
        """One message, by id or by seq.

        Raises:
            NotFoundError: No such session in the tenant ("session"), or no such
                message in it ("message").
            UnavailableError: The database cannot be reached.
        """
        selector = messages.c.id == message_id if message_id else messages.c.seq == seq
        query = (
            select(*_WITH_COMPACTION)
            .join(sessions, sessions.c.id == messages.c.session_id)
            .where(*_scoped(tenant_id, session_id), selector)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
            if row is None:
                await require_session(conn, tenant_id, session_id)
                raise NotFoundError("message", message_id or f"at seq {seq}")
        return message_record(row, row.compacted_through_seq)
