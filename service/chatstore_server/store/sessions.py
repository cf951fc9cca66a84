"""Sessions: create, get-or-create by key, read, update, and the lifecycle (pin, archive,
soft delete, undelete, purge). Listing lives in `session_list`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from chatstore_server.ids import uuid4
from chatstore_server.store.changes import Change, ChangeFeed
from chatstore_server.store.connection import StoreConnection
from chatstore_server.store.context import NEWEST_FIRST
from chatstore_server.store.database import Database
from chatstore_server.store.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidReferenceError,
    NotFoundError,
    SessionStateError,
    translate_errors,
)
from chatstore_server.store.notify import announce
from chatstore_server.store.records import (
    NewSession,
    Page,
    Retention,
    RowVersion,
    SessionKey,
    SessionPolicy,
    SessionRecord,
    SessionStatus,
    TokenUsage,
    WindowMessage,
)
from chatstore_server.store.rows import (
    key_columns,
    session_from_columns,
    session_record,
    token_columns,
)
from chatstore_server.store.schema import session_labels, sessions
from chatstore_server.store.scope import (
    SESSION_BY_ID_FOR_UPDATE,
    SESSION_VERSION,
    in_tenant,
    read_session,
    session_params,
)
from chatstore_server.store.session_list import (
    SessionCursor,
    SessionFilter,
    SessionOrder,
    list_query,
)

# Fields that UpdateSession may change; everything else is set by the server.
MUTABLE_FIELDS = frozenset(
    {
        "agent_id",
        "title",
        "metadata",
        "retention",
        "access_mode",
        "model",
        "persona_id",
        "recap",
        "labels",
        "token_usage",
    }
)

# Computes a write from the current row: column values, or None for nothing to do.
Mutation = Callable[[SessionRecord, datetime], dict[str, Any] | None]


def utc_now() -> datetime:
    """The server clock, timezone-aware UTC."""
    return datetime.now(UTC)


async def write_labels(
    conn: StoreConnection, tenant_id: str, session_id: str, labels: Mapping[str, str]
) -> None:
    await conn.execute(
        delete(session_labels).where(
            session_labels.c.tenant_id == tenant_id, session_labels.c.session_id == session_id
        )
    )
    if labels:
        await conn.execute(
            insert(session_labels),
            [
                {"session_id": session_id, "tenant_id": tenant_id, "key": k, "value": v}
                for k, v in labels.items()
            ],
        )


def field_values(
    changes: Mapping[str, Any], now: datetime, policy: SessionPolicy
) -> dict[str, Any]:
    """The column values that set the mutable fields in `changes` (as
    `SessionRepository.update` takes them): enums as their stored text, token usage as
    its three columns, labels as the `labels` column's copy (`write_labels` writes the
    rows), and a new `retention` moving `expire_time` (EPHEMERAL: one TTL from `now`)."""
    values = dict(changes)
    if "retention" in values:
        retention = values["retention"]
        values["expire_time"] = (
            now + policy.ephemeral_ttl if retention is Retention.EPHEMERAL else None
        )
        values["retention"] = retention.value
    if "access_mode" in values:
        values["access_mode"] = values["access_mode"].value
    if "token_usage" in values:
        values |= token_columns(values.pop("token_usage"))
    if "labels" in values:
        values["labels"] = values["labels"] or {}
    return values


class SessionRepository:
    """Session rows, always scoped by tenant: a session of another tenant is not found."""

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

    def _expiry(self, retention: Retention, now: datetime) -> datetime | None:
        return now + self._policy.ephemeral_ttl if retention is Retention.EPHEMERAL else None

    async def create(
        self, tenant_id: str, new: NewSession, *, session_id: str | None = None
    ) -> SessionRecord:
        """Insert a session with no history.

        Args:
            tenant_id: The owning tenant.
            new: The caller's field values.
            session_id: The id to use (unique within the tenant); None assigns a new
                UUID v4.

        Raises:
            AlreadyExistsError: `session_id` is taken in the tenant, or (resource
                "session_key") a live session has the same agent and key.
            UnavailableError: The database cannot be reached.
        """
        now = self._clock()
        session_id = session_id or str(uuid4())
        usage = new.token_usage or TokenUsage()
        values = {
            "id": session_id,
            "tenant_id": tenant_id,
            "agent_id": new.agent_id,
            "title": new.title,
            "metadata": new.metadata,
            "create_time": now,
            "update_time": now,
            **key_columns(new.key),
            "status": SessionStatus.ACTIVE.value,
            "retention": new.retention.value,
            "access_mode": new.access_mode.value,
            "model": new.model,
            "persona_id": new.persona_id,
            "recap": new.recap,
            "labels": new.labels or None,
            "expire_time": self._expiry(new.retention, now),
            **token_columns(usage),
        }
        async with self._db.write() as conn:
            with translate_errors("session_key" if new.key else "session", session_id):
                row = (
                    await conn.execute(insert(sessions).values(values).returning(*sessions.c))
                ).one()
            await write_labels(conn, tenant_id, session_id, new.labels or {})
        return session_record(row)

    async def find_by_key(
        self, tenant_id: str, agent_id: str, key: SessionKey
    ) -> SessionRecord | None:
        """The live session with this agent and key, or None.

        Raises:
            UnavailableError: The database cannot be reached.
        """
        columns = key_columns(key)
        query = select(sessions).where(
            sessions.c.tenant_id == tenant_id,
            sessions.c.agent_id == agent_id,
            sessions.c.delete_time.is_(None),
            *(sessions.c[name] == value for name, value in columns.items()),
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else session_record(row)

    async def get_or_create(self, tenant_id: str, new: NewSession) -> tuple[SessionRecord, bool]:
        """The live session for `new.agent_id` and `new.key`, created from `new` if none.

        Concurrent callers with one key get one session: the live-key unique index
        lets one insert win; the others find its row.

        Returns:
            The session, and whether this call created it.

        Raises:
            UnavailableError: The database cannot be reached.
        """
        if new.key is None:
            raise ValueError("get_or_create needs a key")
        found = await self.find_by_key(tenant_id, new.agent_id, new.key)
        if found is not None:
            return found, False
        try:
            return await self.create(tenant_id, new), True
        except AlreadyExistsError:
            found = await self.find_by_key(tenant_id, new.agent_id, new.key)
            if found is None:  # the winner was deleted in between: let the caller retry
                raise
            return found, False

    async def get(self, tenant_id: str, session_id: str) -> SessionRecord:
        """Read one session (soft-deleted ones too).

        Raises:
            NotFoundError: No such session in the tenant.
            UnavailableError: The database cannot be reached.
        """
        async with self._db.read() as conn:
            session = await read_session(conn, tenant_id, session_id)
        if session is None:
            raise NotFoundError("session", session_id)
        return session

    async def version(self, tenant_id: str, session_id: str) -> RowVersion | None:
        """Which version of the session's row is current (soft-deleted ones too): its
        revision and create time, or None when the tenant has no such session. Two
        columns of the row, for a caller that holds what the rest of the row said at
        some version (`RowVersion`).

        Raises:
            UnavailableError: The database cannot be reached.
        """
        async with self._db.read() as conn:
            found = await conn.fetch_into(
                SESSION_VERSION, session_params(tenant_id, session_id), RowVersion
            )
        return found[0] if found else None

    async def get_with_recent(
        self, tenant_id: str, session_id: str, limit: int
    ) -> tuple[SessionRecord, list[WindowMessage]]:
        """A session and its newest `limit` messages (oldest first, compacted ones marked),
        consistent: the messages are those up to the session's `last_seq` as read (a
        message committed between the two statements is left out, as the session row
        does not count it).

        Raises:
            NotFoundError: No such session in the tenant.
            UnavailableError: The database cannot be reached.
        """
        async with self._db.read() as conn:
            session = await read_session(conn, tenant_id, session_id)
            if session is None:
                raise NotFoundError("session", session_id)
            params = {
                "tenant_id": tenant_id,
                "session_id": session_id,
                "floor": 0,
                "compacted_through_seq": session.compacted_through_seq,
                "before": session.last_seq + 1,
                "limit": limit,
            }
            recent = await conn.fetch_into(NEWEST_FIRST, params, WindowMessage)
        recent.reverse()
        return session, recent

    async def list(
        self,
        tenant_id: str,
        *,
        limit: int,
        where: SessionFilter | None = None,
        order: SessionOrder | None = None,
        after: SessionCursor | None = None,
    ) -> Page[SessionRecord, SessionCursor]:
        """A page of the tenant's sessions matching `where`, in `order`.

        Raises:
            UnavailableError: The database cannot be reached.
        """
        order = order or SessionOrder()
        query, params = list_query(tenant_id, where or SessionFilter(), order, after, limit + 1)
        async with self._db.read() as conn:
            items = await conn.fetch_into(query, params, session_from_columns)
        more = len(items) > limit
        del items[limit:]
        return Page(items, SessionCursor.after(items[-1], order) if more else None)

    async def _modify(
        self,
        tenant_id: str,
        session_id: str,
        revision: int | None,
        change: Mutation,
        *,
        allow_deleted: bool = False,
    ) -> SessionRecord:
        """Apply `change` to the session in one transaction, if its checks pass.

        The row is read under a lock (`FOR UPDATE` on PostgreSQL; SQLite's write lock
        is already held), checked against `revision` and its deletion state, and
        updated with the values `change` computes; None from `change` means nothing
        to do, and nothing is written.
        """
        now = self._clock()
        async with self._db.write() as conn:
            row = (
                await conn.execute(SESSION_BY_ID_FOR_UPDATE, session_params(tenant_id, session_id))
            ).first()
            if row is None:
                raise NotFoundError("session", session_id)
            current = session_record(row)
            if revision is not None and current.revision != revision:
                raise ConflictError("session", session_id, "the etag does not match")
            if current.delete_time is not None and not allow_deleted:
                raise SessionStateError(
                    session_id, "DELETED", f"session {session_id} is deleted; undelete it first"
                )
            values = change(current, now)
            if values is None:
                return current
            labels = values.get("labels")
            if labels is not None:  # the column is a copy of session_labels' rows
                values["labels"] = labels or None
            statement = (
                update(sessions)
                .where(*in_tenant(tenant_id, session_id))
                .values(**values, update_time=now, revision=sessions.c.revision + 1)
                .returning(*sessions.c)
            )
            with translate_errors("session_key", session_id):
                row = (await conn.execute(statement)).one()
            if labels is not None:
                await write_labels(conn, tenant_id, session_id, labels)
            await announce(conn, tenant_id, session_id, "session")
        record = session_record(row)
        self._feed.publish(Change(tenant_id, session_id, session=record))
        return record

    async def update(
        self,
        tenant_id: str,
        session_id: str,
        changes: Mapping[str, Any],
        *,
        revision: int | None = None,
    ) -> SessionRecord:
        """Set fields named in `changes` (keys from `MUTABLE_FIELDS`, values as in
        `NewSession`); `update_time` and the revision move.

        Changing `retention` moves `expire_time`: EPHEMERAL expires one TTL from now,
        SAVED never.

        Raises:
            ValueError: `changes` names a field that is not mutable (a caller bug).
            NotFoundError: No such session in the tenant.
            ConflictError: `revision` is given and stale.
            SessionStateError: The session is soft-deleted.
            AlreadyExistsError: A new `agent_id` makes the key collide with a live session.
            UnavailableError: The database cannot be reached.
        """
        unknown = set(changes) - MUTABLE_FIELDS
        if unknown:
            raise ValueError(f"not mutable: {sorted(unknown)}")

        def change(_: SessionRecord, now: datetime) -> dict[str, Any]:
            return field_values(changes, now, self._policy)

        return await self._modify(tenant_id, session_id, revision, change)

    async def pin(
        self, tenant_id: str, session_id: str, *, pinned: bool, revision: int | None = None
    ) -> SessionRecord:
        """Pin (`pinned`) or unpin a session; a no-op if it already is.

        Raises:
            NotFoundError, ConflictError, SessionStateError (deleted), UnavailableError.
        """

        def change(current: SessionRecord, now: datetime) -> dict[str, Any] | None:
            if (current.pin_time is not None) == pinned:
                return None
            return {"pin_time": now if pinned else None}

        return await self._modify(tenant_id, session_id, revision, change)

    async def archive(
        self, tenant_id: str, session_id: str, *, archived: bool, revision: int | None = None
    ) -> SessionRecord:
        """Archive (`archived`) or unarchive a session; a no-op if it already is.

        Archiving sets status ARCHIVED; unarchiving sets ACTIVE.

        Raises:
            NotFoundError, ConflictError, SessionStateError (deleted), UnavailableError.
        """

        def change(current: SessionRecord, now: datetime) -> dict[str, Any] | None:
            if (current.archive_time is not None) == archived:
                return None
            if archived:
                return {"archive_time": now, "status": SessionStatus.ARCHIVED.value}
            return {"archive_time": None, "status": SessionStatus.ACTIVE.value}

        return await self._modify(tenant_id, session_id, revision, change)

    async def soft_delete(
        self, tenant_id: str, session_id: str, *, revision: int | None = None
    ) -> SessionRecord:
        """Mark a session deleted (AIP-164); it expires after the deleted retention.

        Deleting a deleted session changes nothing.

        Raises:
            NotFoundError, ConflictError, UnavailableError.
        """

        def change(current: SessionRecord, now: datetime) -> dict[str, Any] | None:
            if current.delete_time is not None:
                return None
            return {"delete_time": now, "expire_time": now + self._policy.deleted_retention}

        return await self._modify(tenant_id, session_id, revision, change, allow_deleted=True)

    async def undelete(
        self, tenant_id: str, session_id: str, *, revision: int | None = None
    ) -> SessionRecord:
        """Restore a soft-deleted session.

        Raises:
            NotFoundError: No such session (or already purged).
            SessionStateError: `LIVE`: the session is not deleted.
            AlreadyExistsError: Another live session now has its key.
            ConflictError, UnavailableError.
        """

        def change(current: SessionRecord, now: datetime) -> dict[str, Any]:
            if current.delete_time is None:
                raise SessionStateError(session_id, "LIVE", f"session {session_id} is not deleted")
            return {"delete_time": None, "expire_time": self._expiry(current.retention, now)}

        return await self._modify(tenant_id, session_id, revision, change, allow_deleted=True)

    async def purge(
        self, tenant_id: str, session_id: str, *, revision: int | None = None
    ) -> SessionRecord:
        """Delete a session and, by cascade, all its history, now; return its last state.

        Raises:
            NotFoundError, ConflictError, UnavailableError.
        """
        condition = in_tenant(tenant_id, session_id)
        # Off the event loop: the cascade deletes the whole history.
        async with self._db.write(offload=True) as conn:
            row = (
                await conn.execute(delete(sessions).where(*condition).returning(*sessions.c))
            ).first()
            if row is None:
                raise NotFoundError("session", session_id)
            if revision is not None and row._mapping["revision"] != revision:
                # Leaving the block by raising rolls the delete back.
                raise ConflictError("session", session_id, "the etag does not match")
            await announce(conn, tenant_id, session_id, "purged")
        self._feed.publish(Change(tenant_id, session_id, purged=True))
        return session_record(row)

    async def compact(
        self,
        tenant_id: str,
        session_id: str,
        *,
        through_seq: int,
        recap: str,
        revision: int | None = None,
    ) -> SessionRecord:
        """Record that messages 1..`through_seq` are summarized by `recap`: store the
        recap, move `compacted_through_seq`, set status COMPACTED. No message is deleted.

        Raises:
            InvalidReferenceError: `through_seq` is beyond the newest message.
            SessionStateError: `COMPACTED_BEYOND`: `through_seq` is below the current
                `compacted_through_seq` (compaction only moves forward); or the
                session is deleted.
            NotFoundError, ConflictError, UnavailableError.
        """

        def change(current: SessionRecord, _: datetime) -> dict[str, Any]:
            if through_seq > current.last_seq:
                raise InvalidReferenceError(
                    "through_seq", f"the session's newest message is {current.last_seq}"
                )
            if through_seq < current.compacted_through_seq:
                raise SessionStateError(
                    session_id,
                    "COMPACTED_BEYOND",
                    f"session {session_id} is already compacted through"
                    f" {current.compacted_through_seq}; through_seq must not be below it",
                )
            return {
                "recap": recap,
                "compacted_through_seq": through_seq,
                "status": SessionStatus.COMPACTED.value,
            }

        return await self._modify(tenant_id, session_id, revision, change)
