"""PostgreSQL: an append (messages or events) in one statement, one round trip.

The seq reservation (`appends.reserve_update`: the session row's UPDATE ... RETURNING,
which for messages also queues the change notification), the request-id record and the
rows' INSERT are data-modifying CTEs of one statement, run outside any transaction
(`Database.autocommit`): PostgreSQL runs it as a transaction of its own and commits all
of it or nothing before it answers. Five round trips (BEGIN, UPDATE, INSERT, INSERT,
COMMIT) become one, and the session's row lock, which queues concurrent appends to one
session, is held for one statement instead of five round trips.

The rows arrive as one array per column and are numbered by `unnest ... WITH
ORDINALITY` after the reserved seqs. A request id used before fails the statement on
`append_requests`' primary key, so nothing is written; the caller then replays the
earlier append. SQLite has no data-modifying CTEs: its appends take `appends.reserve`
and a multi-row INSERT in a group-committed transaction (`store.sqlite`).

Not on Citus: there data-modifying CTEs become subplans whose results travel through
the coordinator, and a `pg_notify` inside a statement runs on a worker, where no
listener hears it. Citus takes the transaction path (`appends.reserve`, then the rows'
INSERT, each statement routed to the tenant's one worker, and the notification queued
on the coordinator).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    Uuid,
    bindparam,
    cast,
    column,
    func,
    insert,
    literal,
    select,
    true,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from chatstore_server.store.appends import (
    LAST_SEQ_COLUMNS,
    Kind,
    Precondition,
    prior_request,
    refused,
    reserve_params,
    reserve_update,
)
from chatstore_server.store.database import Database
from chatstore_server.store.errors import AlreadyExistsError, RequestReusedError, translate_errors
from chatstore_server.store.notify import payload
from chatstore_server.store.prepared import Prepared
from chatstore_server.store.records import SessionRecord
from chatstore_server.store.rows import session_record
from chatstore_server.store.schema import append_requests, events, messages
from chatstore_server.store.types import UTCDateTime

# Per kind: the table, and the columns passed as arrays with their SQL types
# (`session_id` and `seq` come from the reserved session row).
_ROWS: dict[Kind, tuple[Table, dict[str, Any]]] = {
    "message": (
        messages,
        {
            "id": Uuid(),
            "role": String(),
            "token_count": Integer(),
            "create_time": UTCDateTime(),
            "tool_call_id": String(),
            "size_bytes": BigInteger(),
            "body": LargeBinary(),
            "token_estimate": BigInteger(),
        },
    ),
    "event": (
        events,
        # JSON as text: asyncpg does not encode the elements of a jsonb[] parameter.
        {"id": Uuid(), "type": String(), "payload": Text(), "create_time": UTCDateTime()},
    ),
}
_JSON_TEXT = {"payload"}
"""Columns passed as JSON text, cast to jsonb in the statement."""
_REQUEST_PRIMARY_KEY = "pk_append_requests"


@functools.cache
def _statement(
    kind: Kind, expected_last_seq: bool, revision: bool, request_id: bool, notify: bool
) -> Prepared:  # notify: queue the change notification (messages do)
    """The one-statement append of `kind`: with or without each precondition, with or
    without a request id to record, with or without the change notification. Built
    once per shape; answers the session row."""
    last_column = LAST_SEQ_COLUMNS[kind]
    reserved = reserve_update(kind, expected_last_seq, revision, notify=notify)
    reserved_row = reserved.cte("reserved")
    last_seq = reserved_row.c[last_column]
    count = bindparam("count", type_=BigInteger())
    ctes = []
    if request_id:
        record = {
            "tenant_id": reserved_row.c.tenant_id,
            "session_id": reserved_row.c.id,
            "kind": literal(kind),
            "request_id": bindparam("request_id", type_=String()),
            "first_seq": last_seq - count + 1,
            "last_seq": last_seq,
            "fingerprint": bindparam("fingerprint", type_=String()),
            "create_time": bindparam("now", type_=UTCDateTime()),
        }
        ctes.append(
            insert(append_requests)
            .from_select(list(record), select(*record.values()))
            .returning(append_requests.c.first_seq)
            .cte("recorded")
        )
    table, arrays = _ROWS[kind]
    # The arrays' parameters are not named as columns: run through SQLAlchemy (in a
    # transaction, on Citus) an UPDATE would take a parameter named as a column of its
    # table for a value to SET.
    rows = (
        func.unnest(
            *(cast(bindparam(f"rows_{name}"), ARRAY(type_)) for name, type_ in arrays.items())
        )
        .table_valued(*(column(name, type_) for name, type_ in arrays.items()), with_ordinality="n")
        .render_derived(name="r")
    )
    values = {
        name: rows.c[name] if name not in _JSON_TEXT else cast(rows.c[name], JSONB)
        for name in arrays
    } | {
        "tenant_id": reserved_row.c.tenant_id,
        "session_id": reserved_row.c.id,
        "seq": last_seq - count + rows.c.n,
    }
    numbered = select(*values.values()).select_from(reserved_row).join(rows, true())
    ctes.append(
        insert(table).from_select(list(values), numbered).returning(table.c.seq).cte("inserted")
    )
    return Prepared(select(reserved_row).add_cte(*ctes))


async def append_rows(
    database: Database,
    kind: Kind,
    *,
    tenant_id: str,
    session_id: str,
    now: datetime,
    counter_params: Mapping[str, Any],
    precondition: Precondition,
    request_id: str | None,
    fingerprint: str,
    columns: Mapping[str, Sequence[Any]],
    supplied_ids: str,
) -> SessionRecord:
    """Reserve seqs of `kind` and insert the rows, in one statement that commits by itself.

    Args:
        counter_params: As for `appends.reserve` (none for events).
        columns: Each column's values, in append order (messages: `id`, `role`,
            `token_count`, `create_time`, `tool_call_id`, `size_bytes`,
            `body`, `token_estimate`; events: `id`, `type`, `payload`, `create_time`);
            the rows take the seqs after the session's newest of `kind`, in that order.
        supplied_ids: The caller-supplied ids, for an id clash's error.

    Returns:
        The session after the append; the new seqs end at its newest seq of `kind`.

    Raises:
        Replay: The request id was used before with the same request (nothing written).
        RequestReusedError: ... with a different request.
        NotFoundError, SessionStateError, ConflictError: Nothing was written.
        AlreadyExistsError: A caller-supplied message id is taken.
        UnavailableError: The database cannot be reached.
    """
    statement = _statement(
        kind,
        precondition.expected_last_seq is not None,
        precondition.revision is not None,
        request_id is not None,
        kind == "message",
    )
    notice = payload(tenant_id, session_id, "messages") if kind == "message" else None
    params = reserve_params(
        tenant_id, session_id, len(columns["id"]), now, precondition, notice, counter_params
    ) | {"request_id": request_id, "fingerprint": fingerprint}
    params |= {f"rows_{name}": values for name, values in columns.items()}
    async with database.autocommit() as conn:
        try:
            with translate_errors(kind, supplied_ids):
                rows = await conn.fetch(statement, params)
        except AlreadyExistsError as taken:
            if request_id is None or _constraint(taken) != _REQUEST_PRIMARY_KEY:
                raise
            # An append under this request id committed first (perhaps concurrently).
            prior = await prior_request(conn, tenant_id, session_id, kind, request_id, fingerprint)
            raise prior or RequestReusedError(session_id, request_id) from None
        if not rows:
            raise await refused(
                conn,
                tenant_id,
                session_id,
                kind,
                precondition,
                request_id,
                fingerprint,
                counter_params,
            )
    return session_record(rows[0])


def _constraint(error: BaseException) -> str | None:
    """The name of the constraint that the driver error under `error` names, if any,
    without the shard suffix Citus adds (`pk_append_requests_102040` is a shard's copy of
    `pk_append_requests`; Citus's errors give it in the message alone)."""
    seen: BaseException | None = error
    while seen is not None:
        name = getattr(seen, "constraint_name", None)
        if not isinstance(name, str):
            found = _NAMED_CONSTRAINT.search(str(seen))
            name = found.group(1) if found else None
        if name is not None:
            return _SHARD_SUFFIX.sub("", name)
        nested = seen.orig if isinstance(seen, sa_exc.DBAPIError) else None
        seen = nested if isinstance(nested, BaseException) else seen.__cause__
    return None


_NAMED_CONSTRAINT = re.compile(r'violates unique constraint "([^"]+)"')
_SHARD_SUFFIX = re.compile(r"_\d+$")
