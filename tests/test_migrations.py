"""The Alembic migrations are the schema: they build exactly what the code declares."""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from google.protobuf import json_format
from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    LargeBinary,
    String,
    Uuid,
    column,
    insert,
    inspect,
    table,
    text,
)

from chatstore import (
    AsyncChatStoreClient,
    CheckpointWrite,
    Message,
    NotFound,
    Retention,
    Role,
    SessionStatus,
    TokenUsage,
)
from chatstore.v1 import message_pb2
from chatstore_server.api.messages import fingerprint
from chatstore_server.config import Settings
from chatstore_server.server import ChatStoreServer
from chatstore_server.store import (
    Database,
    MessageRepository,
    NewMessage,
    NewSession,
    SessionRepository,
    bodies,
    migrate,
    upgrade,
)
from chatstore_server.store import Role as StoreRole
from chatstore_server.store.schema import metadata
from chatstore_server.store.types import UTCDateTime, json_type
from tests.conftest import TENANT

# The tables as migration 0001 left them (not as schema.py declares them now).
_V1_SESSIONS = table(
    "sessions",
    column("id", Uuid()),
    column("tenant_id", String()),
    column("agent_id", String()),
    column("title", String()),
    column("metadata", json_type()),
    column("create_time", UTCDateTime()),
    column("update_time", UTCDateTime()),
    column("message_count", BigInteger()),
    column("last_seq", BigInteger()),
)
_V1_MESSAGES = table(
    "messages",
    column("id", Uuid()),
    column("session_id", Uuid()),
    column("seq", BigInteger()),
    column("role", String()),
    column("content", String()),
    column("token_count", Integer()),
    column("create_time", UTCDateTime()),
)


@contextlib.asynccontextmanager
async def _served(database_url: str) -> AsyncIterator[AsyncChatStoreClient]:
    """A client of a server started on `database_url` (which it migrates)."""
    server = await ChatStoreServer.start(Settings(listen="127.0.0.1:0", database_url=database_url))
    try:
        async with AsyncChatStoreClient(f"127.0.0.1:{server.port}", tenant_id=TENANT) as client:
            yield client
    finally:
        await server.stop(None)


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrations_match_the_declared_schema(empty_database_url: str) -> None:
    database = Database.from_url(empty_database_url)
    try:
        await upgrade(database)
        async with database.read() as conn:
            differences = await conn.run_sync(_differences)
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await database.dispose()

    assert differences == []
    assert {"sessions", "messages", "alembic_version"} <= tables


async def test_upgrade_twice_is_a_no_op(empty_database_url: str) -> None:
    database = Database.from_url(empty_database_url)
    try:
        await upgrade(database)
        session = await SessionRepository(database).create(TENANT, NewSession(title="kept"))
        await upgrade(database)
        async with database.read() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        after = await SessionRepository(database).get(TENANT, session.id)
    finally:
        await database.dispose()

    head = ScriptDirectory.from_config(migrate._config(None)).get_current_head()  # type: ignore[arg-type]
    assert [v[0] for v in versions] == [head]
    assert after == session


async def test_a_0001_database_upgrades_in_place_with_its_data(empty_database_url: str) -> None:
    database = Database.from_url(empty_database_url)
    session_id, now = uuid.uuid4(), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    try:
        await upgrade(database, "0001")
        async with database.write() as conn:
            await conn.execute(
                insert(_V1_SESSIONS).values(
                    id=session_id,
                    tenant_id=TENANT,
                    agent_id="bot",
                    title="from v1",
                    metadata={"k": "v"},
                    create_time=now,
                    update_time=now,
                    message_count=3,
                    last_seq=3,
                )
            )
            for seq, role, content, tokens in [
                (1, "user", "héllo", 2),
                (2, "assistant", "hi there", 5),
                (3, "user", "bye", None),
            ]:
                await conn.execute(
                    insert(_V1_MESSAGES).values(
                        id=uuid.uuid4(),
                        session_id=session_id,
                        seq=seq,
                        role=role,
                        content=content,
                        token_count=tokens,
                        create_time=now.replace(second=seq),
                    )
                )
        await upgrade(database)
    finally:
        await database.dispose()

    async with _served(empty_database_url) as client:
        session = await client.get_session(str(session_id))
        messages = [m async for m in client.list_messages(str(session_id))]
        appended = await client.append_messages(
            str(session_id), [Message(role=Role.ROLE_USER, content="after upgrade")]
        )

    assert (session.title, session.agent_id, dict(session.metadata)) == (
        "from v1",
        "bot",
        {"k": "v"},
    )
    assert session.create_time.ToDatetime(tzinfo=UTC) == now
    assert (session.message_count, session.last_seq) == (3, 3)
    assert session.status == SessionStatus.SESSION_STATUS_ACTIVE
    assert session.retention == Retention.RETENTION_SAVED
    assert session.last_message_preview == "bye"
    assert session.size_bytes == len("héllo".encode()) + len("hi there") + len("bye")
    assert session.token_usage == TokenUsage(input_tokens=2, output_tokens=5, total_tokens=7)
    assert session.last_message_time.ToDatetime(tzinfo=UTC) == now.replace(second=3)
    assert [m.content for m in messages] == ["héllo", "hi there", "bye"]
    assert appended.messages[0].seq == 4


