"""Checkpoints: named points (a message seq and an event seq) in a session's history."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Uuid, literal, select, tuple_, update

from chatstore_server.ids import uuid4
from chatstore_server.store.database import Database
from chatstore_server.store.errors import (
    InvalidReferenceError,
    NotFoundError,
    SessionStateError,
)
from chatstore_server.store.records import CheckpointRecord, Page
from chatstore_server.store.rows import checkpoint_record
from chatstore_server.store.schema import checkpoints, sessions
from chatstore_server.store.scope import in_tenant, require_session
from chatstore_server.store.sessions import utc_now
from chatstore_server.store.types import UTCDateTime


@dataclass(frozen=True, slots=True)
class CheckpointCursor:
    """A position in a session's checkpoint list: just after this one."""

    create_time: datetime
    id: uuid.UUID


class CheckpointRepository:
    """A session's checkpoints, scoped by tenant through its session."""

    def __init__(self, database: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = database
        self._clock = clock

    async def create(
        self,
        tenant_id: str,
        session_id: str,
        *,
        message_seq: int | None,
        event_seq: int | None,
        label: str = "",
        description: str = "",
        tags: Sequence[str] = (),
    ) -> CheckpointRecord:
        """Record a checkpoint at the given seqs (None: the session's newest), and count
        it on the session, in one transaction.

        Raises:
            NotFoundError: No such session in the tenant.
            SessionStateError: The session is soft-deleted.
            InvalidReferenceError: A seq is beyond the session's newest.
            UnavailableError: The database cannot be reached.
        """
        now = self._clock()
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    select(sessions.c.last_seq, sessions.c.last_event_seq, sessions.c.delete_time)
                    .where(*in_tenant(tenant_id, session_id))
                    .with_for_update()
                )
            ).first()
            if row is None:
                raise NotFoundError("session", session_id)
            if row.delete_time is not None:
                raise SessionStateError(session_id, "DELETED", f"session {session_id} is deleted")
            message_seq = row.last_seq if message_seq is None else message_seq
            event_seq = row.last_event_seq if event_seq is None else event_seq
            if message_seq > row.last_seq:
                raise InvalidReferenceError(
                    "checkpoint.message_seq", f"the session's newest message is {row.last_seq}"
                )
            if event_seq > row.last_event_seq:
                raise InvalidReferenceError(
                    "checkpoint.event_seq", f"the session's newest event is {row.last_event_seq}"
                )
            record = CheckpointRecord(
                id=uuid4(),
                session_id=session_id,
                message_seq=message_seq,
                event_seq=event_seq,
                label=label,
                description=description,
                tags=tuple(tags),
                create_time=now,
            )
            await conn.execute(
                checkpoints.insert().values(
                    tenant_id=tenant_id,
                    id=record.id,
                    session_id=session_id,
                    message_seq=message_seq,
                    event_seq=event_seq,
                    label=label,
                    description=description,
                    tags=list(tags) or None,
                    create_time=now,
                )
            )
            await conn.execute(
                update(sessions)
                .where(*in_tenant(tenant_id, session_id))
                .values(
                    checkpoint_count=sessions.c.checkpoint_count + 1,
                    revision=sessions.c.revision + 1,
                    update_time=now,
                )
            )
        return record

    async def get(
        self, tenant_id: str, session_id: str, checkpoint_id: uuid.UUID
    ) -> CheckpointRecord:
        """One checkpoint.

        Raises:
            NotFoundError: No such session ("session") or checkpoint ("checkpoint").
            UnavailableError: The database cannot be reached.
        """
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(checkpoints).where(
                        checkpoints.c.tenant_id == tenant_id,
                        checkpoints.c.session_id == session_id,
                        checkpoints.c.id == checkpoint_id,
                    )
                )
            ).first()
            if row is None:
                await require_session(conn, tenant_id, session_id)
                raise NotFoundError("checkpoint", checkpoint_id)
        return checkpoint_record(row)

    async def list(
        self,
        tenant_id: str,
        session_id: str,
        *,
        limit: int,
        after: CheckpointCursor | None = None,
    ) -> Page[CheckpointRecord, CheckpointCursor]:
        """A page of the session's checkpoints, oldest first.

        Raises:
            NotFoundError: No such session in the tenant.
            UnavailableError: The database cannot be reached.
        """
        query = select(checkpoints).where(
            checkpoints.c.tenant_id == tenant_id, checkpoints.c.session_id == session_id
        )
        if after is not None:
            query = query.where(
                tuple_(checkpoints.c.create_time, checkpoints.c.id)
                > tuple_(literal(after.create_time, UTCDateTime()), literal(after.id, Uuid()))
            )
        query = query.order_by(checkpoints.c.create_time, checkpoints.c.id).limit(limit + 1)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
            if not rows:
                await require_session(conn, tenant_id, session_id)
        items = [checkpoint_record(r) for r in rows[:limit]]
        last = items[-1] if len(rows) > limit else None
        return Page(items, CheckpointCursor(last.create_time, last.id) if last else None)
