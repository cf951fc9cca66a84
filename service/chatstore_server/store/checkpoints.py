"""Checkpoints: named points (a message seq and an event seq) in a session's history,
with the state saved there (an opaque payload, such as a LangGraph checkpoint), in
namespaces, and the writes of tasks stored against them (LangGraph's pending writes)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    bindparam,
    cast,
    delete,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from chatstore_server.ids import uuid7
from chatstore_server.store.connection import StoreConnection
from chatstore_server.store.database import Database
from chatstore_server.store.errors import (
    InvalidReferenceError,
    NotFoundError,
    SessionStateError,
    translate_errors,
)
from chatstore_server.store.records import (
    CheckpointRecord,
    CheckpointWriteRecord,
    NewCheckpoint,
    Page,
)
from chatstore_server.store.schema import checkpoint_writes, checkpoints, sessions
from chatstore_server.store.scope import in_tenant, require_session
from chatstore_server.store.sessions import utc_now
from chatstore_server.store.types import UTCDateTime

_c = checkpoints.c
_w = checkpoint_writes.c
_BASIC = [c for c in checkpoints.c if c.name != "payload"]


@dataclass(frozen=True, slots=True)
class CheckpointCursor:
    """A position in a session's checkpoint list: just after this one."""

    create_time: datetime
    id: str


@dataclass(frozen=True, slots=True)
class CheckpointFilter:
    """Which checkpoints to list; every given condition must hold."""

    namespace: str | None = None
    """Only this namespace; None means every one."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Only checkpoints whose metadata has each key with an equal value."""
    before: str | None = None
    """Only checkpoints older than this one (by create time, then id)."""


def _record(row: Any, writes: Sequence[CheckpointWriteRecord] = ()) -> CheckpointRecord:
    m = row._mapping
    return CheckpointRecord(
        id=m["id"],
        session_id=m["session_id"],
        message_seq=m["message_seq"],
        event_seq=m["event_seq"],
        label=m["label"],
        description=m["description"],
        tags=tuple(m["tags"] or ()),
        create_time=m["create_time"],
        namespace=m["namespace"],
        parent_id=m["parent_id"],
        payload=m.get("payload"),
        payload_type=m["payload_type"],
        metadata=m["metadata"],
        pending_writes=tuple(writes),
    )