# The messages table as migration 0003 left it.
_V3_MESSAGES = table(
    "messages",
    *(column(c.name, c.type) for c in _V1_MESSAGES.c),
    column("tool_calls", json_type()),
    column("structured_content", json_type()),
    column("tool_call_id", String()),
    column("name", String()),
    column("agent_id", String()),
    column("model", String()),
    column("metadata", json_type()),
    column("size_bytes", BigInteger()),
)


def _downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(migrate._config(connection), revision)


async def test_0004_moves_every_message_field_into_the_body_and_back(
    empty_database_url: str,
) -> None:
    database = Database.from_url(empty_database_url)
    session_id, now = uuid.uuid4(), datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    full = {
        "id": uuid.uuid4(),
        "session_id": session_id,
        "seq": 1,
        "role": "assistant",
        "content": "Let me look.",
        "token_count": 12,
        "create_time": now,
        "tool_calls": [{"id": "call_9", "name": "search", "arguments": '{"q":"x"}'}],
        "structured_content": [{"type": "image_url", "url": "https://x"}, 2.5, None],
        "tool_call_id": "",
        "name": "planner",
        "agent_id": "agent-7",
        "model": "gpt-4o",
        "metadata": {"latency_ms": 120, "cached": True},
        "size_bytes": 12,
    }
    bare = {
        "id": uuid.uuid4(),
        "session_id": session_id,
        "seq": 2,
        "role": "tool",
        "content": "x" * 10,
        "token_count": None,
        "create_time": now,
        "tool_calls": None,
        "structured_content": None,
        "tool_call_id": "call_9",
        "name": "",
        "agent_id": "",
        "model": "",
        "metadata": None,
        "size_bytes": 10,
    }
    try:
        await upgrade(database, "0003")
        async with database.write() as conn:
            await conn.execute(
                insert(_V1_SESSIONS).values(
                    id=session_id, tenant_id=TENANT, create_time=now, update_time=now, last_seq=2
                )
            )
            await conn.execute(insert(_V3_MESSAGES), [full, bare])
        await upgrade(database)
    finally:
        await database.dispose()

    async with _served(empty_database_url) as client:
        first, second = [m async for m in client.list_messages(str(session_id))]
        window = await client.get_context_window(str(session_id), max_messages=10)

    assert (first.id, first.seq, first.role, first.content) == (
        str(full["id"]),
        1,
        Role.ROLE_ASSISTANT,
        "Let me look.",
    )
    assert first.HasField("token_count")
    assert first.token_count == 12
    assert first.create_time.ToDatetime(tzinfo=UTC) == now
    assert [(c.id, c.name, c.arguments) for c in first.tool_calls] == [
        ("call_9", "search", '{"q":"x"}')
    ]
    assert json_format.MessageToDict(first.structured_content) == full["structured_content"]
    assert (first.name, first.agent_id, first.model) == ("planner", "agent-7", "gpt-4o")
    assert json_format.MessageToDict(first.metadata) == full["metadata"]
    assert (second.role, second.tool_call_id, second.HasField("token_count")) == (
        Role.ROLE_TOOL,
        "call_9",
        False,
    )
    # 12 tokens given; 10 characters estimated as 3 tokens, plus 4 for framing.
    assert window.token_count == 12 + 3 + 4

    database = Database.from_url(empty_database_url)
    try:
        if await database.is_citus():  # distributed at 0006: it stays so
            with pytest.raises(RuntimeError, match="cannot be downgraded on Citus"):
                async with database.write(offload=True) as conn:
                    await conn.run_sync(_downgrade, "0003")
            return
        async with database.write(offload=True) as conn:
            await conn.run_sync(_downgrade, "0003")
        async with database.read() as conn:
            restored = (await conn.execute(_V3_MESSAGES.select().order_by("seq"))).all()
    finally:
        await database.dispose()

    assert [dict(r._mapping) for r in restored] == [full, bare]


