"""The sweeper: purges expired sessions and marks quiet ones IDLE.

Every statement is conditioned on the state it changes and idempotent, so any number
of server processes can sweep one database at once: a row is purged or marked by
whichever gets there first, and the others find nothing left to do. No statement locks
rows it only looks at, so the same sweep runs on Citus, across shards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, tuple_, update

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

    Each batch is found by a plain read (on Citus a cross-shard `SELECT ... FOR UPDATE`
    is not possible, and a sweep needs no lock to find candidates), then changed by one
    statement that names each row by (tenant_id, id) and checks its condition again:
    a row another sweeper or a write changed meanwhile is left as it is.

    Raises:
        UnavailableError: The database cannot be reached.
    """
    now = clock()
    c = sessions.c
    expired = [c.expire_time <= now]
    purged = 0
    while True:
        due = await _candidates(database, expired)
        if not due:
            break
        async with database.write(offload=True) as conn:
            result = await conn.execute(
                delete(sessions)
                .where(tuple_(c.tenant_id, c.id).in_(due), *expired)
                .returning(c.tenant_id, c.id)
            )
            gone = [(row.tenant_id, row.id) for row in result]
            for tenant_id, session_id in gone:
                await announce(conn, tenant_id, session_id, "purged")
        for tenant_id, session_id in gone:
            if feed is not None:
                feed.publish(Change(tenant_id, session_id, purged=True))
        purged += len(gone)
        if len(due) < BATCH:
            break
    idled = 0
    quiet = [
        c.status.in_([SessionStatus.ACTIVE.value, SessionStatus.COMPACTED.value]),
        c.update_time < now - policy.idle_after,
        c.delete_time.is_(None),
    ]
    while True:
        batch = await _candidates(database, quiet)
        if not batch:
            break
        async with database.write(offload=True) as conn:
            rows = (
                await conn.execute(
                    update(sessions)
                    .where(tuple_(c.tenant_id, c.id).in_(batch), *quiet)
                    .values(status=SessionStatus.IDLE.value, revision=c.revision + 1)
                    .returning(*sessions.c)
                )
            ).all()
            for row in rows:
                await announce(conn, row.tenant_id, row.id, "session")
        for row in rows:
            if feed is not None:
                record = session_record(row)
                feed.publish(Change(record.tenant_id, record.id, session=record))
        idled += len(rows)
        if len(batch) < BATCH:
            break
    return SweepResult(purged, idled)


async def _candidates(database: Database, where: list[Any]) -> list[tuple[str, str]]:
    """Up to `BATCH` sessions, as (tenant_id, id), that meet `where` now."""
    c = sessions.c
    async with database.read() as conn:
        rows = await conn.execute(select(c.tenant_id, c.id).where(*where).limit(BATCH))
        return [(row.tenant_id, row.id) for row in rows]
