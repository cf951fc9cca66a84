"""What appending messages and events have in common: reserving gap-free seqs on the
session row, preconditions, and request ids that make a retry return the first result.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Insert, Row, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from chatstore_server.store.connection import StoreConnection
from chatstore_server.store.database import Database
from chatstore_server.store.errors import (
    ConflictError,
    NotFoundError,
    RequestReusedError,
    SessionStateError,
    StoreError,
)
from chatstore_server.store.records import AccessMode, SessionRecord
from chatstore_server.store.rows import session_record
from chatstore_server.store.schema import append_requests, sessions
from chatstore_server.store.scope import in_tenant, select_session

Kind = Literal["message", "event"]
# Per kind: the session's "newest seq" column and its counter.
_COLUMNS: dict[Kind, tuple[str, str]] = {
    "message": ("last_seq", "message_count"),
    "event": ("last_event_seq", "event_count"),
}


@dataclass(frozen=True, slots=True)
class Precondition:
    """Append only if the session is still as the caller last saw it."""

    expected_last_seq: int | None = None
    """The session's newest seq of this kind."""
    revision: int | None = None
    """The session's revision (its etag)."""


class Replay(StoreError):
    """The request id was seen before: return what that append stored (seqs first..last).

    Raised inside the write transaction, so that anything this attempt wrote rolls back.
    """

    def __init__(self, first_seq: int, last_seq: int) -> None:
        super().__init__(f"replay of seqs {first_seq}..{last_seq}")
        self.first_seq = first_seq
        self.last_seq = last_seq


def _insert_ignoring_conflicts(conn: StoreConnection) -> Insert:
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement: Insert = module.insert(append_requests).on_conflict_do_nothing()
    return statement


async def _prior(
    conn: StoreConnection, session_id: uuid.UUID, kind: Kind, request_id: str, fingerprint: str
) -> Replay | None:
    row = (
        await conn.execute(
            select(
                append_requests.c.first_seq,
                append_requests.c.last_seq,
                append_requests.c.fingerprint,
            ).where(
                append_requests.c.session_id == session_id,
                append_requests.c.kind == kind,
                append_requests.c.request_id == request_id,
            )
        )
    ).first()
    if row is None:
        return None
    if row.fingerprint != fingerprint:
        raise RequestReusedError(session_id, request_id)
    return Replay(row.first_seq, row.last_seq)


async def _refusal(
    conn: StoreConnection,
    tenant_id: str,
    session_id: uuid.UUID,
    kind: Kind,
    precondition: Precondition,
) -> StoreError:
    """Why the session row did not take the append."""
    last_column = _COLUMNS[kind][0]
    row = (
        await conn.execute(
            select(
                sessions.c.delete_time,
                sessions.c.archive_time,
                sessions.c.access_mode,
                sessions.c.revision,
                sessions.c[last_column].label("last"),
            ).where(*in_tenant(tenant_id, session_id))
        )
    ).first()
    if row is None:
        return NotFoundError("session", session_id)
    if row.delete_time is not None:
        return SessionStateError(session_id, "DELETED", f"session {session_id} is deleted")
    if row.archive_time is not None:
        return SessionStateError(session_id, "ARCHIVED", f"session {session_id} is archived")
    if row.access_mode != AccessMode.READ_WRITE.value:
        return SessionStateError(session_id, "READ_ONLY", f"session {session_id} is read-only")
    if precondition.revision is not None and row.revision != precondition.revision:
        return ConflictError("session", session_id, "the etag does not match")
    return ConflictError(
        "session",
        session_id,
        f"its {last_column} is {row.last}, not the expected {precondition.expected_last_seq}",
    )


async def reserve(
    conn: StoreConnection,
    *,
    tenant_id: str,
    session_id: uuid.UUID,
    kind: Kind,
    count: int,
    now: datetime,
    counters: Mapping[str, Any],
    precondition: Precondition,
    request_id: str | None,
    fingerprint: str,
) -> SessionRecord:
    """Reserve `count` seqs of `kind` on the session row, in the caller's transaction.

    One `UPDATE ... RETURNING` moves the newest seq, the counter, `update_time`, the
    revision and `counters` (extra column values), only if the session is writable and
    the precondition holds; on PostgreSQL it also locks the row, so concurrent appends
    to one session queue up here. With a request id, one more statement records it
    (`INSERT ... ON CONFLICT DO NOTHING`).

    Returns:
        The session after the reservation; the new seqs end at its newest seq.

    Raises:
        Replay: The request id was used before with the same request.
        RequestReusedError: ... with a different request.
        NotFoundError, SessionStateError, ConflictError: Nothing was reserved.
    """
    last_column, count_column = _COLUMNS[kind]
    c = sessions.c
    conditions = [
        c.id == session_id,
        c.tenant_id == tenant_id,
        c.delete_time.is_(None),
        c.archive_time.is_(None),
        c.access_mode == AccessMode.READ_WRITE.value,
    ]
    if precondition.expected_last_seq is not None:
        conditions.append(c[last_column] == precondition.expected_last_seq)
    if precondition.revision is not None:
        conditions.append(c.revision == precondition.revision)
    statement = (
        update(sessions)
        .where(*conditions)
        .values(
            {
                last_column: c[last_column] + count,
                count_column: c[count_column] + count,
                "update_time": now,
                "revision": c.revision + 1,
                **counters,
            }
        )
        .returning(*sessions.c)
    )
    row = (await conn.execute(statement)).first()
    if row is None:
        # A retry of an append that succeeded finds its precondition moved on: the
        # request id, when given, decides first.
        if request_id and (prior := await _prior(conn, session_id, kind, request_id, fingerprint)):
            raise prior
        raise await _refusal(conn, tenant_id, session_id, kind, precondition)
    session = session_record(row)
    if request_id:
        last = getattr(session, last_column)
        recorded = (
            await conn.execute(
                _insert_ignoring_conflicts(conn)
                .values(
                    session_id=session_id,
                    kind=kind,
                    request_id=request_id,
                    first_seq=last - count + 1,
                    last_seq=last,
                    fingerprint=fingerprint,
                    create_time=now,
                )
                .returning(append_requests.c.first_seq)
            )
        ).first()
        if recorded is None:  # a concurrent twin committed first: undo ours, replay it
            prior = await _prior(conn, session_id, kind, request_id, fingerprint)
            raise prior or RequestReusedError(session_id, request_id)
    return session


async def replayed(
    database: Database, tenant_id: str, session_id: uuid.UUID, table: Table, replay: Replay
) -> tuple[SessionRecord, list[Row[Any]]]:
    """What a replayed append returns: the session now, and the rows of `table`
    (messages or events) that the first call stored, in seq order."""
    async with database.read() as conn:
        session = (await conn.execute(select_session(tenant_id, session_id))).one()
        rows = (
            await conn.execute(
                select(table)
                .where(
                    table.c.session_id == session_id,
                    table.c.seq.between(replay.first_seq, replay.last_seq),
                )
                .order_by(table.c.seq)
            )
        ).all()
    return session_record(session), list(rows)
