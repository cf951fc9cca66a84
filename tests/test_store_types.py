"""The column types read back exactly what was written, on both backends (their
SQLite readers take shortcuts past SQLAlchemy's general parsing)."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Dialect,
    Integer,
    MetaData,
    Table,
    bindparam,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from chatstore.v1 import message_pb2
from chatstore_server.store import (
    Database,
    MessageRepository,
    NewMessage,
    NewSession,
    Role,
    SessionRepository,
    ToolCallRecord,
    bodies,
    upgrade,
)
from chatstore_server.store.connection import InlineConnection, StoreConnection
from chatstore_server.store.context import NEWEST_FIRST
from chatstore_server.store.messages import _MESSAGE_BY_SEQ, _list_statement
from chatstore_server.store.postgres import DirectConnection
from chatstore_server.store.prepared import Prepared
from chatstore_server.store.records import SessionStatus, StoredMessage, WindowMessage
from chatstore_server.store.rows import session_from_columns, session_record
from chatstore_server.store.schema import messages, sessions
from chatstore_server.store.scope import SESSION_BY_ID
from chatstore_server.store.session_list import (
    SessionCursor,
    SessionFilter,
    SessionOrder,
    list_query,
)
from chatstore_server.store.types import UTCDateTime, UUIDType, _uuid_from_hex

_scratch = Table(
    "type_scratch",
    MetaData(),
    Column("n", Integer, primary_key=True),
    Column("id", UUIDType(), nullable=True),
    Column("time", UTCDateTime(), nullable=True),
)
_UUIDS = [uuid.uuid4(), uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.uuid1()]
_TIMES = [
    datetime(2026, 11, 22, 8, 7, 26, 630053, tzinfo=UTC),
    datetime(2026, 1, 1, tzinfo=UTC),  # no fraction of a second
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2026, 6, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=-7))),  # other offset
]


async def test_uuids_and_times_read_back_as_written(database_url: str) -> None:
    database = Database.from_url(database_url)
    try:
        async with database.write(offload=True) as conn:
            await conn.run_sync(lambda c: _scratch.create(c))
        rows = [
            {"n": n, "id": u, "time": t}
            for n, (u, t) in enumerate(zip(_UUIDS, _TIMES, strict=True))
        ]
        rows.append({"n": len(rows), "id": None, "time": None})
        async with database.write() as conn:
            await conn.execute(insert(_scratch), rows)
        async with database.read() as conn:
            read = (await conn.execute(select(_scratch).order_by(_scratch.c.n))).all()
    finally:
        await database.dispose()
    for row, written in zip(read, rows, strict=True):
        assert row.id == written["id"]
        assert row.time == written["time"]
        if row.id is not None:
            assert isinstance(row.id, uuid.UUID)
            assert str(row.id) == str(written["id"])
            assert hash(row.id) == hash(written["id"])
            assert row.time.utcoffset() == timedelta(0)  # always UTC, whatever was written


@pytest.mark.parametrize("value", ["", "abc", "0" * 31, "0" * 33, "g" * 32, "-" + "f" * 31])
def test_a_stored_uuid_that_is_not_32_hex_digits_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="not a stored UUID"):
        _uuid_from_hex(value)


async def test_sqlite_times_stored_with_an_offset_read_as_the_instant_they_name(
    tmp_path: Path,
) -> None:
    # Earlier versions wrote an ephemeral session's sliding expiry untyped, as
    # Python's sqlite3 adapter renders an aware datetime: with "+00:00" appended.
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'offsets.db'}")
    stored = {
        0: "2026-11-22 08:07:26.630053",
        1: "2026-11-22 08:07:26.630053+00:00",
        2: "2026-11-22 01:07:26.630053-07:00",
        3: "2026-11-22 08:07:26",
    }
    try:
        async with database.write(offload=True) as conn:
            await conn.run_sync(lambda c: _scratch.create(c))
        async with database.write() as conn:
            for n, value in stored.items():
                await conn.execute(
                    text("INSERT INTO type_scratch (n, time) VALUES (:n, :time)"),
                    {"n": n, "time": value},
                )
        async with database.read() as conn:
            read = (await conn.execute(select(_scratch.c.time).order_by(_scratch.c.n))).scalars()
            times = list(read)
    finally:
        await database.dispose()
    instant = datetime(2026, 11, 22, 8, 7, 26, 630053, tzinfo=UTC)
    assert times == [instant, instant, instant, instant.replace(microsecond=0)]
    assert all(t.tzinfo is UTC for t in times)


def test_session_from_columns_takes_the_columns_in_table_order() -> None:
    assert list(inspect.signature(session_from_columns).parameters) == [c.name for c in sessions.c]


async def test_prepared_statements_read_what_sqlalchemy_reads(database_url: str) -> None:
    """The shortcut past `Connection.execute` (store/prepared.py: the sqlite3 cursor, or
    asyncpg itself) must not change a value: every hot statement, run both ways on the
    same rows, reads the same."""
    database = Database.from_url(database_url)
    try:
        await upgrade(database)
        session = await SessionRepository(database).create(
            "t", NewSession(title="t", metadata={"k": [1, "x"]}, labels={"a": "b"})
        )
        history = MessageRepository(database)
        batch = [
            NewMessage(role=Role.USER, content="hi", metadata={"m": 1}),
            NewMessage(
                role=Role.ASSISTANT,
                content="",
                tool_calls=(ToolCallRecord("c1", "f", '{"a": 1}'),),
                token_count=7,
                structured_content={"s": [True, None]},
            ),
        ]
        _, stored = await history.append("t", session.id, batch, request_id="r1", fingerprint="f")
        # A replay reads the stored rows back: the same records, ids as text too.
        _, replay = await history.append("t", session.id, batch, request_id="r1", fingerprint="f")
        assert replay == stored
        assert {type(m.id) for m in replay} == {str}
        page = {"session_id": session.id, "tenant_id": "t", "after_seq": 0, "limit": 10}
        hot: list[tuple[Prepared, dict[str, Any]]] = [
            (SESSION_BY_ID, {"session_id": session.id, "tenant_id": "t"}),
            (
                NEWEST_FIRST,
                {
                    "tenant_id": "t",
                    "session_id": session.id,
                    "floor": 0,
                    "compacted_through_seq": 1,
                    "before": 3,
                    "limit": 10,
                },
            ),
            (_list_statement(**_NO_FILTERS), page),
            (_MESSAGE_BY_SEQ, {"session_id": session.id, "tenant_id": "t", "seq": 2}),
            list_query("t", SessionFilter(), SessionOrder(), None, 10),
            list_query(
                "t",
                SessionFilter(statuses=frozenset(SessionStatus), labels={"a": "b"}),
                SessionOrder(field="title", descending=False, pinned_first=True),
                SessionCursor(pinned=False, value="", id=""),
                10,
            ),
        ]
        async with database.read() as conn:
            assert isinstance(conn, InlineConnection | DirectConnection)
            for query, params in hot:
                assert query.plan(conn.dialect) is not None  # the shortcut is taken
                fast = [dict(row) for row in await conn.fetch(query, params)]
                slow = (await conn.execute(query.statement, params)).mappings().all()
                assert fast
                assert fast == [dict(row) for row in slow]
            # Records built straight from the driver's rows, and through SQLAlchemy's.
            # (A named tuple is filled by tuple.__new__ on the driver's rows.)
            makes: list[Callable[..., StoredMessage | WindowMessage]] = [
                WindowMessage,
                StoredMessage,
            ]
            for (query, params), make in zip(hot[1:3], makes, strict=True):
                made = await conn.fetch_into(query, params, make)
                by_sqlalchemy = await StoreConnection.fetch_into(conn, query, params, make)
                assert len(made) == 2
                assert made == by_sqlalchemy
                # As plain rows: the driver's own where nothing needs converting.
                rows = await conn.fetch_tuples(query, params)
                rows_by_sqlalchemy = await StoreConnection.fetch_tuples(conn, query, params)
                assert [tuple(r) for r in rows] == [tuple(m) for m in made]
                assert [tuple(r) for r in rows_by_sqlalchemy] == [tuple(m) for m in made]
                assert all(type(m) is make for m in made)
                ids = [bodies.decode(m.body).id for m in made]
                assert all(id == str(uuid.UUID(id)) for id in ids)  # canonical text
                compacted = [m.compacted for m in made]
                assert compacted == ([False, True] if make is WindowMessage else [False, False])
            # Sessions: built from the row's values in column order, and from a mapping.
            by_id = await conn.fetch_into(hot[0][0], hot[0][1], session_from_columns)
            slow_row = (await conn.execute(hot[0][0].statement, hot[0][1])).one()
            assert by_id == [session_record(slow_row)]
            assert (by_id[0].id, by_id[0].last_seq, by_id[0].labels) == (session.id, 2, {"a": "b"})
            window = await conn.fetch_into(hot[1][0], hot[1][1], WindowMessage)
            assert [(m.seq, m.role, m.token_estimate) for m in window] == [
                (2, Role.ASSISTANT, 7),
                (1, Role.USER, 4 + 1),
            ]
            assert all(type(m.role) is Role for m in window)
    finally:
        await database.dispose()


@pytest.mark.parametrize("name", ["sqlite", "postgresql"])
def test_a_plan_binds_values_in_order_through_their_types_with_defaults(name: str) -> None:
    dialect: Dialect = sqlite.dialect() if name == "sqlite" else postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
    statement = select(messages.c.body).where(
        messages.c.id == bindparam("message_id"),
        messages.c.create_time < bindparam("before"),
        messages.c.tenant_id == bindparam("tenant_id", value="default", required=False),
    )
    plan = Prepared(statement).plan(dialect)
    assert plan is not None
    message_id, before = uuid.UUID(int=7), datetime(2026, 12, 2, 1, 2, 3, 4, tzinfo=UTC)
    # SQLite stores UUIDs as 32 hex digits and times as naive UTC text; asyncpg takes both.
    stored: list[object] = (
        [message_id.hex, "2026-12-02 01:02:03.000004"] if name == "sqlite" else [message_id, before]
    )

    given = plan.values({"message_id": message_id, "before": before, "tenant_id": "t"})
    defaulted = plan.values({"message_id": message_id, "before": before})

    assert given == [*stored, "t"]
    assert defaulted == [*stored, "default"]
    with pytest.raises(KeyError):
        plan.values({"before": before})


def test_sqlite_binds_each_time_as_its_own_utc_text_however_often_it_recurs() -> None:
    process = UTCDateTime().bind_processor(sqlite.dialect())
    base = datetime(2026, 12, 3, 4, 5, 6, 7, tzinfo=UTC)
    times = [base + timedelta(microseconds=i) for i in range(200)]  # more than are kept
    expected = [f"2026-12-03 04:05:06.{7 + i:06d}" for i in range(200)]
    plus_two = timezone(timedelta(hours=2))

    for _ in range(2):  # written again, interleaved with others, and in another zone
        assert [process(t) for t in times] == expected
        assert [process(t.astimezone(plus_two)) for t in reversed(times)] == expected[::-1]
    assert process(None) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        process(datetime(2026, 12, 3, 4, 5, 6, 7))  # a kept time's digits, without a zone


_NO_FILTERS = {
    "descending": False,
    "before": False,
    "cursor": False,
    "roles": False,
    "start": False,
    "end": False,
    "exclude_compacted": False,
}


@pytest.mark.parametrize(
    "message",
    [
        NewMessage(
            role=Role.ASSISTANT,
            content="in the body since 0009: " + "é" * 300,
            tool_calls=(ToolCallRecord("call_1", "search", '{"q": "é"}'),),
            token_count=0,
            structured_content={"parts": [1.5, None, True, "x"]},
            name="planner",
            agent_id="agent-7",
            model="gpt-4o",
            metadata={"nested": {"k": ["v"]}},
        ),
        NewMessage(role=Role.TOOL, tool_call_id="call_1"),
    ],
)
def test_a_message_body_holds_every_field_but_the_session_and_seq(message: NewMessage) -> None:
    at = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
    id = uuid.UUID("0190aabb-ccdd-7eef-8001-0203040506ff")

    body = bodies.encode(message, id, at)

    assert bodies.decode(body) == bodies.MessageBody(
        role=message.role,
        token_count=message.token_count,
        create_time=at,
        tool_calls=message.tool_calls,
        structured_content=message.structured_content,
        tool_call_id=message.tool_call_id,
        name=message.name,
        agent_id=message.agent_id,
        model=message.model,
        metadata=message.metadata,
        id=str(id),
        content=message.content,
    )
    parsed = message_pb2.Message.FromString(body)
    assert (parsed.session_id, parsed.seq, parsed.compacted) == ("", 0, False)
    assert bodies.preview(body) == message.content[:200]
    assert bodies.encode(message, id, at) == body  # deterministic
