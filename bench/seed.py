"""Seed benchmark data in bulk, straight into the tables (not through the API), with
the counters a real history would have."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, text, update

from chatstore_server.store import (
    Database,
    NewMessage,
    NewSession,
    Role,
    SessionRepository,
    bodies,
    upgrade,
)
from chatstore_server.store.context import message_tokens
from chatstore_server.store.messages import MessageRepository
from chatstore_server.store.schema import messages, sessions

CHUNK = 10_000
TENANT = "bench"


@dataclass(frozen=True)
class Seeded:
    hot_session: str
    """A session with a few hundred messages: the target of the unary scenarios."""
    deep_session: str
    """A session with `deep_messages` messages: for page cost at depth."""
    deep_messages: int
    small_tenant: str
    large_tenant: str
    large_sessions: int


def _session_row(tenant: str, when: datetime, title: str, last_seq: int = 0) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant,
        "title": title,
        "create_time": when,
        "update_time": when,
        "message_count": last_seq,
        "last_seq": last_seq,
    }


def _message_row(session_id: object, seq: int, create_time: datetime) -> dict[str, Any]:
    """A USER message's row (of the bench tenant), as an append would write it."""
    message = NewMessage(role=Role.USER, content=f"message {seq} " + "x" * 80)
    id = uuid.uuid4()
    return {
        "tenant_id": TENANT,
        "id": id,
        "session_id": session_id,
        "seq": seq,
        "role": message.role.value,
        "create_time": create_time,
        "size_bytes": len(message.content),
        "token_estimate": message_tokens(message),
        "body": bodies.encode(message, id, create_time),
    }


async def seed(
    url: str, *, deep_messages: int, large_sessions: int, small_sessions: int = 1_000
) -> Seeded:
    """Migrate `url` and fill it."""
    database = Database.from_url(url)
    try:
        await upgrade(database)
        repository = SessionRepository(database)
        hot = await repository.create(TENANT, NewSession(title="hot"))
        history = MessageRepository(database)
        for start in range(0, 300, 100):
            await history.append(
                TENANT,
                hot.id,
                [
                    NewMessage(
                        role=Role.USER, content=f"message {start + i} " + "x" * 80, token_count=25
                    )
                    for i in range(100)
                ],
            )
        now = datetime.now(UTC)
        deep = _session_row(TENANT, now, "deep", deep_messages)
        async with database.write() as conn:
            await conn.execute(insert(sessions).values(deep))
        for first in range(1, deep_messages + 1, CHUNK):
            rows = [
                _message_row(deep["id"], seq, now + timedelta(microseconds=seq))
                for seq in range(first, min(first + CHUNK, deep_messages + 1))
            ]
            async with database.write() as conn:
                await conn.execute(insert(messages), rows)
        async with database.write() as conn:
            await conn.execute(
                update(sessions)
                .where(sessions.c.tenant_id == TENANT, sessions.c.id == deep["id"])
                .values(size_bytes=90 * deep_messages)
            )
        for tenant, count in (("small", small_sessions), ("large", large_sessions)):
            for first in range(0, count, CHUNK):
                rows = [
                    _session_row(tenant, now - timedelta(seconds=i), f"session {i}")
                    for i in range(first, min(first + CHUNK, count))
                ]
                async with database.write() as conn:
                    await conn.execute(insert(sessions), rows)
        # A bulk load leaves the planner without statistics until autovacuum runs;
        # bulk loaders ANALYZE, as an operator would after an import.
        async with database.write() as conn:
            await conn.execute(text("ANALYZE"))
        return Seeded(hot.id, str(deep["id"]), deep_messages, "small", "large", large_sessions)
    finally:
        await database.dispose()
