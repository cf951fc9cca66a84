"""The Alembic migrations are the schema: they build exactly what the code declares."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
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
from chatstore_server.store import Database, NewSession, SessionRepository, upgrade
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

    assert [v[0] for v in versions] == ["0003"]
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

    server = await ChatStoreServer.start(
        Settings(listen="127.0.0.1:0", database_url=empty_database_url)
    )
    try:
        async with AsyncChatStoreClient(f"127.0.0.1:{server.port}", tenant_id=TENANT) as client:
            session = await client.get_session(str(session_id))
            messages = [m async for m in client.list_messages(str(session_id))]
            appended = await client.append_messages(
                str(session_id), [Message(role=Role.ROLE_USER, content="after upgrade")]
            )
    finally:
        await server.stop(None)

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
