"""The database: read and write blocks over PostgreSQL (asyncpg) or SQLite.

PostgreSQL goes through SQLAlchemy's async engine; SQLite through `store.sqlite` (reads
on the event loop, one group-committing writer). Both hand the repositories a
`StoreConnection`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chatstore_server.store.connection import AsyncStoreConnection, StoreConnection
from chatstore_server.store.errors import StoreError, translate_errors
from chatstore_server.store.sqlite import SQLiteEngine

SQLITE_DRIVERS = ("aiosqlite", "pysqlite")


class Database:
    """Read and write blocks over one database, whichever backend.

    Build it with `Database.from_url`.
    """

    def __init__(
        self, url: URL, *, engine: AsyncEngine | None, sqlite: SQLiteEngine | None
    ) -> None:
        self.url = url
        self._engine = engine
        self._sqlite = sqlite
        self.dialect_name = url.get_backend_name()

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
        """Open `url`, a SQLAlchemy URL naming an async driver (connections open lazily).

        Args:
            url: `sqlite+aiosqlite:///path.db` (relative to the working directory, or
                `////abs/path.db`) or `postgresql+asyncpg://user@host:port/db`.
            pool_size: Connections kept open (SQLite: idle reader connections).
            max_overflow: Extra PostgreSQL connections allowed under load, closed when idle.
            pool_timeout_seconds: How long a call waits for a free PostgreSQL connection.
            connect_timeout_seconds: How long opening a PostgreSQL connection may take.
            command_timeout_seconds: How long one PostgreSQL statement may take; None
                means no limit.
            busy_timeout_ms: How long a SQLite writer waits for another process's lock.
            echo: Log every PostgreSQL statement (debugging only).

        Raises:
            ValueError: The URL names an unsupported database or driver.
        """
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.get_driver_name() not in SQLITE_DRIVERS:
                raise ValueError("SQLite URLs must use the aiosqlite driver: sqlite+aiosqlite://")
            if parsed.database in (None, "", ":memory:"):
                raise ValueError("SQLite needs a database file: sqlite+aiosqlite:///path.db")
            sqlite = SQLiteEngine(parsed, pool_size=pool_size, busy_timeout_ms=busy_timeout_ms)
            return cls(parsed, engine=None, sqlite=sqlite)
        if parsed.get_backend_name() != "postgresql":
            raise ValueError(f"unsupported database {parsed.get_backend_name()!r}")
        if parsed.get_driver_name() != "asyncpg":
            raise ValueError("PostgreSQL URLs must use asyncpg: postgresql+asyncpg://")
        engine = create_async_engine(
            parsed,
            echo=echo,
            connect_args={
                "timeout": connect_timeout_seconds,
                "command_timeout": command_timeout_seconds,
            },
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout_seconds,
            # A pooled connection may have died while idle (restart, proxy): ping it.
            pool_pre_ping=True,
        )
        return cls(parsed, engine=engine, sqlite=None)

    @contextlib.asynccontextmanager
    async def read(self, *, offload: bool = False) -> AsyncIterator[StoreConnection]:
        """A connection for reading; it writes nothing. On PostgreSQL the block is one
        transaction (one snapshot); on SQLite each statement sees the newest commit.

        Args:
            offload: SQLite: run the statements on a worker thread instead of the event
                loop, for reads that may take long (no effect on PostgreSQL).

        Raises:
            UnavailableError: The database cannot be reached.
        """
        with translate_errors():
            if self._sqlite is not None:
                async with self._sqlite.read(offload=offload) as connection:
                    yield connection
            else:
                assert self._engine is not None
                async with self._engine.connect() as async_connection:
                    yield AsyncStoreConnection(async_connection)

    @contextlib.asynccontextmanager
    async def write(self, *, offload: bool = False) -> AsyncIterator[StoreConnection]:
        """A connection in a write transaction, committed when the block exits cleanly.

        The commit has happened when the block returns: nothing is acknowledged before.
        On SQLite, concurrent blocks of this process share one commit (group commit);
        a block that raised is rolled back alone.

        Args:
            offload: SQLite: run the statements on the writer's thread instead of the
                event loop, for writes that may take long (forks, purges, migrations).

        Raises:
            AlreadyExistsError: A unique key was taken.
            UnavailableError: The database cannot be reached or stayed locked.
        """
        with translate_errors():
            if self._sqlite is not None:
                async with self._sqlite.write(offload=offload) as connection:
                    yield connection
            else:
                assert self._engine is not None
                async with self._engine.begin() as async_connection:
                    yield AsyncStoreConnection(async_connection)

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
        if self._sqlite is not None:
            return self._sqlite.pool_stats()
        assert self._engine is not None
        pool: Any = self._engine.sync_engine.pool
        return {
            "in_use": pool.checkedout(),
            "idle": pool.checkedin(),
            "overflow": max(pool.overflow(), 0),
            "size": pool.size(),
        }

    async def dispose(self) -> None:
        """Finish pending commits and close every connection."""
        if self._sqlite is not None:
            await self._sqlite.dispose()
        if self._engine is not None:
            await self._engine.dispose()