# The tables as migration 0005 left them: UUID ids, no tenant_id on the children.
_V5_SESSIONS = table(
    "sessions",
    *(column(c.name, c.type) for c in _V1_SESSIONS.c),
    column("labels", json_type()),
    column("input_tokens", BigInteger()),
    column("total_tokens", BigInteger()),
    column("last_event_seq", BigInteger()),
    column("checkpoint_count", BigInteger()),
    column("fork_session_id", Uuid()),
    column("fork_message_seq", BigInteger()),
    column("fork_event_seq", BigInteger()),
)
_V5_LABELS = table(
    "session_labels",
    column("session_id", Uuid()),
    column("tenant_id", String()),
    column("key", String()),
    column("value", String()),
)
_V5_MESSAGES = table(
    "messages",
    *(column(c.name, c.type) for c in _V1_MESSAGES.c),
    column("body", LargeBinary()),
    column("token_estimate", BigInteger()),
    column("size_bytes", BigInteger()),
)
_V5_EVENTS = table(
    "events",
    column("id", Uuid()),
    column("session_id", Uuid()),
    column("seq", BigInteger()),
    column("type", String()),
    column("payload", json_type()),
    column("create_time", UTCDateTime()),
)
_V5_CHECKPOINTS = table(
    "checkpoints",
    column("id", Uuid()),
    column("session_id", Uuid()),
    column("message_seq", BigInteger()),
    column("event_seq", BigInteger()),
    column("label", String()),
    column("create_time", UTCDateTime()),
)
_V5_REQUESTS = table(
    "append_requests",
    column("session_id", Uuid()),
    column("kind", String()),
    column("request_id", String()),
    column("first_seq", BigInteger()),
    column("last_seq", BigInteger()),
    column("fingerprint", String()),
    column("create_time", UTCDateTime()),
)


def _body_before_0009(message: NewMessage, at: datetime) -> bytes:
    """A body as the code before 0009 wrote it: without the id and the content (columns
    then; neither field is written when empty)."""
    return bodies.encode(replace(message, content=""), "", at)


async def _fill_0005(database: Database, now: datetime) -> dict[str, uuid.UUID]:
    """Two tenants' sessions at migration 0005: history, events, a checkpoint, labels,
    a request id, and a fork of one of them."""
    ids = {name: uuid.uuid4() for name in ("acme", "globex", "fork", "checkpoint")}
    message = NewMessage(role=StoreRole.USER, content="héllo", token_count=3)
    async with database.write() as conn:
        for tenant in ("acme", "globex"):
            await conn.execute(
                insert(_V5_SESSIONS).values(
                    id=ids[tenant],
                    tenant_id=tenant,
                    title=f"{tenant}'s",
                    create_time=now,
                    update_time=now,
                    message_count=2,
                    last_seq=2,
                    labels={"team": tenant},
                    input_tokens=6,
                    total_tokens=6,
                    last_event_seq=1,
                    checkpoint_count=1,
                )
            )
            await conn.execute(
                insert(_V5_LABELS).values(
                    session_id=ids[tenant], tenant_id=tenant, key="team", value=tenant
                )
            )
            for seq in (1, 2):
                await conn.execute(
                    insert(_V5_MESSAGES).values(
                        id=uuid.uuid4(),
                        session_id=ids[tenant],
                        seq=seq,
                        role="user",
                        content="héllo",
                        token_count=3,
                        create_time=now,
                        body=_body_before_0009(message, now),
                        token_estimate=3,
                        size_bytes=6,
                    )
                )
            await conn.execute(
                insert(_V5_EVENTS).values(
                    id=uuid.uuid4(),
                    session_id=ids[tenant],
                    seq=1,
                    type="input",
                    payload={"content": f"{tenant} ran"},
                    create_time=now,
                )
            )
        await conn.execute(
            insert(_V5_CHECKPOINTS).values(
                id=ids["checkpoint"],
                session_id=ids["acme"],
                message_seq=2,
                event_seq=1,
                label="both",
                create_time=now,
            )
        )
        await conn.execute(
            insert(_V5_REQUESTS).values(
                session_id=ids["acme"],
                kind="message",
                request_id="r-1",
                first_seq=1,
                last_seq=2,
                fingerprint=fingerprint([message_proto("héllo")] * 2),
                create_time=now,
            )
        )
        await conn.execute(
            insert(_V5_SESSIONS).values(
                id=ids["fork"],
                tenant_id="acme",
                title="fork",
                create_time=now,
                update_time=now,
                fork_session_id=ids["acme"],
                fork_message_seq=2,
                fork_event_seq=1,
            )
        )
    return ids


