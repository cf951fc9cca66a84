"""Shared fixtures: a real chatstore server on a loopback port, and a real client.

Each test gets its own database file and its own server process state, so tests
cannot see each other's data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chatstore import ChatStoreClient, PeerKind, SessionKey
from chatstore.v1 import session_service_pb2_grpc
from chatstore_server.config import Settings
from chatstore_server.server import ChatStoreServer

TENANT = "acme"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A fresh SQLite database file (the server creates and migrates it)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'chatstore.db'}"


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
async def client(target: str) -> AsyncIterator[ChatStoreClient]:
    async with ChatStoreClient(target, tenant_id=TENANT) as connected:
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
