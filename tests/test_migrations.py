"""The Alembic migrations are the schema: they build exactly what the code declares."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from google.protobuf import json_format
from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    String,
    Uuid,
    column,
    insert,
    inspect,
    table,
    text,
)

from chatstore import AsyncChatStoreClient, Message, Retention, Role, SessionStatus, TokenUsage
from chatstore_server.config import Settings
from chatstore_server.server import ChatStoreServer
from chatstore_server.store import Database, NewSession, SessionRepository, migrate, upgrade
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

    assert [v[0] for v in versions] == ["0005"]
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
        async with database.write(offload=True) as conn:
            await conn.run_sync(_downgrade, "0003")
        async with database.read() as conn:
            restored = (await conn.execute(_V3_MESSAGES.select().order_by("seq"))).all()
    finally:
        await database.dispose()

    assert [dict(r._mapping) for r in restored] == [full, bare]
