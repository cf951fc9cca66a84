"""Shared fixtures: a real chatstore server on a loopback port, a real client, and a
real database: every test that takes `database_url` runs on a SQLite file, on
PostgreSQL, and on Citus (distributed PostgreSQL: a coordinator and two workers).

Each test gets a database of its own (a fresh SQLite file; a fresh PostgreSQL database,
cloned from a migrated template and dropped afterwards; on Citus, whose shards live on
the workers and cannot be cloned, the cluster's one migrated database with every table
emptied first), so tests cannot see each other's data. PostgreSQL is
`CHATSTORE_TEST_POSTGRES_URL` (default: the local server, database `test`, trust auth).
Citus is `CHATSTORE_TEST_CITUS_URL` if set, else a cluster these fixtures start (and
stop) with `../shared/engines/citus/cluster.sh` when Citus is installed (`make test`
installs it). When PostgreSQL or Citus is missing, its tests are skipped with the
reason, except under CI (`CI=true`), where that fails the run.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chatstore import AsyncChatStoreClient, PeerKind, SessionKey
from chatstore.v1 import session_service_pb2_grpc
from chatstore_server.config import Settings
from chatstore_server.server import ChatStoreServer
from chatstore_server.store import Database, upgrade
from tests.citus import CitusCluster, CitusUnavailable

TENANT = "acme"
POSTGRES_URL = os.environ.get(
    "CHATSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("citus", marks=[pytest.mark.postgres, pytest.mark.citus]),
]
ON_CI = os.environ.get("CI") == "true"
CITUS_SHARDS_PER_TABLE = 4
"""Tests' tables have 4 shards each, not Citus's default 32: emptying the tables before
each test touches every shard (0.15 s for 24 shards, 0.4 s for 192)."""


def postgres_url(database: str) -> str:
    """The SQLAlchemy URL of a database on the test PostgreSQL server."""
    base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        message = f"PostgreSQL is not reachable at {POSTGRES_URL} ({error})"
        if ON_CI:
            pytest.fail(f"{message}; CI needs it", pytrace=False)
        pytest.skip(f"{message}; set CHATSTORE_TEST_POSTGRES_URL to run these tests")


_template: str | None = None


async def _postgres_template() -> str:
    """A migrated database to clone per test (cloning beats migrating each time), made
    on first use and dropped when the session ends."""
    global _template
    if _template is None:
        admin = await _admin()
        name = f"chatstore_template_{uuid.uuid4().hex[:12]}"
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        _template = name
        database = Database.from_url(postgres_url(name))
        try:
            await upgrade(database)
        finally:
            await database.dispose()
    return _template


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _citus is not None:
        _citus.stop()
    if _template is None:
        return

    async def drop() -> None:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{_template}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(drop())


async def _postgres_database(template: str | None) -> AsyncIterator[str]:
    admin = await _admin()
    name = f"chatstore_test_{uuid.uuid4().hex[:12]}"
    clone = f' TEMPLATE "{template}"' if template else ""
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{clone}')
        yield postgres_url(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _unavailable(message: str) -> None:
    """Skip the test with `message`, or fail it on CI, which must run every backend."""
    if ON_CI:
        pytest.fail(f"{message}; CI needs it", pytrace=False)
    pytest.skip(message)


_citus: CitusCluster | None = None
_citus_missing: str | None = None


async def citus_cluster() -> CitusCluster:
    """The session's Citus cluster, started on first use (stopped when the session ends),
    with chatstore's tables migrated (4 shards each). If it cannot be had, every Citus
    test skips (or fails on CI) with the reason."""
    global _citus, _citus_missing
    if _citus_missing is None and _citus is None:
        try:
            _citus = await CitusCluster.start(shards_per_table=CITUS_SHARDS_PER_TABLE)
        except CitusUnavailable as missing:
            _citus_missing = str(missing)
    if _citus_missing is not None:
        _unavailable(_citus_missing)
    assert _citus is not None
    return _citus


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of the test's own: a SQLite file, a PostgreSQL database, or the Citus
    cluster's database, emptied."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'chatstore.db'}"
        return
    if request.param == "citus":
        yield await (await citus_cluster()).emptied()
        return
    async for url in _postgres_database(await _postgres_template()):
        yield url


@pytest.fixture(params=BACKENDS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no schema at all, for migration tests."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    if request.param == "citus":
        cluster = await citus_cluster()
        url = await cluster.new_database()
        try:
            yield url
        finally:
            await cluster.drop_database(url)
        return
    async for url in _postgres_database(None):
        yield url


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """A SQLite file of the test's own, for tests of the embedded backend alone."""
    return tmp_path / "store.db"


@pytest.fixture
async def sqlite_database(sqlite_path: Path) -> AsyncIterator[Database]:
    """The store over `sqlite_path`, migrated; disposed after the test."""
    db = Database.from_url(f"sqlite+aiosqlite:///{sqlite_path}")
    await upgrade(db)
    yield db
    await db.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(listen="127.0.0.1:0", database_url=database_url)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[ChatStoreServer]:
    running = await ChatStoreServer.start(settings)
    yield running
    await running.stop(None)


@pytest.fixture
def target(server: ChatStoreServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture
async def client(target: str) -> AsyncIterator[AsyncChatStoreClient]:
    async with AsyncChatStoreClient(target, tenant_id=TENANT) as connected:
        yield connected


async def snapshot(database_url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every chatstore table, in a stable order: to show nothing changed."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return {
                table: [
                    tuple(row)
                    for row in await conn.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))
                ]
                for table, order in (
                    ("sessions", "id"),
                    ("messages", "id"),
                    ("session_labels", "session_id, key"),
                )
            }
    finally:
        await engine.dispose()


@pytest.fixture
async def stub(target: str) -> AsyncIterator[session_service_pb2_grpc.SessionServiceAsyncStub]:
    """The raw generated stub, for requests the typed client would not send."""
    async with grpc.aio.insecure_channel(target) as channel:
        yield session_service_pb2_grpc.SessionServiceStub(channel)


def key(peer_id: str = "u1", *, channel: str = "discord") -> SessionKey:
    """A routing key for tests."""
    return SessionKey(
        channel=channel, account_id="bot-1", peer_kind=PeerKind.PEER_KIND_DM, peer_id=peer_id
    )