def message_proto(content: str) -> Message:
    return Message(role=Role.ROLE_USER, content=content, token_count=3)


async def test_a_0005_database_upgrades_to_tenant_scoped_keys_in_place(
    empty_database_url: str,
) -> None:
    now = datetime(2026, 12, 1, 2, 3, 4, 567890, tzinfo=UTC)
    database = Database.from_url(empty_database_url)
    try:
        await upgrade(database, "0005")
        ids = await _fill_0005(database, now)
        await upgrade(database)
        async with database.read() as conn:
            differences = await conn.run_sync(_differences)
            children = {
                name: (await conn.execute(text(f"SELECT tenant_id FROM {name}"))).scalars().all()
                for name in ("messages", "events", "checkpoints", "session_labels")
            }
    finally:
        await database.dispose()

    assert differences == []
    assert sorted(children["messages"]) == ["acme", "acme", "globex", "globex"]
    assert sorted(children["events"]) == ["acme", "globex"]
    assert children["checkpoints"] == ["acme"]
    acme, globex = str(ids["acme"]), str(ids["globex"])
    async with _served(empty_database_url) as client:
        session = await client.get_session(acme, tenant_id="acme")
        assert (session.id, session.title, session.last_seq) == (acme, "acme's", 2)
        assert session.token_usage.total_tokens == 6
        assert dict(session.labels) == {"team": "acme"}
        listed = [
            s.id async for s in client.list_sessions(tenant_id="acme", labels={"team": "acme"})
        ]
        assert listed == [acme]
        messages = [m async for m in client.list_messages(acme, tenant_id="acme")]
        assert [(m.seq, m.content, m.session_id) for m in messages] == [
            (1, "héllo", acme),
            (2, "héllo", acme),
        ]
        events = [e async for e in client.list_events(globex, tenant_id="globex")]
        assert [e.input.content for e in events] == ["globex ran"]
        checkpoint = await client.get_checkpoint(acme, str(ids["checkpoint"]), tenant_id="acme")
        assert (checkpoint.label, checkpoint.message_seq) == ("both", 2)
        fork = await client.get_session(str(ids["fork"]), tenant_id="acme")
        assert fork.fork_source.session_id == acme
        # The request id recorded before the upgrade still replays its append.
        replay = await client.append_messages(
            acme, [message_proto("héllo")] * 2, request_id="r-1", tenant_id="acme"
        )
        assert [m.seq for m in replay.messages] == [1, 2]
        # Still its tenant's alone; and new writes get the new rules.
        with pytest.raises(NotFound):
            await client.get_session(acme, tenant_id="globex")
        appended = await client.append_messages(acme, [message_proto("new")], tenant_id="acme")
        assert appended.messages[0].seq == 3
        await client.create_session(tenant_id="globex", session_id=acme)  # free in globex
        await client.delete_session(acme, purge=True, tenant_id="acme")
        assert [m.seq async for m in client.list_messages(globex, tenant_id="globex")] == [1, 2]


_DOWNGRADED = ("sessions", "messages", "events", "checkpoints", "append_requests")


async def _rows(conn: Any, table_name: str) -> list[dict[str, Any]]:
    """Every row of a table, as column-to-value maps, in a stable order."""
    rows = (await conn.execute(text(f"SELECT * FROM {table_name}"))).mappings().all()
    return sorted((dict(row) for row in rows), key=lambda row: repr(sorted(row.items())))


