"""Messages: append (seqs assigned in the committing transaction, idempotent under a
request id), keyset paging in either direction, and lookups."""

from __future__ import annotations

import base64
import builtins
import functools
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, insert, select, update

from chatstore_server.ids import uuid7
from chatstore_server.store import bodies, encoded, pg_append
from chatstore_server.store.appends import (
    Precondition,
    Replay,
    prior_rewind,
    replayed,
    request_values,
    reserve,
    writable,
)
from chatstore_server.store.changes import Change, ChangeFeed
from chatstore_server.store.connection import StoreConnection
from chatstore_server.store.context import message_tokens
from chatstore_server.store.database import Database
from chatstore_server.store.errors import NotFoundError, SessionStateError, translate_errors
from chatstore_server.store.message_batch import MESSAGE_INSERT, MessageBatcher, PendingAppend
from chatstore_server.store.notify import announce
from chatstore_server.store.prepared import Prepared
from chatstore_server.store.records import (
    ABSENT,
    EncodedPage,
    MessageRecord,
    NewMessage,
    Page,
    Role,
    SessionChangeRecord,
    SessionPolicy,
    SessionRecord,
    SharedStateRecord,
    StoredMessage,
)
from chatstore_server.store.rows import (
    MESSAGE_COLUMNS,
    message_record,
    page_columns,
    session_record,
)
from chatstore_server.store.schema import PREVIEW_CHARS, append_requests, messages, sessions
from chatstore_server.store.scope import (
    SESSION_BY_ID_FOR_UPDATE,
    in_tenant,
    require_session,
    session_params,
)
from chatstore_server.store.session_change import apply_change
from chatstore_server.store.session_list import TimeRange
from chatstore_server.store.sessions import utc_now
from chatstore_server.store.shared_states import SharedStateRepository

_WITH_COMPACTION = (*MESSAGE_COLUMNS, sessions.c.compacted_through_seq)
# A page's row as a StoredMessage, filled by tuple.__new__ (in C, no Python call per row).
_STORED = functools.partial(tuple.__new__, StoredMessage)
REWIND_RETURNS_AT_MOST = 100
"""A rewind answers with the messages it removed when they are at most this many."""


@dataclass(frozen=True, slots=True)
class RewindRecord:
    """What a rewind did: the session after, the removed messages (oldest first; None
    when there were more than `REWIND_RETURNS_AT_MOST`), and how many it removed."""

    session: SessionRecord
    removed: list[MessageRecord] | None
    removed_count: int


def size_bytes(message: NewMessage) -> int:
    """What a message adds to its session's `size_bytes`."""
    size = len(message.content.encode())
    if message.structured_content is not ABSENT:
        size += len(bodies.structured_text(message).encode())
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


# Statements are built once per shape, with bind parameters: building and keying one
# for SQLAlchemy's compiled cache costs more than SQLite takes to run it.
_SCOPED = (
    messages.c.tenant_id == bindparam("tenant_id"),
    messages.c.session_id == bindparam("session_id"),
)
_IN_SESSION = and_(
    sessions.c.tenant_id == messages.c.tenant_id, sessions.c.id == messages.c.session_id
)
_JOINED = select(*_WITH_COMPACTION).join(sessions, _IN_SESSION)
# The session's compaction point, read once per statement (an uncorrelated scalar
# subquery: SQLite and PostgreSQL evaluate it once), where a join would match the
# session to every row: a 1,000-row page read 10% faster on SQLite.
_COMPACTION_POINT = (
    select(sessions.c.compacted_through_seq)
    .where(sessions.c.tenant_id == bindparam("tenant_id"), sessions.c.id == bindparam("session_id"))
    .scalar_subquery()
)
_PAGE = select(*page_columns(_COMPACTION_POINT))
_MESSAGE_BY_ID = Prepared(_JOINED.where(*_SCOPED, messages.c.id == bindparam("id")))
_MESSAGE_BY_SEQ = Prepared(_JOINED.where(*_SCOPED, messages.c.seq == bindparam("seq")))


