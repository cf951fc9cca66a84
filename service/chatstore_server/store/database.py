"""The engine, its transactions, and the SQLite settings that make it a durable store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from chatstore_server.store.errors import StoreError, translate_errors

# Execution option that marks a connection as a writer (see `_begin`).
_WRITE_OPTION = "chatstore_write"

# WAL lets readers run beside the one writer; synchronous=FULL syncs the WAL at every
# commit, so an acknowledged write survives a power cut, not only a process crash.
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
)


def _on_sqlite_connect(
    dbapi_connection: Any, _record: ConnectionPoolEntry, *, busy_timeout_ms: int
) -> None:
    # Take transaction control from the driver, so that `_begin` decides how to BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (*_SQLITE_PRAGMAS, f"PRAGMA busy_timeout={busy_timeout_ms}"):
        cursor.execute(pragma)
    cursor.close()


def _begin(connection: Connection) -> None:
    # A writer takes SQLite's write lock up front (BEGIN IMMEDIATE). A deferred
    # transaction that read first could not upgrade to writing once another process
    # had committed, and would fail at once (SQLITE_BUSY_SNAPSHOT) instead of waiting.
    # Readers open no transaction: each statement reads its own committed snapshot,
    # which saves a round trip to the connection's thread per read.
    if connection.get_execution_options().get(_WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An async engine with read and write transactions.

    On SQLite, writes are also serialized within the process (SQLite allows one
    writer at a time anyway; queueing them here is fairer and cheaper than each
    connection sleeping in SQLite's busy handler). Across processes, `BEGIN IMMEDIATE`
    and `busy_timeout` keep them correct.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect_name = engine.dialect.name
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})
        self._write_lock = asyncio.Lock() if self.dialect_name == "sqlite" else None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 10,
        pool_timeout_seconds: float = 5.0,
        connect_timeout_seconds: float = 5.0,
        command_timeout_seconds: float | None = None,
        busy_timeout_ms: int = 5000,
        echo: bool = False,
    ) -> Database:
        """Create the engine for `url`, a SQLAlchemy URL naming an async driver.

        Args:
            url: `sqlite+aiosqlite:///path.db` (relative to the working directory, or
                `////abs/path.db`) or `postgresql+asyncpg://user@host:port/db`.
            pool_size: Connections kept open.
            max_overflow: Extra connections allowed under load, closed when idle.
            pool_timeout_seconds: How long a call waits for a free connection.
            connect_timeout_seconds: How long opening a PostgreSQL connection may take.
            command_timeout_seconds: How long one PostgreSQL statement may take; None
                means no limit.
            busy_timeout_ms: How long a SQLite writer waits for another process's lock.
            echo: Log every statement (debugging only).

        Raises:
            ValueError: The URL names an unsupported database or driver.
        """
        parsed = make_url(url)
        kwargs: dict[str, Any] = {"echo": echo}
        if parsed.get_backend_name() == "sqlite":
            if parsed.get_driver_name() != "aiosqlite":
                raise ValueError("SQLite URLs must use the aiosqlite driver: sqlite+aiosqlite://")
        elif parsed.get_backend_name() == "postgresql":
            if parsed.get_driver_name() != "asyncpg":
                raise ValueError("PostgreSQL URLs must use asyncpg: postgresql+asyncpg://")
            kwargs["connect_args"] = {
                "timeout": connect_timeout_seconds,
                "command_timeout": command_timeout_seconds,
            }
        else:
            raise ValueError(f"unsupported database {parsed.get_backend_name()!r}")
        kwargs |= {
            "pool_size": pool_size,
            "max_overflow": max_overflow,
            "pool_timeout": pool_timeout_seconds,
            # A pooled PostgreSQL connection may have died while idle (restart, proxy):
            # check it out with a ping. A SQLite file connection cannot die that way.
            "pool_pre_ping": parsed.get_backend_name() == "postgresql",
        }
        engine = create_async_engine(parsed, **kwargs)
        if engine.dialect.name == "sqlite":

            def on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
                _on_sqlite_connect(dbapi_connection, record, busy_timeout_ms=busy_timeout_ms)

            event.listen(engine.sync_engine, "connect", on_connect)
            event.listen(engine.sync_engine, "begin", _begin)
        return cls(engine)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading; it writes nothing. On PostgreSQL the block is one
        transaction (one snapshot); on SQLite each statement sees the newest commit.

        Raises:
            UnavailableError: The database cannot be reached.
        """
        with translate_errors():
            async with self.engine.connect() as connection:
                yield connection

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, committed when the block exits cleanly.

        The commit has happened when the block returns: nothing is acknowledged before.

        Raises:
            AlreadyExistsError: A unique key was taken.
            UnavailableError: The database cannot be reached or stayed locked.
        """
        async with contextlib.AsyncExitStack() as stack:
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            with translate_errors():
                async with self._writer.begin() as connection:
                    yield connection

    async def ping(self, timeout_seconds: float) -> bool:
        """Whether the database answers `SELECT 1` within `timeout_seconds`."""
        try:
            async with asyncio.timeout(timeout_seconds), self.read() as conn:
                await conn.execute(text("SELECT 1"))
        except (StoreError, TimeoutError):
            return False
        return True

    def pool_stats(self) -> dict[str, int]:
        """Connections of the pool by state: in_use, idle, overflow, size."""
        pool: Any = self.engine.sync_engine.pool
        return {
            "in_use": pool.checkedout(),
            "idle": pool.checkedin(),
            "overflow": max(pool.overflow(), 0),
            "size": pool.size(),
        }

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