async def test_0006_downgrades_while_every_session_id_is_a_uuid_of_one_tenant(
    empty_database_url: str,
) -> None:
    now = datetime(2026, 12, 1, 2, 3, 4, tzinfo=UTC)
    database = Database.from_url(empty_database_url)
    try:
        await upgrade(database, "0005")
        ids = await _fill_0005(database, now)
        async with database.read() as conn:
            before = {name: await _rows(conn, name) for name in _DOWNGRADED}
        await upgrade(database)
        if await database.is_citus():  # distributed at 0006: it stays so
            with pytest.raises(RuntimeError, match="cannot be downgraded on Citus"):
                async with database.write(offload=True) as conn:
                    await conn.run_sync(_downgrade, "0005")
            return
        async with database.write(offload=True) as conn:
            await conn.run_sync(_downgrade, "0005")
        async with database.read() as conn:
            after = {name: await _rows(conn, name) for name in _DOWNGRADED}
        await upgrade(database)
        await SessionRepository(database).create(
            "globex", NewSession(), session_id=str(ids["acme"])
        )
        async with database.write(offload=True) as conn:
            with pytest.raises(RuntimeError, match="used by more than one tenant"):
                await conn.run_sync(_downgrade, "0005")
    finally:
        await database.dispose()

    assert after == before


async def test_a_0006_database_keeps_its_checkpoints_through_0007_and_back(
    empty_database_url: str,
) -> None:
    now = datetime(2026, 12, 4, 5, 6, 7, tzinfo=UTC)
    database = Database.from_url(empty_database_url)
    try:
        await upgrade(database, "0005")
        ids = await _fill_0005(database, now)
        await upgrade(database, "0006")
        v6_sessions = table(
            "sessions",
            column("tenant_id", String()),
            column("id", String()),
            column("fork_checkpoint_id", Uuid()),
        )
        async with database.write() as conn:
            await conn.execute(
                v6_sessions.update()
                .where(v6_sessions.c.id == str(ids["fork"]))
                .values(fork_checkpoint_id=ids["checkpoint"])
            )
            before = {name: await _rows(conn, name) for name in _DOWNGRADED}
        await upgrade(database)
        citus = await database.is_citus()
        if not citus:
            async with database.write(offload=True) as conn:
                await conn.run_sync(_downgrade, "0006")
            async with database.read() as conn:
                after = {name: await _rows(conn, name) for name in _DOWNGRADED}
            assert after == before
            await upgrade(database)
    finally:
        await database.dispose()

    acme, checkpoint_id = str(ids["acme"]), str(ids["checkpoint"])
    async with _served(empty_database_url) as client:
        checkpoint = await client.get_checkpoint(acme, checkpoint_id, tenant_id="acme")
        assert (checkpoint.label, checkpoint.namespace, checkpoint.payload) == ("both", "", b"")
        fork = await client.get_session(str(ids["fork"]), tenant_id="acme")
        assert fork.fork_source.checkpoint_id == checkpoint_id
        write = CheckpointWrite(task_id="t", index=0, channel="c", payload=b"v")
        assert await client.put_checkpoint_writes(acme, checkpoint_id, [write], tenant_id="acme")
        await client.create_checkpoint(acme, checkpoint_id="lg-1", tenant_id="acme")

    database = Database.from_url(empty_database_url)
    try:
        expected = "cannot be downgraded on Citus" if citus else "ids that are not UUIDs"
        with pytest.raises(RuntimeError, match=expected):
            async with database.write(offload=True) as conn:
                await conn.run_sync(_downgrade, "0006")
    finally:
        await database.dispose()


async def _store_before_0009(conn: Any, seq: int, message: message_pb2.Message) -> None:
    """Store the message at `seq` of TENANT's one session as the code before 0009 did:
    the content in its column, the body without it or the id."""
    content = message.content
    message.ClearField("id")
    message.ClearField("content")
    await conn.execute(
        text(
            "UPDATE messages SET body = :body, content = :content"
            " WHERE tenant_id = :t AND seq = :seq"
        ),
        {"body": message.SerializeToString(), "content": content, "t": TENANT, "seq": seq},
    )


