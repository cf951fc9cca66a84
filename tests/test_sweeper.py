"""The sweeper: purges what expired, marks quiet sessions IDLE, and is safe to run from
several processes at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from chatstore import AsyncChatStoreClient, Message, NotFound, Retention, Role, SessionStatus
from chatstore_server.config import Settings
from chatstore_server.server import ChatStoreServer
from chatstore_server.store import (
    Database,
    NewSession,
    NotFoundError,
    SessionPolicy,
    SessionRepository,
    sweep,
    upgrade,
)
from chatstore_server.store import Retention as StoredRetention
from chatstore_server.store import (
    SessionStatus as StoredStatus,
)
from tests.conftest import TENANT

POLICY = SessionPolicy(
    ephemeral_ttl=timedelta(hours=1),
    deleted_retention=timedelta(days=1),
    idle_after=timedelta(minutes=30),
)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database.from_url(database_url)
    await upgrade(db)
    yield db
    await db.dispose()


def later(delta: timedelta) -> datetime:
    return datetime.now(UTC) + delta


async def test_sweep_purges_expired_ephemeral_sessions_only(database: Database) -> None:
    sessions = SessionRepository(database, POLICY)
    ephemeral = await sessions.create(TENANT, NewSession(retention=StoredRetention.EPHEMERAL))
    saved = await sessions.create(TENANT, NewSession())

    early = await sweep(database, POLICY, clock=lambda: later(timedelta(minutes=59)))
    late = await sweep(database, POLICY, clock=lambda: later(timedelta(hours=2)))

    assert early.purged == 0
    assert late.purged == 1
    with pytest.raises(NotFoundError):
        await sessions.get(TENANT, ephemeral.id)
    assert (await sessions.get(TENANT, saved.id)).status is StoredStatus.IDLE


async def test_sweep_purges_deleted_sessions_after_retention(database: Database) -> None:
    sessions = SessionRepository(database, POLICY)
    doomed = await sessions.create(TENANT, NewSession())
    await sessions.soft_delete(TENANT, doomed.id)

    kept = await sweep(database, POLICY, clock=lambda: later(timedelta(hours=23)))
    purged = await sweep(database, POLICY, clock=lambda: later(timedelta(days=2)))

    assert (kept.purged, purged.purged) == (0, 1)


async def test_sweep_marks_quiet_sessions_idle_without_moving_update_time(
    database: Database,
) -> None:
    sessions = SessionRepository(database, POLICY)
    quiet = await sessions.create(TENANT, NewSession())

    result = await sweep(database, POLICY, clock=lambda: later(timedelta(minutes=31)))
    after = await sessions.get(TENANT, quiet.id)

    assert result.idled == 1
    assert after.status is StoredStatus.IDLE
    assert after.update_time == quiet.update_time
    assert after.revision == quiet.revision + 1


async def test_concurrent_sweepers_purge_each_session_once(database_url: str) -> None:
    first, second = Database.from_url(database_url), Database.from_url(database_url)
    try:
        await upgrade(first)
        sessions = SessionRepository(first, POLICY)
        for _ in range(1_200):  # more than one sweep batch
            await sessions.create(TENANT, NewSession(retention=StoredRetention.EPHEMERAL))
        now = later(timedelta(hours=2))

        results = await asyncio.gather(
            sweep(first, POLICY, clock=lambda: now), sweep(second, POLICY, clock=lambda: now)
        )

        assert sum(r.purged for r in results) == 1_200
        page = await sessions.list(TENANT, limit=10)
        assert page.items == []
    finally:
        await first.dispose()
        await second.dispose()


async def test_the_server_sweeps_in_the_background(database_url: str) -> None:
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=database_url,
        ephemeral_ttl_seconds=0.5,
        idle_after_seconds=0.5,
        sweep_interval_seconds=0.1,
    )
    server = await ChatStoreServer.start(settings)
    try:
        async with AsyncChatStoreClient(f"127.0.0.1:{server.port}", tenant_id=TENANT) as client:
            ephemeral = await client.create_session(retention=Retention.RETENTION_EPHEMERAL)
            saved = await client.create_session()

            for _ in range(100):  # up to 10 s: the sweeper runs every 0.1 s
                await asyncio.sleep(0.1)
                if (await client.get_session(saved.id)).status == SessionStatus.SESSION_STATUS_IDLE:
                    break
            with pytest.raises(NotFound):
                await client.get_session(ephemeral.id)
            assert (await client.get_session(saved.id)).status == SessionStatus.SESSION_STATUS_IDLE

            woken = await client.append_messages(
                saved.id, [Message(role=Role.ROLE_USER, content="hi")]
            )
            assert woken.session.status == SessionStatus.SESSION_STATUS_ACTIVE
    finally:
        await server.stop(None)
