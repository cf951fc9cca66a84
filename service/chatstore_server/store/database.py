"""The database: read and write blocks over PostgreSQL (asyncpg) or SQLite.

PostgreSQL goes through `store.postgres` (asyncpg's pool outside transactions,
SQLAlchemy's async engine in them); SQLite through `store.sqlite` (reads on the event
loop, one group-committing writer). Both hand the repositories a `StoreConnection`.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from chatstore_server.store.connection import StoreConnection
from chatstore_server.store.errors import StoreError
from chatstore_server.store.postgres import PING_AFTER_IDLE_SECONDS, PostgresBackend
from chatstore_server.store.sqlite import SQLiteEngine

__all__ = ["DISPOSE_TIMEOUT_SECONDS", "PING_AFTER_IDLE_SECONDS", "Database", "database_url"]

SQLITE_DRIVERS = ("aiosqlite", "pysqlite")
DISPOSE_TIMEOUT_SECONDS = 2.0
"""How long closing the pool may wait for the database to answer before its
connections are dropped (a database that stopped answering must not hold up a
shutdown)."""


def database_url(url: str) -> URL:
    """`url` as the URL chatstore opens: the URL names the database, chatstore picks the
    driver. `postgresql://` and `postgres://` (no driver) mean asyncpg; `sqlite:///`
    means chatstore's own SQLite engine.

    Raises:
        ValueError: Not a URL, an unsupported database, a PostgreSQL driver other than
            asyncpg, or SQLite without a file.
    """
    try:
        parsed = make_url(url)
    except (sa_exc.ArgumentError, ValueError) as error:
        raise ValueError(f"not a database URL: {error}") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite":
        if driver not in SQLITE_DRIVERS:
            raise ValueError("SQLite URLs are sqlite:///path.db (or sqlite+aiosqlite:///)")
        if parsed.database in (None, "", ":memory:"):
            raise ValueError("SQLite needs a database file: sqlite:///path.db")
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        if "+" in parsed.drivername and driver != "asyncpg":
            raise ValueError(
                f"chatstore talks to PostgreSQL through asyncpg, not {driver}:"
                " use postgresql://... or postgresql+asyncpg://..."
            )
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


class Database:
    """Read and write blocks over one database, whichever backend.

    Build it with `Database.from_url`.
    """

    def __init__(self, url: URL, backend: PostgresBackend | SQLiteEngine) -> None:
        self.url = url
        self._backend = backend
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
        """Open `url` (connections open lazily).

        Args:
            url: `sqlite:///path.db` (relative to the working directory, or
                `////abs/path.db`) or `postgresql://user@host:port/db`; a driver named
                in it must be aiosqlite or asyncpg (`database_url`).
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
        parsed = database_url(url)
        if parsed.get_backend_name() == "sqlite":
            sqlite = SQLiteEngine(parsed, pool_size=pool_size, busy_timeout_ms=busy_timeout_ms)
            return cls(parsed, sqlite)
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
        )
        backend = PostgresBackend(
            engine,
            parsed,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout_seconds=pool_timeout_seconds,
            connect_timeout_seconds=connect_timeout_seconds,
            command_timeout_seconds=command_timeout_seconds,
        )
        return cls(parsed, backend)

    def read(self) -> AbstractAsyncContextManager[StoreConnection]:
        """A connection for reading; it writes nothing, in no transaction: each statement
        sees the newest commit. On SQLite the statements run on the event loop (reads
        are bounded: point reads and pages).

        Raises:
            UnavailableError: The database cannot be reached.
        """
        return self._backend.read()

    def write(self, *, offload: bool = False) -> AbstractAsyncContextManager[StoreConnection]:
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
        return self._backend.write(offload=offload)

    def autocommit(self) -> AbstractAsyncContextManager[StoreConnection]:
        """PostgreSQL only: a connection outside any transaction, on which each statement
        commits by itself when it completes (all of it or nothing), for a write made in
        one statement: one round trip, no BEGIN and COMMIT.

        Raises:
            ValueError: The database is SQLite (its writes go through `write`).
            UnavailableError: The database cannot be reached.
        """
        if not isinstance(self._backend, PostgresBackend):
            raise ValueError("autocommit blocks are for PostgreSQL")
        return self._backend.autocommit()

    async def one_statement_appends(self) -> bool:
        """Whether an append is one statement (`store.pg_append`): on PostgreSQL, but
        not on Citus (whose modifying CTEs go through the coordinator)."""
        return self.dialect_name == "postgresql" and not await self.is_citus()

    async def is_citus(self) -> bool:
        """Whether the database is a Citus coordinator (`store.citus`): asked of the
        database once, then remembered.

        Raises:
            UnavailableError: The database cannot be reached (the first time).
        """
        backend = self._backend
        if not isinstance(backend, PostgresBackend):
            return False
        if backend.citus is None:
            async with backend.read():
                pass
        return bool(backend.citus)

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
        return self._backend.pool_stats()

    def engines(self) -> list[Engine]:
        """The SQLAlchemy engines statements run through (for instrumentation). On
        PostgreSQL, statements outside transactions run on asyncpg's own pool instead."""
        backend = self._backend
        if isinstance(backend, PostgresBackend):
            return [backend.engine.sync_engine]
        return [backend.engine]

    async def dispose(self, timeout_seconds: float = DISPOSE_TIMEOUT_SECONDS) -> None:
        """Finish pending commits and close every connection, within `timeout_seconds`
        of the database answering: PostgreSQL connections still closing then are
        dropped; on SQLite a COMMIT under way is waited for (its callers are waiting for
        it), the rest left to the process's exit."""
        await self._backend.dispose(timeout_seconds)
