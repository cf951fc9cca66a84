"""Sessions: create, read, list (keyset-paginated), update, delete."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Uuid, delete, insert, literal, select, tuple_, update

from chatstore_server.store.database import Database
from chatstore_server.store.errors import NotFoundError, translate_errors
from chatstore_server.store.records import Page, SessionRecord
from chatstore_server.store.schema import sessions
from chatstore_server.store.types import UTCDateTime

# Fields that UpdateSession may change; everything else is set by the server.
MUTABLE_FIELDS = frozenset({"agent_id", "title", "metadata"})


def utc_now() -> datetime:
    """The server clock, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SessionCursor:
    """A position in a tenant's session list: just after the session with these keys."""

    update_time: datetime
    id: uuid.UUID


def session_record(row: Row[Any]) -> SessionRecord:
    """Build a record from a row holding every column of `sessions`."""
    m = row._mapping
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
    )


def _not_found(session_id: uuid.UUID) -> NotFoundError:
    return NotFoundError("session", session_id)


class SessionRepository:
    """Session rows, always scoped by tenant: a session of another tenant is not found."""

    def __init__(self, database: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = database
        self._clock = clock

    async def create(
        self,
        tenant_id: str,
        *,
        session_id: uuid.UUID | None = None,
        agent_id: str = "",
        title: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> SessionRecord:
        """Insert a session with no messages.

        Args:
            tenant_id: The owning tenant.
            session_id: The id to use; None assigns a new UUID v4.
            agent_id: The agent, or "" for none.
            title: The title, or "".
            metadata: Free-form JSON object, or None.

        Raises:
            AlreadyExistsError: `session_id` is taken (in any tenant: ids are global).
            UnavailableError: The database cannot be reached.
        """
        now = self._clock()
        record = SessionRecord(
            id=session_id or uuid.uuid4(),
            tenant_id=tenant_id,
            agent_id=agent_id,
            title=title,
            metadata=metadata,
            create_time=now,
            update_time=now,
            message_count=0,
            last_seq=0,
        )
        async with self._db.write() as conn:
            with translate_errors("session", record.id):
                await conn.execute(
                    insert(sessions).values(
                        id=record.id,
                        tenant_id=record.tenant_id,
                        agent_id=record.agent_id,
                        title=record.title,
                        metadata=record.metadata,
                        create_time=now,
                        update_time=now,
                        message_count=0,
                        last_seq=0,
                    )
                )
        return record

    async def get(self, tenant_id: str, session_id: uuid.UUID) -> SessionRecord:
        """Read one session.

        Raises:
            NotFoundError: No such session in the tenant.
            UnavailableError: The database cannot be reached.
        """
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(sessions).where(
                        sessions.c.id == session_id, sessions.c.tenant_id == tenant_id
                    )
                )
            ).first()
        if row is None:
            raise _not_found(session_id)
        return session_record(row)

    async def list(
        self,
        tenant_id: str,
        *,
        limit: int,
        agent_id: str | None = None,
        after: SessionCursor | None = None,
    ) -> Page[SessionRecord, SessionCursor]:
        """A page of the tenant's sessions, newest `update_time` first, ties by id descending.

        One indexed range scan, whatever the page's depth.

        Args:
            tenant_id: The tenant.
            limit: The most sessions to return (>= 1).
            agent_id: Only this agent's sessions; None means all.
            after: Start just after this position; None starts at the newest.

        Raises:
            UnavailableError: The database cannot be reached.
        """
        query = select(sessions).where(sessions.c.tenant_id == tenant_id)
        if agent_id is not None:
            query = query.where(sessions.c.agent_id == agent_id)
        if after is not None:
            query = query.where(
                tuple_(sessions.c.update_time, sessions.c.id)
                < tuple_(literal(after.update_time, UTCDateTime()), literal(after.id, Uuid()))
            )
        query = query.order_by(sessions.c.update_time.desc(), sessions.c.id.desc()).limit(limit + 1)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        items = [session_record(row) for row in rows[:limit]]
        more = len(rows) > limit
        cursor = SessionCursor(items[-1].update_time, items[-1].id) if more else None
        return Page(items, cursor)

    async def update(
        self, tenant_id: str, session_id: uuid.UUID, changes: Mapping[str, Any]
    ) -> SessionRecord:
        """Set the given fields (a subset of `MUTABLE_FIELDS`) and `update_time`.

        Raises:
            ValueError: `changes` names a field that is not mutable (a caller bug).
            NotFoundError: No such session in the tenant.
            UnavailableError: The database cannot be reached.
        """
        unknown = set(changes) - MUTABLE_FIELDS
        if unknown:
            raise ValueError(f"not mutable: {sorted(unknown)}")
        statement = (
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.tenant_id == tenant_id)
            .values(**changes, update_time=self._clock())
            .returning(*sessions.c)
        )
        async with self._db.write() as conn:
            row = (await conn.execute(statement)).first()
        if row is None:
            raise _not_found(session_id)
        return session_record(row)

    async def delete(self, tenant_id: str, session_id: uuid.UUID) -> SessionRecord:
        """Delete a session and, by cascade, all its messages; return its last state.

        Raises:
            NotFoundError: No such session in the tenant.
            UnavailableError: The database cannot be reached.
        """
        statement = (
            delete(sessions)
            .where(sessions.c.id == session_id, sessions.c.tenant_id == tenant_id)
            .returning(*sessions.c)
        )
        async with self._db.write() as conn:
            row = (await conn.execute(statement)).first()
        if row is None:
            raise _not_found(session_id)
        return session_record(row)
