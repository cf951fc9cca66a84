"""What appending messages and events have in common: reserving gap-free seqs on the
session row, preconditions, and request ids that make a retry return the first result.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Row, Table, Update, bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from chatstore_server.store import bodies
from chatstore_server.store.connection import StoreConnection
from chatstore_server.store.database import Database
from chatstore_server.store.errors import (
    ConflictError,
    CounterOverflowError,
    NotFoundError,
    RequestReusedError,
    SessionStateError,
    StoreError,
)
from chatstore_server.store.notify import CHANNEL, What, announce, payload
from chatstore_server.store.prepared import Prepared
from chatstore_server.store.records import (
    AccessMode,
    MessageRecord,
    Retention,
    SessionRecord,
    SessionStatus,
)
from chatstore_server.store.rows import session_from_columns, session_record
from chatstore_server.store.schema import append_requests, sessions
from chatstore_server.store.scope import read_session
from chatstore_server.store.types import UTCDateTime

Kind = Literal["message", "event"]
RequestKind = Literal["message", "event", "rewind"]
"""What a request id is recorded for (`append_requests.kind`)."""
# Per kind: the session's "newest seq" column and its counter.
_COLUMNS: dict[Kind, tuple[str, str]] = {
    "message": ("last_seq", "message_count"),
    "event": ("last_event_seq", "event_count"),
}
LAST_SEQ_COLUMNS: dict[Kind, str] = {kind: columns[0] for kind, columns in _COLUMNS.items()}
"""Per kind: the session's column holding its newest seq."""
_c = sessions.c
# Per kind: what else an append changes on the session row, from bind parameters that
# the caller passes as `counter_params`.
_COUNTERS: dict[Kind, dict[str, Any]] = {
    "message": {
        "status": SessionStatus.ACTIVE.value,
        "last_message_time": bindparam("now"),
        "last_message_preview": bindparam("preview"),
        "size_bytes": _c.size_bytes + bindparam("added_bytes"),
        "input_tokens": _c.input_tokens + bindparam("added_input_tokens"),
        "output_tokens": _c.output_tokens + bindparam("added_output_tokens"),
        "total_tokens": _c.total_tokens
        + bindparam("added_input_tokens")
        + bindparam("added_output_tokens"),
        # An ephemeral session's expiry slides with every message. (Typed: inside a
        # CASE the column's type does not reach the parameter.)
        "expire_time": case(
            (
                _c.retention == Retention.EPHEMERAL.value,
                bindparam("ephemeral_expire_time", type_=UTCDateTime()),
            ),
            else_=_c.expire_time,
        ),
    },
    "event": {},
}
INT64_MAX = 2**63 - 1
"""The largest value of a BIGINT counter (PostgreSQL raises beyond it; SQLite would
silently turn the sum into a REAL)."""
# Per kind: what else the row must satisfy to take an append: the sums it makes of the
# caller's numbers must stay within BIGINT. Token usage is the one counter a caller
# can set to anything (`UpdateSession`, `CreateSession`); sizes and counts grow by at
# most a batch's worth per append and cannot get near 2**63.
_GUARDS: dict[Kind, list[ColumnElement[bool]]] = {
    "message": [
        _c.input_tokens <= bindparam("input_tokens_room"),
        _c.output_tokens <= bindparam("output_tokens_room"),
        _c.total_tokens <= bindparam("total_tokens_room"),
    ],
    "event": [],
}


