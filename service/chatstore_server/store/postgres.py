"""The PostgreSQL backend (and Citus's): statements outside transactions on asyncpg's
own pool, transactions through SQLAlchemy's async engine.

Reads, and the one-statement appends (`store.pg_append`), need no transaction: each
statement commits or reads by itself. For them SQLAlchemy's async engine costs more
than the statement: checking a connection out of its pool and back in runs through a
greenlet each time (in one process, 16 callers, a session read cost 280-300 us of
event-loop CPU through it against 140-165 us on an `asyncpg` pool; docs/performance.md).
So they run on a connection of an `asyncpg.Pool` (`DirectConnection`): the hot
statements (`Prepared`) straight on it, with asyncpg's statement cache preparing each
once per connection; anything else on a SQLAlchemy connection taken only when needed.
Transactions (session updates, forks, the sweeper, migrations, Citus's appends) keep
SQLAlchemy's engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import asyncpg
from sqlalchemy import Connection, Executable, Result, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry

from chatstore_server.store.connection import AsyncStoreConnection, Parameters, StoreConnection
from chatstore_server.store.errors import UnavailableError, raise_translated, translate_errors
from chatstore_server.store.prepared import Plan, Prepared, driver_error

logger = logging.getLogger("chatstore_server.store")

P = ParamSpec("P")
T = TypeVar("T")
_HAS_CITUS = "SELECT 1 FROM pg_extension WHERE extname = 'citus'"

# A pooled connection idle for longer than this is pinged before use: it may have died
# meanwhile (a database restart, a proxy's idle timeout). A busy connection is not: a
# ping per call would be one more round trip each, and if the database restarts under
# load, the first failure invalidates the whole pool at once.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's pessimistic disconnect handling, for idle connections only."""

    def checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["checked_in"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("checked_in", 0.0) <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            # The pool discards this connection and checks out (or opens) another.
            raise sa_exc.DisconnectionError("the pooled connection is gone") from error

    event.listen(engine.sync_engine, "checkin", checkin)
    event.listen(engine.sync_engine, "checkout", checkout)


async def _json_codecs(connection: asyncpg.Connection) -> None:
    """Decode json and jsonb to Python values, and take JSON text to encode, on a
    connection of asyncpg's pool: what SQLAlchemy's asyncpg dialect sets up on its own
    connections (`setup_asyncpg_json_codec`), which its JSON type's processors expect."""

    def decode_json(value: bytes) -> Any:
        return json.loads(value.decode())

    def encode_jsonb(value: str) -> bytes:
        return b"\x01" + value.encode()  # jsonb's binary format: a version byte, then text

    def decode_jsonb(value: bytes) -> Any:
        return json.loads(value[1:].decode())

    await connection.set_type_codec(
        "json", encoder=str.encode, decoder=decode_json, schema="pg_catalog", format="binary"
    )
    await connection.set_type_codec(
        "jsonb", encoder=encode_jsonb, decoder=decode_jsonb, schema="pg_catalog", format="binary"
    )


async def _reset(connection: asyncpg.Connection) -> None:
    """What a connection needs when given back to asyncpg's pool: nothing, as nothing on
    it changes session state (asyncpg's own reset, `RESET ALL` and the rest, would be a
    round trip per block), unless a transaction was left open."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


class PostgresBackend:
    """PostgreSQL (or a Citus coordinator) through asyncpg.

    Args:
        engine: SQLAlchemy's async engine (asyncpg), for transactions.
        url: The database's URL.
        pool_size, max_overflow: Each of the two pools (asyncpg's, for statements
            outside transactions; SQLAlchemy's, for transactions) keeps up to
            `pool_size` connections and opens up to `max_overflow` more under load.
        pool_timeout_seconds: How long a block waits for a free connection.
        connect_timeout_seconds, command_timeout_seconds: As for `Database.from_url`.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        url: URL,
        *,
        pool_size: int,
        max_overflow: int,
        pool_timeout_seconds: float,
        connect_timeout_seconds: float,
        command_timeout_seconds: float | None,
    ) -> None:
        self.engine = engine
        # Statements outside a transaction that are not `Prepared` run on SQLAlchemy
        # connections in autocommit: no BEGIN and ROLLBACK round trips.
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.citus: bool | None = None
        """Whether the database is a Citus coordinator; None until first connected."""
        _ping_when_idle(engine)
        # Every asyncpg connection SQLAlchemy's pool opened, to drop them when closing
        # stalls.
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        event.listen(
            engine.sync_engine,
            "connect",
            lambda dbapi, _: self._connections.add(dbapi.driver_connection),
        )
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._pool_options = {
            "min_size": 0,
            "max_size": pool_size + max_overflow,
            "timeout": connect_timeout_seconds,
            "command_timeout": command_timeout_seconds,
            # Idle connections beyond need close after a minute, as overflow ones do.
            "max_inactive_connection_lifetime": 60.0,
            "init": _json_codecs,
            "reset": _reset,
        }
        self._acquire_timeout = pool_timeout_seconds
        self._pool: asyncpg.Pool | None = None
        self._pool_opening: asyncio.Task[asyncpg.Pool] | None = None
        self.dialect = engine.dialect

    async def pool(self) -> asyncpg.Pool:
        """asyncpg's pool, opened on first use (connections open as they are needed).

        Raises:
            UnavailableError: It could not be opened.
        """
        if self._pool is not None:
            return self._pool
        if self._pool_opening is None:
            self._pool_opening = asyncio.ensure_future(
                asyncpg.create_pool(self._dsn, **self._pool_options)
            )
        opening = self._pool_opening
        try:
            with translate_errors():
                self._pool = await asyncio.shield(opening)
        except BaseException:
            if opening.done() and self._pool_opening is opening:
                self._pool_opening = None  # failed: the next block tries again
            raise
        return self._pool

    async def _detect(self, connection: AsyncConnection) -> bool:
        """Whether the database is Citus: asked once, on the first connection."""
        if self.citus is None:
            found = await connection.execute(text(_HAS_CITUS))
            self.citus = found.first() is not None
        return self.citus

    async def _detect_on(self, pool: asyncpg.Pool) -> bool:
        if self.citus is None:
            with translate_errors():
                async with pool.acquire(timeout=self._acquire_timeout) as connection:
                    self.citus = await connection.fetchval(_HAS_CITUS) is not None
        return bool(self.citus)

    def autocommit(self) -> DirectBlock:
        """A block of statements outside any transaction (`Database.autocommit`)."""
        return DirectBlock(self)

    read = autocommit  # a read is a statement (or a few) that needs no transaction

    @contextlib.asynccontextmanager
    async def write(self, *, offload: bool = False) -> Any:
        del offload
        with translate_errors():
            async with self.engine.begin() as connection:
                citus = self.citus if self.citus is not None else await self._detect(connection)
                yield AsyncStoreConnection(connection, citus=citus)

    def pool_stats(self) -> dict[str, int]:
        """Both pools' connections by state, added up: in_use, idle, overflow, size."""
        pool: Any = self.engine.sync_engine.pool
        stats = {
            "in_use": pool.checkedout(),
            "idle": pool.checkedin(),
            "overflow": max(pool.overflow(), 0),
            "size": pool.size(),
        }
        if self._pool is not None:
            opened, idle = self._pool.get_size(), self._pool.get_idle_size()
            stats["in_use"] += opened - idle
            stats["idle"] += idle
            stats["size"] += self._pool.get_max_size()
        return stats

    async def dispose(self, timeout_seconds: float) -> None:
        try:
            async with asyncio.timeout(timeout_seconds):
                if self._pool is not None:
                    await self._pool.close()
                await self.engine.dispose()
        except TimeoutError:
            # The database stopped answering (asyncpg's close waits for it as long as
            # the command timeout): drop the connections without a goodbye.
            logger.warning("the database did not answer at close; connections dropped")
            if self._pool is not None:
                self._pool.terminate()
            for connection in list(self._connections):
                with contextlib.suppress(Exception):
                    connection.terminate()


class DirectBlock:
    """`PostgresBackend.autocommit()`'s block: a `DirectConnection`, its connections
    given back on exit and driver errors translated (`translate_errors`)."""

    __slots__ = ("_backend", "_connection")

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend

    async def __aenter__(self) -> StoreConnection:
        backend = self._backend
        pool = await backend.pool()
        citus = backend.citus if backend.citus is not None else await backend._detect_on(pool)
        self._connection = DirectConnection(backend, pool, citus)
        return self._connection

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _tb: object
    ) -> None:
        await self._connection.close()
        if error is not None:
            raise_translated(error)