@functools.cache
def _list_statement(
    *,
    descending: bool,
    before: bool,
    cursor: bool,
    roles: bool,
    start: bool,
    end: bool,
    exclude_compacted: bool,
) -> Prepared:
    """The page query for one combination of filters; parameters as in `list`."""
    seq = messages.c.seq
    conditions = [*_SCOPED, seq > bindparam("after_seq")]
    if before:
        conditions.append(seq < bindparam("before_seq"))
    if cursor:
        conditions.append(seq < bindparam("cursor") if descending else seq > bindparam("cursor"))
    if roles:
        conditions.append(messages.c.role.in_(bindparam("roles", expanding=True)))
    if start:
        conditions.append(messages.c.create_time >= bindparam("start"))
    if end:
        conditions.append(messages.c.create_time < bindparam("end"))
    if exclude_compacted:
        conditions.append(seq > _COMPACTION_POINT)
    return Prepared(
        _PAGE.where(*conditions)
        .order_by(seq.desc() if descending else seq)
        .limit(bindparam("limit"))
    )


class MessageRepository:
    """A session's message history, scoped by tenant through its session."""

    def __init__(
        self,
        database: Database,
        policy: SessionPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
        feed: ChangeFeed | None = None,
        max_metadata_bytes: int = 65_536,
    ) -> None:
        self._db = database
        self._policy = policy or SessionPolicy()
        self._clock = clock
        self._feed = feed or ChangeFeed()
        self._max_metadata_bytes = max_metadata_bytes
        self._shared = SharedStateRepository(database, clock, max_metadata_bytes)
        self._batcher = (
            MessageBatcher(database, self._feed) if database.dialect_name == "sqlite" else None
        )

    async def append(
        self,
        tenant_id: str,
        session_id: str,
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
        On SQLite, appends without a precondition that wait for the writer together are
        written together (`message_batch`).

        Returns:
            The session after the append (as committed: appends written with it count
            too; for a replay, as it is now), and the stored messages in batch order.

        Raises:
            NotFoundError: No such session in the tenant.
            SessionStateError: The session is deleted, archived or read-only.
            ConflictError: The precondition no longer holds.
            RequestReusedError: `request_id` was used with a different request.
            AlreadyExistsError: A caller-supplied message id is taken.
            UnavailableError: The database cannot be reached.
        """
        pending = self._pending(tenant_id, session_id, batch, request_id, fingerprint)
        precondition = precondition or Precondition()
        if await self._db.one_statement_appends():
            return await self._append_postgresql(pending, precondition)
        unconditional = precondition.expected_last_seq is None and precondition.revision is None
        if unconditional and self._batcher is not None:
            appended = await self._batcher.append(pending)
            if appended is not None:  # written, and announced to watchers
                return appended
        try:
            async with self._db.write() as conn:
                session, stored = await self._write(conn, pending, precondition)
        except Replay as replay:
            return await self._replay(tenant_id, session_id, replay)
        self._feed.publish(Change(tenant_id, session_id, messages=tuple(stored)))
        return session, stored

    async def append_changing(
        self,
        tenant_id: str,
        session_id: str,
        batch: Sequence[NewMessage],
        change: SessionChangeRecord,
        *,
        precondition: Precondition | None = None,
        request_id: str | None = None,
        fingerprint: str = "",
    ) -> tuple[SessionRecord, list[MessageRecord], list[SharedStateRecord]]:
        """`append`, with `change` (session fields, a metadata patch, shared states)
        applied in the same transaction: one commit for all of it.

        Returns:
            The session after, the stored messages, and the shared states `change`
            patched as committed (for a replay: as they are now).

        Raises:
            As `append`, and: ConflictError (a shared state's etag is stale),
            InvalidReferenceError (the metadata or a state would outgrow its limit),
            AlreadyExistsError (a new `agent_id` collides with a live keyed session).
        """
        pending = self._pending(tenant_id, session_id, batch, request_id, fingerprint)
        try:
            async with self._db.write() as conn:
                session, stored = await self._write(conn, pending, precondition or Precondition())
                session, states = await apply_change(
                    conn, session, change, pending.now, self._policy, self._max_metadata_bytes
                )
                if change.fields or change.metadata_patch is not None:
                    await announce(conn, tenant_id, session_id, "session")
        except Replay as replay:
            session, stored = await self._replay(tenant_id, session_id, replay)
            names = [patch.name for patch in change.shared_state_patches]
            return session, stored, await self._shared.get_many(tenant_id, names)
        self._feed.publish(Change(tenant_id, session_id, messages=tuple(stored)))
        if change.fields or change.metadata_patch is not None:
            self._feed.publish(Change(tenant_id, session_id, session=session))
        return session, stored, states

    def _pending(
        self,
        tenant_id: str,
        session_id: str,
        batch: Sequence[NewMessage],
        request_id: str | None,
        fingerprint: str,
    ) -> PendingAppend:
        """Everything an append writes but the seqs, made before the write (outside the
        writer's turn): ids, bodies, estimates, sizes, the counters' changes."""
        if not batch:
            raise ValueError("append needs at least one message")
        now = self._clock()
        sizes = [size_bytes(m) for m in batch]
        output_tokens = sum(m.token_count or 0 for m in batch if m.role is Role.ASSISTANT)
        input_tokens = sum(m.token_count or 0 for m in batch if m.role is not Role.ASSISTANT)
        created = [m.create_time or now for m in batch]
        ids = [m.id or uuid7() for m in batch]
        return PendingAppend(
            tenant_id=tenant_id,
            session_id=session_id,
            batch=batch,
            now=now,
            created=created,
            ids=ids,
            encoded=[
                bodies.encode(m, id, at) for m, id, at in zip(batch, ids, created, strict=True)
            ],
            estimates=[message_tokens(m) for m in batch],
            sizes=sizes,
            counter_params={
                "preview": batch[-1].content[:PREVIEW_CHARS],
                "added_bytes": sum(sizes),
                "added_input_tokens": input_tokens,
                "added_output_tokens": output_tokens,
                "ephemeral_expire_time": now + self._policy.ephemeral_ttl,
            },
            request_id=request_id,
            fingerprint=fingerprint,
            # Only a caller-supplied id can clash (server ids are fresh UUID v7s).
            supplied=", ".join(str(m.id) for m in batch if m.id is not None),
        )

    async def _write(
        self, conn: StoreConnection, pending: PendingAppend, precondition: Precondition
    ) -> tuple[SessionRecord, list[MessageRecord]]:
        """An append's statements in the caller's transaction: the seq reservation
        (`appends.reserve`, with the change notification), then the rows."""
        batch = pending.batch
        session = await reserve(
            conn,
            tenant_id=pending.tenant_id,
            session_id=pending.session_id,
            kind="message",
            count=len(batch),
            now=pending.now,
            counter_params=pending.counter_params,
            precondition=precondition,
            request_id=pending.request_id,
            fingerprint=pending.fingerprint,
            announcing="messages",
        )
        stored = pending.records(session.last_seq - len(batch) + 1)
        with translate_errors("message", pending.supplied):
            await conn.execute_many(MESSAGE_INSERT, pending.rows(stored))
        return session, stored

    async def rewind(
        self,
        tenant_id: str,
        session_id: str,
        *,
        to_seq: int | None = None,
        remove_count: int | None = None,
        precondition: Precondition | None = None,
        request_id: str | None = None,
        fingerprint: str = "",
    ) -> RewindRecord:
        """Remove the session's messages after `to_seq`, or its newest `remove_count`,
        in one transaction that also moves its counters (message count, size, token
        usage, never below 0), preview and newest-message time, bumps its revision and
        announces the rewind. `last_seq` stays: seqs are never reused. A retry under
        `request_id` returns the first call's result (removed messages included) and
        removes nothing more; so does a rewind that finds nothing to remove.

        Raises:
            NotFoundError: No such session in the tenant.
            SessionStateError: Deleted, archived or read-only; or `COMPACTED_HISTORY`:
                the point lies inside the compacted history.
            ConflictError: The precondition no longer holds.
            RequestReusedError: `request_id` was used with a different request.
            UnavailableError: The database cannot be reached.
        """
        if (to_seq is None) == (remove_count is None):
            raise ValueError("give to_seq or remove_count")
        precondition = precondition or Precondition()
        now = self._clock()
        scope = [messages.c.tenant_id == tenant_id, messages.c.session_id == session_id]
        async with self._db.write() as conn:
            row = (
                await conn.execute(SESSION_BY_ID_FOR_UPDATE, session_params(tenant_id, session_id))
            ).first()
            if row is None:
                raise NotFoundError("session", session_id)
            current = session_record(row)
            if request_id:
                prior = await prior_rewind(conn, tenant_id, session_id, request_id, fingerprint)
                if prior is not None:
                    return RewindRecord(current, *prior)
            refusal = writable(current, precondition)
            if refusal is not None:
                raise refusal
            if to_seq is None:
                assert remove_count is not None
                newest_removed = await conn.scalar(
                    select(messages.c.seq)
                    .where(*scope)
                    .order_by(messages.c.seq.desc())
                    .limit(1)
                    .offset(remove_count - 1)
                )
                to_seq = 0 if newest_removed is None else newest_removed - 1
            output = case(
                (messages.c.role == Role.ASSISTANT.value, messages.c.token_count), else_=0
            )
            totals = (
                await conn.execute(
                    select(
                        func.count().label("removed"),
                        func.coalesce(func.sum(messages.c.size_bytes), 0).label("size"),
                        func.coalesce(func.sum(messages.c.token_count), 0).label("tokens"),
                        func.coalesce(func.sum(output), 0).label("output"),
                    ).where(*scope, messages.c.seq > to_seq)
                )
            ).one()
            if totals.removed and to_seq < current.compacted_through_seq:
                raise SessionStateError(
                    session_id,
                    "COMPACTED_HISTORY",
                    f"messages up to seq {current.compacted_through_seq} are compacted;"
                    " rewind to a later seq",
                )
            removed: list[MessageRecord] | None = None
            session = current
            if totals.removed:
                if totals.removed <= REWIND_RETURNS_AT_MOST:
                    rows = await conn.execute(
                        select(*MESSAGE_COLUMNS)
                        .where(*scope, messages.c.seq > to_seq)
                        .order_by(messages.c.seq)
                    )
                    removed = [message_record(r, current.compacted_through_seq) for r in rows]
                await conn.execute(delete(messages).where(*scope, messages.c.seq > to_seq))
                newest = (
                    await conn.execute(
                        select(messages.c.body, messages.c.create_time)
                        .where(*scope, messages.c.seq <= to_seq)
                        .order_by(messages.c.seq.desc())
                        .limit(1)
                    )
                ).first()
                floor = func.max if conn.dialect.name == "sqlite" else func.greatest
                c = sessions.c
                input_tokens = totals.tokens - totals.output
                updated = (
                    await conn.execute(
                        update(sessions)
                        .where(*in_tenant(tenant_id, session_id))
                        .values(
                            message_count=floor(c.message_count - totals.removed, 0),
                            size_bytes=floor(c.size_bytes - totals.size, 0),
                            input_tokens=floor(c.input_tokens - input_tokens, 0),
                            output_tokens=floor(c.output_tokens - totals.output, 0),
                            total_tokens=floor(c.total_tokens - totals.tokens, 0),
                            last_message_preview=bodies.preview(newest.body) if newest else "",
                            last_message_time=newest.create_time if newest else None,
                            update_time=now,
                            revision=c.revision + 1,
                        )
                        .returning(*sessions.c)
                    )
                ).one()
                session = session_record(updated)
                await announce(conn, tenant_id, session_id, "rewound", to_seq)
            if request_id:
                result = {
                    "count": totals.removed,
                    "removed": None
                    if removed is None
                    else base64.b64encode(bodies.pack(removed)).decode(),
                }
                await conn.execute(
                    insert(append_requests).values(
                        request_values(
                            tenant_id,
                            session_id,
                            "rewind",
                            request_id,
                            totals.removed,
                            current.last_seq if totals.removed else to_seq,
                            fingerprint,
                            now,
                            json.dumps(result).encode(),
                        )
                    )
                )
        if totals.removed:
            self._feed.publish(Change(tenant_id, session_id, session=session, rewound_to=to_seq))
        return RewindRecord(session, removed, totals.removed)

    async def _append_postgresql(
        self, pending: PendingAppend, precondition: Precondition
    ) -> tuple[SessionRecord, list[MessageRecord]]:
        """`append` on PostgreSQL (not Citus): one statement (`pg_append`)."""
        batch, session_id = pending.batch, pending.session_id
        try:
            session = await pg_append.append_rows(
                self._db,
                "message",
                tenant_id=pending.tenant_id,
                session_id=session_id,
                now=pending.now,
                counter_params=pending.counter_params,
                precondition=precondition,
                request_id=pending.request_id,
                fingerprint=pending.fingerprint,
                columns={
                    "id": pending.ids,
                    "role": [m.role.value for m in batch],
                    "token_count": [m.token_count for m in batch],
                    "create_time": pending.created,
                    "tool_call_id": [m.tool_call_id for m in batch],
                    "size_bytes": pending.sizes,
                    "body": pending.encoded,
                    "token_estimate": pending.estimates,
                },
                supplied_ids=pending.supplied,
            )
        except Replay as replay:
            return await self._replay(pending.tenant_id, session_id, replay)
        stored = pending.records(session.last_seq - len(batch) + 1)
        self._feed.publish(Change(pending.tenant_id, session_id, messages=tuple(stored)))
        return session, stored

    async def _replay(
        self, tenant_id: str, session_id: str, replay: Replay
    ) -> tuple[SessionRecord, list[MessageRecord]]:
        session, rows = await replayed(
            self._db, tenant_id, session_id, messages, replay, MESSAGE_COLUMNS
        )
        return session, [message_record(r, session.compacted_through_seq) for r in rows]

    async def list(
        self,
        tenant_id: str,
        session_id: str,
        *,
        limit: int,
        where: MessageFilter | None = None,
        descending: bool = False,
        after: int | None = None,
    ) -> Page[StoredMessage, int]:
        """A page of the session's messages matching `where`, in seq order.

        One range scan on the (tenant_id, session_id, seq) primary key, so a page deep in a long
        history costs what the first page costs. The cursor is the last seq returned;
        pass it back as `after` for the next page.

        Raises:
            NotFoundError: No such session in the tenant.
            UnavailableError: The database cannot be reached.
        """
        rows, next_cursor = await self._page(tenant_id, session_id, limit, where, descending, after)
        return Page(builtins.list(map(_STORED, rows)), next_cursor)

    async def list_encoded(
        self,
        tenant_id: str,
        session_id: str,
        *,
        limit: int,
        where: MessageFilter | None = None,
        descending: bool = False,
        after: int | None = None,
    ) -> EncodedPage:
        """`list`, each message encoded as a chatstore.v1.Message (`store.encoded`):
        for answers that pass a page on as it is, without a Message object per row.

        Raises:
            NotFoundError: No such session in the tenant.
            UnavailableError: The database cannot be reached.
        """
        rows, next_cursor = await self._page(tenant_id, session_id, limit, where, descending, after)
        return EncodedPage(
            encoded.messages(rows, session_id), [row[0] for row in rows], next_cursor
        )

    async def _page(
        self,
        tenant_id: str,
        session_id: str,
        limit: int,
        where: MessageFilter | None,
        descending: bool,
        after: int | None,
    ) -> tuple[builtins.list[Sequence[Any]], int | None]:
        """Up to `limit` rows of a page, as the driver gives them (`page_columns`: seq,
        body, compacted), and the cursor of the next page (the last seq returned; None
        when no more follow: one row more than `limit` is read to tell)."""
        where = where or MessageFilter()
        query = _list_statement(
            descending=descending,
            before=where.before_seq is not None,
            cursor=after is not None,
            roles=bool(where.roles),
            start=where.create_time.start is not None,
            end=where.create_time.end is not None,
            exclude_compacted=where.exclude_compacted,
        )
        params = {
            "session_id": session_id,
            "tenant_id": tenant_id,
            "after_seq": where.after_seq,
            "before_seq": where.before_seq,
            "cursor": after,
            "roles": sorted(r.value for r in where.roles),
            "start": where.create_time.start,
            "end": where.create_time.end,
            "limit": limit + 1,
        }
        async with self._db.read() as conn:
            rows = await conn.fetch_tuples(query, params)
            if not rows:
                await require_session(conn, tenant_id, session_id)
        if len(rows) > limit:
            del rows[limit:]
            return rows, rows[-1][0]
        return rows, None

    async def get(
        self,
        tenant_id: str,
        session_id: str,
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
        query = _MESSAGE_BY_ID if message_id else _MESSAGE_BY_SEQ
        params = {"session_id": session_id, "tenant_id": tenant_id, "id": message_id, "seq": seq}
        async with self._db.read() as conn:
            rows = await conn.fetch(query, params)
            if not rows:
                await require_session(conn, tenant_id, session_id)
                raise NotFoundError("message", message_id or f"at seq {seq}")
        return message_record(rows[0], rows[0]["compacted_through_seq"])