def _token_rooms(counter_params: Mapping[str, Any]) -> dict[str, int]:
    """How high each token counter may be for a message append's additions to fit."""
    added_input = counter_params["added_input_tokens"]
    added_output = counter_params["added_output_tokens"]
    return {
        "input_tokens_room": INT64_MAX - added_input,
        "output_tokens_room": INT64_MAX - added_output,
        "total_tokens_room": INT64_MAX - added_input - added_output,
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


# Hot statements are built once, with bind parameters: building and keying a statement
# for SQLAlchemy's compiled cache costs more than SQLite takes to run it.
_REQUEST_COLUMNS = [c.name for c in append_requests.c]
_RECORD_REQUEST: dict[str, Prepared] = {
    name: Prepared(
        module.insert(append_requests)
        .on_conflict_do_nothing()
        .returning(append_requests.c.first_seq),
        column_keys=_REQUEST_COLUMNS,
    )
    for name, module in (("postgresql", postgresql), ("sqlite", sqlite))
}
RECORD_REQUESTS = Prepared(
    sqlite.insert(append_requests).on_conflict_do_nothing(), column_keys=_REQUEST_COLUMNS
)
"""SQLite: `request_values` rows for several appends at once (`execute_many`); its count
of rows written says whether a request id was taken."""


def request_values(
    tenant_id: str,
    session_id: str,
    kind: RequestKind,
    request_id: str,
    count: int,
    last_seq: int,
    fingerprint: str,
    now: datetime,
    result: bytes | None = None,
) -> dict[str, Any]:
    """The `append_requests` row of an append of `count` rows ending at `last_seq`:
    what makes a retry under `request_id` return that append."""
    return {
        "tenant_id": tenant_id,
        "session_id": session_id,
        "kind": kind,
        "request_id": request_id,
        "first_seq": last_seq - count + 1,
        "last_seq": last_seq,
        "fingerprint": fingerprint,
        "create_time": now,
        "result": result,
    }


_PRIOR_REQUEST = select(
    append_requests.c.first_seq,
    append_requests.c.last_seq,
    append_requests.c.fingerprint,
    append_requests.c.result,
).where(
    append_requests.c.tenant_id == bindparam("tenant_id"),
    append_requests.c.session_id == bindparam("session_id"),
    append_requests.c.kind == bindparam("kind"),
    append_requests.c.request_id == bindparam("request_id"),
)


@functools.cache
def reserve_update(
    kind: Kind,
    expected_last_seq: bool,
    revision: bool,
    notify: bool,
    returning_names: tuple[str, ...] | None = None,
) -> Update:
    """UPDATE ... RETURNING that reserves seqs of `kind`, with or without each precondition;
    with `notify`, it also queues the PostgreSQL notification (one round trip less).
    It returns every column of the row, or only those named in `returning_names`.

    Its bind parameters: `session_id`, `in_tenant`, `count`, `now`, `expected_last_seq`,
    `expected_revision`, `notify_payload` and the kind's counter parameters (`reserve`).
    """
    last_column = _COLUMNS[kind][0]
    conditions = [
        _c.id == bindparam("session_id"),
        _c.tenant_id == bindparam("in_tenant"),
        _c.delete_time.is_(None),
        _c.archive_time.is_(None),
        _c.access_mode == AccessMode.READ_WRITE.value,
        *_GUARDS[kind],
    ]
    if expected_last_seq:
        conditions.append(_c[last_column] == bindparam("expected_last_seq"))
    if revision:
        conditions.append(_c.revision == bindparam("expected_revision"))
    returning: list[Any] = [
        c for c in sessions.c if returning_names is None or c.name in returning_names
    ]
    if notify:  # evaluated once, for the one row; discarded if the transaction rolls back
        returning.append(func.pg_notify(CHANNEL, bindparam("notify_payload")))
    return update(sessions).where(*conditions).values(_reserve_values(kind)).returning(*returning)


def _reserve_values(kind: Kind) -> dict[str, Any]:
    """What `reserve_update` of `kind` sets, by column name."""
    last_column, count_column = _COLUMNS[kind]
    return {
        last_column: _c[last_column] + bindparam("count"),
        count_column: _c[count_column] + bindparam("count"),
        "update_time": bindparam("now"),
        "revision": _c.revision + 1,
        **_COUNTERS[kind],
    }


def reserve_params(
    tenant_id: str,
    session_id: str,
    count: int,
    now: datetime,
    precondition: Precondition,
    notify_payload: str | None,
    counter_params: Mapping[str, Any],
) -> dict[str, Any]:
    """The bind values of `reserve_update`'s statement."""
    params = {
        "session_id": session_id,
        "in_tenant": tenant_id,
        "count": count,
        "now": now,
        "expected_last_seq": precondition.expected_last_seq,
        "expected_revision": precondition.revision,
        "notify_payload": notify_payload,
        **counter_params,
    }
    if "added_input_tokens" in counter_params:
        params |= _token_rooms(counter_params)
    return params


@functools.cache
def reserve_statement(
    kind: Kind,
    expected_last_seq: bool,
    revision: bool,
    notify: bool,
    returning_names: tuple[str, ...] | None = None,
) -> Prepared:
    """`reserve_update`'s statement, prepared (once per shape)."""
    return Prepared(reserve_update(kind, expected_last_seq, revision, notify, returning_names))


def changed_by_reserve(kind: Kind) -> tuple[str, ...]:
    """The session columns `reserve_update` of `kind` sets, and `create_time`: with
    them, the row before the UPDATE becomes the row after (when its revision was the
    one before, and its create time the same: the same row, one write later)."""
    return ("create_time", *_reserve_values(kind))


async def prior_request(
    conn: StoreConnection,
    tenant_id: str,
    session_id: str,
    kind: Kind,
    request_id: str,
    fingerprint: str,
) -> Replay | None:
    """The earlier append under `request_id`, as a `Replay` to raise; None if none.

    Raises:
        RequestReusedError: It was made with a different request (`fingerprint`).
    """
    params = {
        "tenant_id": tenant_id,
        "session_id": session_id,
        "kind": kind,
        "request_id": request_id,
    }
    row = (await conn.execute(_PRIOR_REQUEST, params)).first()
    if row is None:
        return None
    if row.fingerprint != fingerprint:
        raise RequestReusedError(session_id, request_id)
    return Replay(row.first_seq, row.last_seq)


async def refused(
    conn: StoreConnection,
    tenant_id: str,
    session_id: str,
    kind: Kind,
    precondition: Precondition,
    request_id: str | None,
    fingerprint: str,
    counter_params: Mapping[str, Any],
) -> StoreError:
    """What to raise when the session row did not take an append: the earlier append's
    `Replay` when the request id was used before (a retry of an append that succeeded
    finds its precondition moved on: the request id decides first), else why not.
    `counter_params` as the append passed them (`reserve`).

    Raises:
        RequestReusedError: The request id was used with a different request.
    """
    if request_id:
        prior = await prior_request(conn, tenant_id, session_id, kind, request_id, fingerprint)
        if prior is not None:
            return prior
    return await _refusal(conn, tenant_id, session_id, kind, precondition, counter_params)


async def _refusal(
    conn: StoreConnection,
    tenant_id: str,
    session_id: str,
    kind: Kind,
    precondition: Precondition,
    counter_params: Mapping[str, Any],
) -> StoreError:
    """Why the session row did not take the append."""
    session = await read_session(conn, tenant_id, session_id)
    if session is None:
        return NotFoundError("session", session_id)
    refusal = writable(session, precondition, kind)
    if refusal is not None:
        return refusal
    if kind == "message":
        rooms = _token_rooms(counter_params)
        for name in ("input_tokens", "output_tokens", "total_tokens"):
            if getattr(session.token_usage, name) > rooms[f"{name}_room"]:
                return CounterOverflowError(session_id, f"token_usage.{name}")
    # The row changed between the two statements: the caller may try again.
    return ConflictError("session", session_id, "it changed while the append was made")


def writable(
    session: SessionRecord, precondition: Precondition, kind: Kind = "message"
) -> StoreError | None:
    """Why the session's history of `kind` cannot be written now (deleted, archived,
    read-only, or `precondition` no longer holds), or None."""
    session_id = session.id
    if session.delete_time is not None:
        return SessionStateError(session_id, "DELETED", f"session {session_id} is deleted")
    if session.archive_time is not None:
        return SessionStateError(session_id, "ARCHIVED", f"session {session_id} is archived")
    if session.access_mode is not AccessMode.READ_WRITE:
        return SessionStateError(session_id, "READ_ONLY", f"session {session_id} is read-only")
    if precondition.revision is not None and session.revision != precondition.revision:
        return ConflictError("session", session_id, "the etag does not match")
    expected = precondition.expected_last_seq
    last_column = _COLUMNS[kind][0]
    last = getattr(session, last_column)
    if expected is not None and last != expected:
        return ConflictError(
            "session", session_id, f"its {last_column} is {last}, not the expected {expected}"
        )
    return None


async def prior_rewind(
    conn: StoreConnection, tenant_id: str, session_id: str, request_id: str, fingerprint: str
) -> tuple[list[MessageRecord] | None, int] | None:
    """What the earlier rewind under `request_id` removed (the messages, None when
    there were too many to keep, and how many), or None when there was none.

    Raises:
        RequestReusedError: It was made with a different request (`fingerprint`).
    """
    params = {
        "tenant_id": tenant_id,
        "session_id": session_id,
        "kind": "rewind",
        "request_id": request_id,
    }
    row = (await conn.execute(_PRIOR_REQUEST, params)).first()
    if row is None:
        return None
    if row.fingerprint != fingerprint:
        raise RequestReusedError(session_id, request_id)
    result = json.loads(row.result)
    packed = result["removed"]
    removed = None if packed is None else bodies.unpack(base64.b64decode(packed))
    return removed, int(result["count"])


async def reserve(
    conn: StoreConnection,
    *,
    tenant_id: str,
    session_id: str,
    kind: Kind,
    count: int,
    now: datetime,
    counter_params: Mapping[str, Any],
    precondition: Precondition,
    request_id: str | None,
    fingerprint: str,
    announcing: What | None = None,
) -> SessionRecord:
    """Reserve `count` seqs of `kind` on the session row, in the caller's transaction.

    One `UPDATE ... RETURNING` moves the newest seq, the counter, `update_time`, the
    revision and the kind's other counters (message appends: status, preview, size,
    tokens, ephemeral expiry; their values in `counter_params`: `preview`,
    `added_bytes`, `added_input_tokens`, `added_output_tokens`,
    `ephemeral_expire_time`), only if the session is writable and the precondition
    holds; on PostgreSQL it also locks the row, so concurrent appends to one session
    queue up here. With a request id,
    one more statement records it (`INSERT ... ON CONFLICT DO NOTHING`). With
    `announcing`, the same UPDATE queues the PostgreSQL change notification
    (`notify.announce`'s), so that the caller need not send it (on Citus, whose
    workers run that UPDATE, a statement of its own on the coordinator does).

    Returns:
        The session after the reservation; the new seqs end at its newest seq.

    Raises:
        Replay: The request id was used before with the same request.
        RequestReusedError: ... with a different request.
        NotFoundError, SessionStateError, ConflictError: Nothing was reserved.
    """
    notice = (
        payload(tenant_id, session_id, announcing)
        if announcing is not None and conn.dialect.name == "postgresql" and not conn.citus
        else None
    )
    statement = reserve_statement(
        kind,
        precondition.expected_last_seq is not None,
        precondition.revision is not None,
        notice is not None,
    )
    params = reserve_params(tenant_id, session_id, count, now, precondition, notice, counter_params)
    if notice is None:  # the row's columns, and nothing else
        returned = await conn.fetch_into(statement, params, session_from_columns)
    else:
        returned = [session_record(row) for row in await conn.fetch(statement, params)]
    if not returned:
        raise await refused(
            conn, tenant_id, session_id, kind, precondition, request_id, fingerprint, counter_params
        )
    session = returned[0]
    if request_id:
        last = getattr(session, LAST_SEQ_COLUMNS[kind])
        recorded = await conn.fetch(
            _RECORD_REQUEST[conn.dialect.name],
            request_values(tenant_id, session_id, kind, request_id, count, last, fingerprint, now),
        )
        if not recorded:  # a concurrent twin committed first: undo ours, replay it
            prior = await prior_request(conn, tenant_id, session_id, kind, request_id, fingerprint)
            raise prior or RequestReusedError(session_id, request_id)
    if announcing is not None and notice is None:
        await announce(conn, tenant_id, session_id, announcing)
    return session


async def replayed(
    database: Database,
    tenant_id: str,
    session_id: str,
    table: Table,
    replay: Replay,
    columns: Sequence[ColumnElement[Any]] = (),
) -> tuple[SessionRecord, list[Row[Any]]]:
    """What a replayed append returns: the session now, and the rows of `table`
    (messages or events; `columns` of them, default all) that the first call stored,
    in seq order."""
    async with database.read() as conn:
        session = await read_session(conn, tenant_id, session_id)
        if session is None:  # gone since the first call (purged)
            raise NotFoundError("session", session_id)
        rows = (
            await conn.execute(
                select(*(columns or table.c))
                .where(
                    table.c.tenant_id == tenant_id,
                    table.c.session_id == session_id,
                    table.c.seq.between(replay.first_seq, replay.last_seq),
                )
                .order_by(table.c.seq)
            )
        ).all()
    return session, list(rows)