class DirectConnection(StoreConnection):
    """PostgreSQL outside any transaction: `Prepared` statements run on a connection of
    asyncpg's pool (taken on first use, kept for the block); any other statement on a
    SQLAlchemy connection in autocommit, taken when first needed. Each statement
    commits or reads by itself, so the two need not be one connection."""

    __slots__ = ("_backend", "_driver", "_pool", "_sqlalchemy", "_stack", "citus", "dialect")

    def __init__(self, backend: PostgresBackend, pool: asyncpg.Pool, citus: bool) -> None:
        self._backend = backend
        self._pool = pool
        self.dialect = backend.dialect
        self.citus = citus
        self._driver: Any = None
        self._sqlalchemy: AsyncConnection | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    async def execute(self, statement: Executable, parameters: Parameters = None) -> Result[Any]:
        if self._sqlalchemy is None:
            self._stack = contextlib.AsyncExitStack()
            self._sqlalchemy = await self._stack.enter_async_context(
                self._backend._reader.connect()
            )
        return await self._sqlalchemy.execute(statement, parameters)

    async def fetch(
        self, query: Prepared, parameters: Mapping[str, Any]
    ) -> Sequence[Mapping[str, Any]]:
        plan = query.plan(self.dialect)
        if plan is None:
            return await super().fetch(query, parameters)
        return plan.rows(await self._fetch_raw(plan, parameters))

    async def fetch_into(
        self, query: Prepared, parameters: Mapping[str, Any], make: Callable[..., T]
    ) -> list[T]:
        plan = query.plan(self.dialect)
        if plan is None:
            return await super().fetch_into(query, parameters, make)
        return plan.made(await self._fetch_raw(plan, parameters), make)

    async def fetch_tuples(
        self, query: Prepared, parameters: Mapping[str, Any]
    ) -> list[Sequence[Any]]:
        plan = query.plan(self.dialect)
        if plan is None:
            return await super().fetch_tuples(query, parameters)
        return plan.tuples(await self._fetch_raw(plan, parameters))

    async def _fetch_raw(self, plan: Plan, parameters: Mapping[str, Any]) -> list[Any]:
        driver = self._driver
        if driver is None:
            driver = self._driver = await self._pool.acquire(timeout=self._backend._acquire_timeout)
        try:
            # A list of asyncpg Records (sequences of the values).
            return cast(list[Any], await driver.fetch(plan.sql, *plan.values(parameters)))
        except asyncpg.InternalClientError as error:
            # Left mid-operation (the server closed it under a statement): it can run
            # nothing more. Closed, so that the pool opens another; an outage, worth a
            # retry.
            self._driver = None
            driver.terminate()
            with contextlib.suppress(Exception):
                await self._pool.release(driver)
            raise UnavailableError("the database connection broke") from error
        except Exception as error:
            raise as_sqlalchemy_error(plan, self.dialect, error) from error

    async def run_sync(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        await self.execute(text("SELECT 1"))  # takes the SQLAlchemy connection
        assert self._sqlalchemy is not None
        return await self._sqlalchemy.run_sync(fn, *args, **kwargs)

    async def close(self) -> None:
        """Give both connections back (a broken asyncpg connection is replaced by its
        pool)."""
        driver, self._driver = self._driver, None
        try:
            if driver is not None:
                try:
                    await self._pool.release(driver)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    # It broke: the pool has closed it and will open another; the block's
                    # own outcome stands.
                    logger.debug("a broken connection went back to the pool", exc_info=True)
        finally:
            stack, self._stack, self._sqlalchemy = self._stack, None, None
            if stack is not None:
                await stack.aclose()


def as_sqlalchemy_error(plan: Plan, dialect: Any, error: Exception) -> Exception:
    """An asyncpg error as SQLAlchemy would have raised it, so that `translate_errors`
    tells a unique violation, a busy database or a lost connection apart the same way
    (the constraint names survive: the original is the cause)."""
    dbapi: Any = dialect.dbapi
    translate: dict[type, type] = getattr(dbapi, "_asyncpg_error_translate", {})
    for kind in type(error).__mro__:
        if kind in translate:
            original = error
            error = translate[kind](error.args[0] if error.args else "", error)
            error.__cause__ = original
            break
    if isinstance(error, dbapi.Error):
        return driver_error(plan, error, dbapi.Error)
    return error