async def test_0008_gives_every_body_its_json_texts(empty_database_url: str) -> None:
    database = Database.from_url(empty_database_url)
    try:
        await upgrade(database, "0007")
        session = await SessionRepository(database).create(TENANT, NewSession(title="old"))
        await MessageRepository(database).append(
            TENANT,
            session.id,
            [
                NewMessage(
                    role=StoreRole.USER,
                    content="a",
                    structured_content={"n": 1, "b": [True, None]},
                    metadata={"z": 1, "a": "x"},
                ),
                NewMessage(role=StoreRole.USER, content="b"),
                NewMessage(role=StoreRole.USER, content="c", structured_content=None),
            ],
        )
        # As the code before 0007 wrote them: the values without their JSON texts.
        async with database.write() as conn:
            stored: Sequence[Any] = (
                await conn.execute(text("SELECT seq, body FROM messages"))
            ).all()
            for seq, body in stored:
                legacy = message_pb2.Message.FromString(body)
                legacy.ClearField("structured_content_json")
                legacy.ClearField("metadata_json")
                await _store_before_0009(conn, seq, legacy)
        await upgrade(database)
        async with database.read() as conn:
            rows: Sequence[Any] = (await conn.execute(text("SELECT seq, body FROM messages"))).all()
            after: dict[int, bytes] = dict(rows)
    finally:
        await database.dispose()

    def texts(body: bytes) -> tuple[str, str]:
        parsed = message_pb2.Message.FromString(body)
        return parsed.structured_content_json, parsed.metadata_json

    # What reads computed from the values (Struct numbers are doubles), keys sorted.
    expected = {1: ('{"b":[true,null],"n":1.0}', '{"a":"x","z":1.0}'), 2: ("", ""), 3: ("null", "")}
    assert {seq: texts(body) for seq, body in after.items()} == expected
    async with _served(empty_database_url) as client:
        listed = [m async for m in client.list_messages(str(session.id))]
    assert [(m.structured_content_json, m.metadata_json) for m in listed] == list(expected.values())


async def test_0009_moves_the_content_and_id_into_the_body_and_back(
    empty_database_url: str,
) -> None:
    contents = ["plain", "", "ünïcödé ✓ 🚀", "x" * 20_000]
    database = Database.from_url(empty_database_url)
    try:
        await upgrade(database, "0008")
        session = await SessionRepository(database).create(TENANT, NewSession(title="old"))
        await MessageRepository(database).append(
            TENANT,
            session.id,
            [NewMessage(role=StoreRole.USER, content=c, metadata={"n": 1}) for c in contents],
        )
        async with database.write() as conn:
            stored: Sequence[Any] = (
                await conn.execute(text("SELECT seq, body FROM messages"))
            ).all()
            for seq, body in stored:
                await _store_before_0009(conn, seq, message_pb2.Message.FromString(body))
            before = await _rows(conn, "messages")
        await upgrade(database)
        async with database.read() as conn:
            columns = await conn.run_sync(
                lambda c: {column["name"] for column in inspect(c).get_columns("messages")}
            )
    finally:
        await database.dispose()

    assert "content" not in columns
    async with _served(empty_database_url) as client:
        listed = [m async for m in client.list_messages(session.id)]
        alone = await client.get_message(session.id, seq=4)
        by_id = await client.get_message(session.id, message_id=listed[2].id)
    assert [m.content for m in listed] == contents
    assert sorted(m.id for m in listed) == sorted(str(uuid.UUID(str(r["id"]))) for r in before)
    assert (alone, by_id) == (listed[3], listed[2])

    database = Database.from_url(empty_database_url)
    try:
        async with database.write(offload=True) as conn:
            await conn.run_sync(_downgrade, "0008")
        async with database.read() as conn:
            after = await _rows(conn, "messages")
        await upgrade(database)
    finally:
        await database.dispose()
    assert after == before  # the bytes 0009 found, and the content column


def test_a_rewind_kept_before_0009_replays_its_messages_whole() -> None:
    legacy = message_pb2.Message(role=message_pb2.ROLE_USER)  # before 0008: no JSON text
    legacy.structured_content.struct_value.update({"k": "v"})
    id = "0190aabb-ccdd-7eef-8001-0203040506ff"
    # What a rewind kept before 0009: the content beside a body without it or the id.
    packed = json.dumps(
        [[id, "s", 1, "user", "héllo", base64.b64encode(legacy.SerializeToString()).decode(),
          1, 0, False]]
    ).encode()  # fmt: skip

    (unpacked,) = bodies.unpack(packed)

    parsed = message_pb2.Message.FromString(unpacked.body)
    assert (parsed.id, parsed.content) == (id, "héllo")
    assert parsed.structured_content_json == '{"k":"v"}'
    assert (unpacked.id, unpacked.seq, unpacked.role) == (id, 1, StoreRole.USER)
    assert bodies.unpack(bodies.pack([unpacked])) == [unpacked]