def _metadata_matches(conn: StoreConnection, wanted: Mapping[str, Any]) -> list[Any]:
    """Conditions that the metadata has each key of `wanted` with an equal value:
    containment on PostgreSQL (numbers compare by value), `json_extract` on SQLite."""
    if not wanted:
        return []
    if conn.dialect.name == "postgresql":
        return [_c.metadata.op("@>")(cast(literal(_json_text(wanted)), postgresql.JSONB))]
    conditions = []
    for index, (key, value) in enumerate(wanted.items()):
        path: Any = bindparam(f"filter_path_{index}", '$."' + key.replace('"', '\\"') + '"')
        found = func.json_extract(_c.metadata, path)
        if isinstance(value, dict | list):
            # json_extract gives objects and arrays as minified JSON text.
            conditions.append(found == func.json(_json_text(value)))
        elif value is None:
            conditions.append(func.json_type(_c.metadata, path) == "null")
        elif isinstance(value, bool):
            conditions.append(func.json_type(_c.metadata, path) == ("true" if value else "false"))
        else:
            conditions.append(found == literal(value))
    return conditions


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class CheckpointRepository:
    """A session's checkpoints and their writes, scoped by tenant."""

    def __init__(self, database: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = database
        self._clock = clock

    async def create(
        self, tenant_id: str, session_id: str, new: NewCheckpoint, *, replace: bool = False
    ) -> CheckpointRecord:
        """Record a checkpoint at the given seqs (None: the session's newest), and count
        it on the session, in one transaction. With `replace`, a checkpoint of the same
        id in the namespace is replaced (payload, metadata, parent, labels and seqs; its
        create time and writes stay), and not counted again.

        Raises:
            NotFoundError: No such session in the tenant.
            SessionStateError: The session is soft-deleted.
            InvalidReferenceError: A seq is beyond the session's newest.
            AlreadyExistsError: The id is taken in the namespace (without `replace`).
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
            message_seq = row.last_seq if new.message_seq is None else new.message_seq
            event_seq = row.last_event_seq if new.event_seq is None else new.event_seq
            if message_seq > row.last_seq:
                raise InvalidReferenceError(
                    "checkpoint.message_seq", f"the session's newest message is {row.last_seq}"
                )
            if event_seq > row.last_event_seq:
                raise InvalidReferenceError(
                    "checkpoint.event_seq", f"the session's newest event is {row.last_event_seq}"
                )
            checkpoint_id = new.id or str(uuid7())
            values = {
                "tenant_id": tenant_id,
                "session_id": session_id,
                "namespace": new.namespace,
                "id": checkpoint_id,
                "message_seq": message_seq,
                "event_seq": event_seq,
                "label": new.label,
                "description": new.description,
                "tags": list(new.tags) or None,
                "create_time": now,
                "parent_id": new.parent_id,
                "payload": new.payload,
                "payload_type": new.payload_type,
                "metadata": new.metadata,
            }
            insert = (sqlite if conn.dialect.name == "sqlite" else postgresql).insert(checkpoints)
            statement = insert.values(values)
            if replace:
                key = ["tenant_id", "session_id", "namespace", "id"]
                # The key stays, and so does create_time (immutable, AIP-148).
                kept = {*key, "create_time"}
                statement = statement.on_conflict_do_update(
                    index_elements=key,
                    set_={k: statement.excluded[k] for k in values if k not in kept},
                )
            with translate_errors("checkpoint", checkpoint_id):
                # xmax = 0 on PostgreSQL (or the rowid's absence on SQLite) cannot
                # tell an insert from an update portably: count before instead.
                existed = replace and await self._exists(
                    conn, tenant_id, session_id, new.namespace, checkpoint_id
                )
                created = (await conn.execute(statement.returning(_c.create_time))).scalar_one()
            await conn.execute(
                update(sessions)
                .where(*in_tenant(tenant_id, session_id))
                .values(
                    checkpoint_count=sessions.c.checkpoint_count + (0 if existed else 1),
                    revision=sessions.c.revision + 1,
                    update_time=now,
                )
            )
        return CheckpointRecord(
            id=checkpoint_id,
            session_id=session_id,
            message_seq=message_seq,
            event_seq=event_seq,
            label=new.label,
            description=new.description,
            tags=tuple(new.tags),
            create_time=created,
            namespace=new.namespace,
            parent_id=new.parent_id,
            payload=new.payload,
            payload_type=new.payload_type,
            metadata=new.metadata,
        )

    @staticmethod
    async def _exists(
        conn: StoreConnection, tenant_id: str, session_id: str, namespace: str, checkpoint_id: str
    ) -> bool:
        found = await conn.scalar(
            select(_c.id).where(*_one(tenant_id, session_id, namespace, checkpoint_id))
        )
        return found is not None

    async def get(
        self, tenant_id: str, session_id: str, checkpoint_id: str | None, namespace: str = ""
    ) -> CheckpointRecord:
        """One checkpoint, whole (payload and writes); with no `checkpoint_id`, the
        namespace's newest.

        Raises:
            NotFoundError: No such session ("session") or checkpoint ("checkpoint").
            UnavailableError: The database cannot be reached.
        """
        query = select(checkpoints)
        if checkpoint_id:
            query = query.where(*_one(tenant_id, session_id, namespace, checkpoint_id))
        else:
            query = (
                query.where(
                    _c.tenant_id == tenant_id,
                    _c.session_id == session_id,
                    _c.namespace == namespace,
                )
                .order_by(_c.create_time.desc(), _c.id.desc())
                .limit(1)
            )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
            if row is None:
                await require_session(conn, tenant_id, session_id)
                raise NotFoundError("checkpoint", checkpoint_id or f"in namespace {namespace!r}")
            writes = await _writes(conn, tenant_id, session_id, [(row.namespace, row.id)])
        return _record(row, writes.get((row.namespace, row.id), ()))

    async def list(
        self,
        tenant_id: str,
        session_id: str,
        *,
        limit: int,
        where: CheckpointFilter | None = None,
        descending: bool = False,
        whole: bool = False,
        after: CheckpointCursor | None = None,
    ) -> Page[CheckpointRecord, CheckpointCursor]:
        """A page of the session's checkpoints matching `where`, by age (oldest first,
        or newest first when `descending`); `whole` reads payloads and writes too.

        Raises:
            NotFoundError: No such session in the tenant ("session"), or no `before`
                checkpoint in it ("checkpoint").
            UnavailableError: The database cannot be reached.
        """
        where = where or CheckpointFilter()
        key = tuple_(_c.create_time, _c.id)
        in_namespace = [] if where.namespace is None else [_c.namespace == where.namespace]
        async with self._db.read() as conn:
            query = select(*(checkpoints.c if whole else _BASIC)).where(
                _c.tenant_id == tenant_id, _c.session_id == session_id
            )
            query = query.where(*in_namespace, *_metadata_matches(conn, where.metadata))
            if where.before is not None:
                anchor = (
                    await conn.execute(
                        select(_c.create_time, _c.id).where(
                            _c.tenant_id == tenant_id,
                            _c.session_id == session_id,
                            _c.id == where.before,
                            *(
                                [_c.namespace == where.namespace]
                                if where.namespace is not None
                                else []
                            ),
                        )
                    )
                ).first()
                if anchor is None:
                    await require_session(conn, tenant_id, session_id)
                    raise NotFoundError("checkpoint", where.before)
                query = query.where(key < _position(anchor.create_time, anchor.id))
            if after is not None:
                position = _position(after.create_time, after.id)
                query = query.where(key < position if descending else key > position)
            order = [_c.create_time.desc(), _c.id.desc()] if descending else [_c.create_time, _c.id]
            rows = list((await conn.execute(query.order_by(*order).limit(limit + 1))).all())
            if not rows:
                await require_session(conn, tenant_id, session_id)
            writes = (
                await _writes(
                    conn, tenant_id, session_id, [(r.namespace, r.id) for r in rows[:limit]]
                )
                if whole and rows
                else {}
            )
        items = [_record(r, writes.get((r.namespace, r.id), ())) for r in rows[:limit]]
        last = items[-1] if len(rows) > limit else None
        return Page(items, CheckpointCursor(last.create_time, last.id) if last else None)

    async def put_writes(
        self,
        tenant_id: str,
        session_id: str,
        namespace: str,
        checkpoint_id: str,
        writes: Sequence[CheckpointWriteRecord],
    ) -> int:
        """Store `writes` against the checkpoint, each replacing the write of the same
        task and index; how many were stored. The checkpoint need not exist yet
        (LangGraph stores a step's writes while the checkpoint is being stored).

        Raises:
            NotFoundError: No such session.
            SessionStateError: The session is soft-deleted.
            UnavailableError: The database cannot be reached.
        """
        rows = [
            {
                "tenant_id": tenant_id,
                "session_id": session_id,
                "namespace": namespace,
                "checkpoint_id": checkpoint_id,
                "task_id": w.task_id,
                "idx": w.index,
                "channel": w.channel,
                "payload": w.payload,
                "payload_type": w.payload_type,
                "task_path": w.task_path,
            }
            for w in writes
        ]
        async with self._db.write() as conn:
            await _live_session(conn, tenant_id, session_id)
            insert = (sqlite if conn.dialect.name == "sqlite" else postgresql).insert(
                checkpoint_writes
            )
            keys = ["tenant_id", "session_id", "namespace", "checkpoint_id", "task_id", "idx"]
            statement = insert.on_conflict_do_update(
                index_elements=keys,
                set_={
                    name: insert.excluded[name]
                    for name in ("channel", "payload", "payload_type", "task_path")
                },
            )
            await conn.execute(statement, rows)
        return len(rows)

    async def delete(
        self, tenant_id: str, session_id: str, namespace: str, checkpoint_id: str
    ) -> None:
        """Delete one checkpoint and its writes; the session counts one fewer.

        Raises:
            NotFoundError: No such session ("session") or checkpoint ("checkpoint").
            UnavailableError: The database cannot be reached.
        """
        async with self._db.write() as conn:
            gone = await conn.execute(
                delete(checkpoints)
                .where(*_one(tenant_id, session_id, namespace, checkpoint_id))
                .returning(_c.id)
            )
            if gone.first() is None:
                await require_session(conn, tenant_id, session_id)
                raise NotFoundError("checkpoint", checkpoint_id)
            await conn.execute(
                delete(checkpoint_writes).where(
                    _w.tenant_id == tenant_id,
                    _w.session_id == session_id,
                    _w.namespace == namespace,
                    _w.checkpoint_id == checkpoint_id,
                )
            )
            await _count(conn, tenant_id, session_id, -1, self._clock())

    async def prune(self, tenant_id: str, session_id: str, *, keep_latest: bool) -> int:
        """Delete the session's checkpoints (with their writes), but the newest of each
        namespace when `keep_latest`; how many were deleted. Writes whose checkpoint
        was never stored go too.

        Raises:
            NotFoundError: No such session in the tenant.
            UnavailableError: The database cannot be reached.
        """
        scoped = [_c.tenant_id == tenant_id, _c.session_id == session_id]
        statement = delete(checkpoints).where(*scoped)
        if keep_latest:
            newer = checkpoints.alias("newer")
            statement = statement.where(
                select(newer.c.id)
                .where(
                    newer.c.tenant_id == tenant_id,
                    newer.c.session_id == session_id,
                    newer.c.namespace == _c.namespace,
                    tuple_(newer.c.create_time, newer.c.id) > tuple_(_c.create_time, _c.id),
                )
                .exists()
            )
        async with self._db.write() as conn:
            await require_session(conn, tenant_id, session_id)
            deleted = len((await conn.execute(statement.returning(_c.id))).all())
            # The writes of what is gone, and any whose checkpoint never came.
            await conn.execute(
                delete(checkpoint_writes).where(
                    _w.tenant_id == tenant_id,
                    _w.session_id == session_id,
                    ~select(_c.id)
                    .where(
                        *scoped,
                        _c.namespace == _w.namespace,
                        _c.id == _w.checkpoint_id,
                    )
                    .exists(),
                )
            )
            if deleted:
                await _count(conn, tenant_id, session_id, -deleted, self._clock())
        return deleted


def _one(tenant_id: str, session_id: str, namespace: str, checkpoint_id: str) -> list[Any]:
    return [
        _c.tenant_id == tenant_id,
        _c.session_id == session_id,
        _c.namespace == namespace,
        _c.id == checkpoint_id,
    ]


def _position(create_time: datetime, checkpoint_id: str) -> ColumnElement[Any]:
    return tuple_(literal(create_time, UTCDateTime()), literal(checkpoint_id, String()))


async def _live_session(conn: StoreConnection, tenant_id: str, session_id: str) -> None:
    found = (
        await conn.execute(select(sessions.c.delete_time).where(*in_tenant(tenant_id, session_id)))
    ).first()
    if found is None:
        raise NotFoundError("session", session_id)
    if found.delete_time is not None:
        raise SessionStateError(session_id, "DELETED", f"session {session_id} is deleted")


async def _count(
    conn: StoreConnection, tenant_id: str, session_id: str, by: int, now: datetime
) -> None:
    """Move the session's `checkpoint_count` by `by` (a write: revision and time too)."""
    await conn.execute(
        update(sessions)
        .where(*in_tenant(tenant_id, session_id))
        .values(
            checkpoint_count=func.max(sessions.c.checkpoint_count + by, 0)
            if conn.dialect.name == "sqlite"
            else func.greatest(sessions.c.checkpoint_count + by, 0),
            revision=sessions.c.revision + 1,
            update_time=now,
        )
    )


async def _writes(
    conn: StoreConnection, tenant_id: str, session_id: str, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[CheckpointWriteRecord]]:
    """The writes of the checkpoints `keys` ((namespace, id) pairs), by key, in the
    order LangGraph's savers give them: by task path, task id, then index."""
    rows = await conn.execute(
        select(checkpoint_writes)
        .where(
            _w.tenant_id == tenant_id,
            _w.session_id == session_id,
            # Row values, not an OR per key: SQLite parses a chain of 1,000 ORs past its
            # expression depth limit.
            tuple_(_w.namespace, _w.checkpoint_id).in_(list(keys)),
        )
        .order_by(_w.task_path, _w.task_id, _w.idx)
    )
    found: dict[tuple[str, str], list[CheckpointWriteRecord]] = {}
    for row in rows:
        found.setdefault((row.namespace, row.checkpoint_id), []).append(
            CheckpointWriteRecord(
                task_id=row.task_id,
                index=row.idx,
                channel=row.channel,
                payload=row.payload,
                payload_type=row.payload_type,
                task_path=row.task_path,
            )
        )
    return found
