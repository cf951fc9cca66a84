"""The run log: events appended with gap-free per-session seqs, read by page."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select

from chatstore_server.ids import uuid7
from chatstore_server.store import pg_append
from chatstore_server.store.appends import Precondition, Replay, replayed, reserve
from chatstore_server.store.changes import Change, ChangeFeed
from chatstore_server.store.database import Database
from chatstore_server.store.notify import announce
from chatstore_server.store.records import (
    EventRecord,
    NewEvent,
    Page,
    SessionChangeRecord,
    SessionPolicy,
    SessionRecord,
    SharedStateRecord,
)
from chatstore_server.store.rows import event_record
from chatstore_server.store.schema import events
from chatstore_server.store.scope import require_session
from chatstore_server.store.session_change import apply_change
from chatstore_server.store.sessions import utc_now
from chatstore_server.store.shared_states import SharedStateRepository


class EventRepository:
    """A session's run log, scoped by tenant through its session."""

    def __init__(
        self,
        database: Database,
        clock: Callable[[], datetime] = utc_now,
        policy: SessionPolicy | None = None,
        feed: ChangeFeed | None = None,
        max_metadata_bytes: int = 65_536,
    ) -> None:
        self._db = database
        self._clock = clock
        self._policy = policy or SessionPolicy()
        self._feed = feed or ChangeFeed()
        self._max_metadata_bytes = max_metadata_bytes
        self._shared = SharedStateRepository(database, clock, max_metadata_bytes)

    async def append(
        self,
        tenant_id: str,
        session_id: str,
        batch: Sequence[NewEvent],
        *,
        precondition: Precondition | None = None,
        request_id: str | None = None,
        fingerprint: str = "",
        change: SessionChangeRecord | None = None,
    ) -> tuple[SessionRecord, list[EventRecord], list[SharedStateRecord]]:
        """Append `batch` (non-empty) to the run log in one transaction; as
        `MessageRepository.append` (and with `change`, `append_changing`), with event
        seqs and `event_count`.

        Returns:
            The session after, the stored events, the shared states `change` patched.

        Raises:
            NotFoundError, SessionStateError, ConflictError, RequestReusedError,
            InvalidReferenceError, UnavailableError: As for messages.
        """
        if not batch:
            raise ValueError("append needs at least one event")
        now = self._clock()
        ids = [uuid7() for _ in batch]
        created = [event.create_time or now for event in batch]

        def records(session: SessionRecord) -> list[EventRecord]:
            first_seq = session.last_event_seq - len(batch) + 1
            return [
                EventRecord(
                    id=ids[offset],
                    session_id=session_id,
                    seq=first_seq + offset,
                    type=event.type,
                    payload=event.payload,
                    create_time=created[offset],
                )
                for offset, event in enumerate(batch)
            ]

        states: list[SharedStateRecord] = []
        try:
            if change is None and await self._db.one_statement_appends():
                session = await pg_append.append_rows(
                    self._db,
                    "event",
                    tenant_id=tenant_id,
                    session_id=session_id,
                    now=now,
                    counter_params={},
                    precondition=precondition or Precondition(),
                    request_id=request_id,
                    fingerprint=fingerprint,
                    columns={
                        "id": ids,
                        "type": [event.type for event in batch],
                        "payload": [json.dumps(event.payload) for event in batch],
                        "create_time": created,
                    },
                    supplied_ids="",
                )
                return session, records(session), states
            async with self._db.write() as conn:
                session = await reserve(
                    conn,
                    tenant_id=tenant_id,
                    session_id=session_id,
                    kind="event",
                    count=len(batch),
                    now=now,
                    counter_params={},
                    precondition=precondition or Precondition(),
                    request_id=request_id,
                    fingerprint=fingerprint,
                )
                stored = records(session)
                await conn.execute(
                    events.insert(),
                    [
                        {
                            "tenant_id": tenant_id,
                            "id": e.id,
                            "session_id": e.session_id,
                            "seq": e.seq,
                            "type": e.type,
                            "payload": e.payload,
                            "create_time": e.create_time,
                        }
                        for e in stored
                    ],
                )
                if change is not None:
                    session, states = await apply_change(
                        conn, session, change, now, self._policy, self._max_metadata_bytes
                    )
                    if change.fields or change.metadata_patch is not None:
                        await announce(conn, tenant_id, session_id, "session")
        except Replay as replay:
            session, events_stored = await self._replay(tenant_id, session_id, replay)
            names = [patch.name for patch in change.shared_state_patches] if change else []
            return session, events_stored, await self._shared.get_many(tenant_id, names)
        if change is not None and (change.fields or change.metadata_patch is not None):
            self._feed.publish(Change(tenant_id, session_id, session=session))
        return session, stored, states

    async def _replay(
        self, tenant_id: str, session_id: str, replay: Replay
    ) -> tuple[SessionRecord, list[EventRecord]]:
        session, rows = await replayed(self._db, tenant_id, session_id, events, replay)
        return session, [event_record(r) for r in rows]

    async def list(
        self, tenant_id: str, session_id: str, *, limit: int, after_seq: int = 0
    ) -> Page[EventRecord, int]:
        """A page of events with `seq > after_seq`, oldest first; the cursor is the last seq.

        Raises:
            NotFoundError: No such session in the tenant.
            UnavailableError: The database cannot be reached.
        """
        query = (
            select(events)
            .where(
                events.c.tenant_id == tenant_id,
                events.c.session_id == session_id,
                events.c.seq > after_seq,
            )
            .order_by(events.c.seq)
            .limit(limit + 1)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
            if not rows:
                await require_session(conn, tenant_id, session_id)
        items = [event_record(r) for r in rows[:limit]]
        return Page(items, items[-1].seq if len(rows) > limit else None)
