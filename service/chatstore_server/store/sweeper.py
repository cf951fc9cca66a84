"""The sweeper: purges expired sessions and marks quiet ones IDLE.

Every statement is conditioned on the state it changes and idempotent, so any number
of server processes can sweep one database at once: a row is purged or marked by
whichever gets there first, and the others find nothing left to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from chatstore_server.store.changes import Change, ChangeFeed
from chatstore_server.store.database import Database
from chatstore_server.store.notify import announce
from chatstore_server.store.records import SessionPolicy, SessionStatus
from chatstore_server.store.rows import session_record
from chatstore_server.store.schema import sessions
from chatstore_server.store.sessions import utc_now

BATCH = 500
"""Rows per transaction, so one sweep never holds the write lock for long."""


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep did."""

    purged: int
    idled: int


async def sweep(
    database: Database,
    policy: SessionPolicy,
    clock: Callable[[], datetime] = utc_now,
    feed: ChangeFeed | None = None,
) -> SweepResult:
    """Purge sessions past `expire_time` (expired ephemeral ones, soft-deleted ones past
    retention) with all their history, and mark ACTIVE or COMPACTED sessions with no
    write for `policy.idle_after` as IDLE (without moving `update_time`).

    Raises:
        UnavailableError: The database cannot be reached.
    """
    now = clock()
    c = sessions.c
    purged = 0
    while True:
        # SKIP LOCKED (PostgreSQL): concurrent sweepers take different rows.
        due = (
            select(c.id)
            .where(c.expire_time <= now)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        async with database.write(offload=True) as conn:
            result = await conn.execute(
                delete(sessions).where(c.id.in_(due), c.expire_time <= now).returning(c.id)
            )
            gone = list(result.scalars())
            for session_id in gone:
                await announce(conn, session_id, "purged")
        for session_id in gone:
            if feed is not None:
                feed.publish(Change(session_id, purged=True))
        purged += len(gone)
        if len(gone) < BATCH:
            break
    idled = 0
    quiet = [
        c.status.in_([SessionStatus.ACTIVE.value, SessionStatus.COMPACTED.value]),
        c.update_time < now - policy.idle_after,
        c.delete_time.is_(None),
    ]
    while True:
        batch = (
            select(c.id)
            .where(*quiet)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        async with database.write(offload=True) as conn:
            rows = (
                await conn.execute(
                    update(sessions)
                    .where(c.id.in_(batch), *quiet)
                    .values(status=SessionStatus.IDLE.value, revision=c.revision + 1)
                    .returning(*sessions.c)
                )
            ).all()
            for row in rows:
                await announce(conn, row.id, "session")
        for row in rows:
            if feed is not None:
                record = session_record(row)
                feed.publish(Change(record.id, session=record))
        idled += len(rows)
        if len(rows) < BATCH:
            break
    return SweepResult(purged, idled)
