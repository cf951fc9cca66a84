"""The connection a read or write block hands to the repositories.

Repositories only `await conn.execute(...)` (or `fetch`, `fetch_into`, `execute_many`, `scalar`,
`run_sync`) and look at `conn.dialect`; how the statement reaches the database is the
backend's business:

- PostgreSQL: outside transactions, a connection of asyncpg's own pool for the hot
  statements (`Prepared`) and SQLAlchemy for the rest (`postgres.DirectConnection`); in
  transactions, SQLAlchemy's `AsyncConnection` over asyncpg (`AsyncStoreConnection`).
- SQLite: a plain SQLAlchemy `Connection` over the stdlib `sqlite3` module, run on the
  event-loop thread (`InlineConnection`, for the short statements of an RPC: a point
  read takes tens of microseconds, less than a hop to a worker thread and back), or on
  a worker thread (`OffloadedConnection`, for statements that may run long: forks,
  purges, sweeps, migrations), so that they do not stall the loop. On the loop, the
  hot statements (`Prepared`) run straight on the driver's cursor.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from sqlalchemy import Connection, Dialect, Executable, Result
from sqlalchemy.ext.asyncio import AsyncConnection

from chatstore_server.store import spans
from chatstore_server.store.prepared import Plan, Prepared, driver_error

P = ParamSpec("P")
T = TypeVar("T")
Parameters = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class StoreConnection(abc.ABC):
    """One database connection, lent for the length of a read or write block."""

    dialect: Dialect
    citus: bool = False
    """Whether the database is a Citus coordinator (`store.citus`)."""

    @abc.abstractmethod
    async def execute(self, statement: Executable, parameters: Parameters = None) -> Result[Any]:
        """Run one statement; its rows are read from the returned result.

        `parameters` is one mapping of bind values, or a sequence of them (executemany).
        """

    async def scalar(self, statement: Executable, parameters: Parameters = None) -> Any:
        """The first column of the first row, or None when there is no row."""
        return (await self.execute(statement, parameters)).scalar()

    async def fetch(
        self, query: Prepared, parameters: Mapping[str, Any]
    ) -> Sequence[Mapping[str, Any]]:
        """Run a prepared statement that returns rows; each row as a mapping of column
        name to value, the values converted by the column types as `execute` would."""
        rows = (await self.execute(query.statement, parameters)).mappings().all()
        return cast(Sequence[Mapping[str, Any]], rows)

    async def fetch_into(
        self, query: Prepared, parameters: Mapping[str, Any], make: Callable[..., T]
    ) -> list[T]:
        """Run a prepared statement that returns rows; `make(*values)` for each row, the
        values in the statement's column order, converted as `execute` would (records
        built straight from the rows of a page, without a mapping per row)."""
        return [make(*row) for row in await self.execute(query.statement, parameters)]

    async def fetch_tuples(
        self, query: Prepared, parameters: Mapping[str, Any]
    ) -> list[Sequence[Any]]:
        """Run a prepared statement that returns rows; each row as a sequence of its
        values in the statement's column order, converted as `execute` would: the
        driver's rows as they are where nothing needs converting (a page passed on as
        bytes, with no object made per row)."""
        return list(await self.execute(query.statement, parameters))

    async def execute_many(self, query: Prepared, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run a prepared statement once per parameter set in `rows` (an INSERT's rows);
        how many rows it changed in all (an `ON CONFLICT DO NOTHING` leaves some out),
        or -1 where the driver does not say."""
        result = await self.execute(query.statement, rows)
        return int(getattr(result, "rowcount", -1))

    @abc.abstractmethod
    async def run_sync(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Call `fn(connection, ...)` with a synchronous SQLAlchemy connection (Alembic)."""


class AsyncStoreConnection(StoreConnection):
    """A SQLAlchemy `AsyncConnection` (PostgreSQL through asyncpg), in a transaction.
    (Outside transactions, PostgreSQL's blocks get `postgres.DirectConnection`.)"""

    __slots__ = ("_connection", "citus", "dialect")

    def __init__(self, connection: AsyncConnection, *, citus: bool = False) -> None:
        self._connection = connection
        self.dialect = connection.dialect
        self.citus = citus

    async def execute(self, statement: Executable, parameters: Parameters = None) -> Result[Any]:
        return await self._connection.execute(statement, parameters)

    async def run_sync(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await self._connection.run_sync(fn, *args, **kwargs)


class InlineConnection(StoreConnection):
    """A synchronous connection run on the event-loop thread: no thread hop at all.

    Only for statements that are short by construction (bounded pages, point reads and
    writes); each one holds the loop for as long as SQLite takes to run it.
    """

    __slots__ = ("_connection", "dialect")

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.dialect = connection.dialect

    async def execute(self, statement: Executable, parameters: Parameters = None) -> Result[Any]:
        return self._connection.execute(statement, parameters)

    async def fetch(
        self, query: Prepared, parameters: Mapping[str, Any]
    ) -> Sequence[Mapping[str, Any]]:
        plan = query.plan(self.dialect)
        if plan is None:
            return await super().fetch(query, parameters)
        return plan.rows(self._fetch_raw(plan, parameters))

    async def fetch_into(
        self, query: Prepared, parameters: Mapping[str, Any], make: Callable[..., T]
    ) -> list[T]:
        plan = query.plan(self.dialect)
        if plan is None:
            return await super().fetch_into(query, parameters, make)
        return plan.made(self._fetch_raw(plan, parameters), make)

    async def fetch_tuples(
        self, query: Prepared, parameters: Mapping[str, Any]
    ) -> list[Sequence[Any]]:
        plan = query.plan(self.dialect)
        if plan is None:
            return await super().fetch_tuples(query, parameters)
        return plan.tuples(self._fetch_raw(plan, parameters))

    def _fetch_raw(self, plan: Plan, parameters: Mapping[str, Any]) -> list[Any]:
        if spans.tracer is not None:
            with spans.statement(plan.sql, "sqlite"):
                return self._fetch_untraced(plan, parameters)
        return self._fetch_untraced(plan, parameters)

    def _fetch_untraced(self, plan: Plan, parameters: Mapping[str, Any]) -> list[Any]:
        driver: Any = self._connection.connection.dbapi_connection
        try:
            cursor = driver.execute(plan.sql, plan.values(parameters))
            try:
                return cast(list[Any], cursor.fetchall())
            finally:
                cursor.close()
        except sqlite3.Error as error:
            raise driver_error(plan, error) from error

    async def execute_many(self, query: Prepared, rows: Sequence[Mapping[str, Any]]) -> int:
        plan = query.plan(self.dialect)
        if plan is None:
            return await super().execute_many(query, rows)
        if spans.tracer is not None:
            with spans.statement(plan.sql, "sqlite"):
                return self._execute_many_untraced(plan, rows)
        return self._execute_many_untraced(plan, rows)

    def _execute_many_untraced(self, plan: Plan, rows: Sequence[Mapping[str, Any]]) -> int:
        driver: Any = self._connection.connection.dbapi_connection
        try:
            cursor = driver.executemany(plan.sql, [plan.values(row) for row in rows])
            changed = int(cursor.rowcount)
            cursor.close()
        except sqlite3.Error as error:
            raise driver_error(plan, error) from error
        return changed

    async def run_sync(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return fn(self._connection, *args, **kwargs)


class OffloadedConnection(StoreConnection):
    """A synchronous connection whose statements run on `executor`'s threads.

    A statement that has started runs to its end even when the calling task is
    cancelled (the task sees the cancellation afterwards): the connection is never
    handed on while a thread still uses it.
    """

    __slots__ = ("_connection", "_executor", "dialect")

    def __init__(self, connection: Connection, executor: concurrent.futures.Executor) -> None:
        self._connection = connection
        self._executor = executor
        self.dialect = connection.dialect

    async def execute(self, statement: Executable, parameters: Parameters = None) -> Result[Any]:
        connection = self._connection

        def run() -> Result[Any]:
            # Buffered in the thread: reading rows later on the loop does no I/O.
            result = connection.execute(statement, parameters)
            return result.freeze()() if result.returns_rows else result

        return await run_to_completion(self._executor, run)

    async def run_sync(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await run_to_completion(
            self._executor, lambda: fn(self._connection, *args, **kwargs)
        )


async def run_to_completion(executor: concurrent.futures.Executor | None, fn: Callable[[], T]) -> T:
    """`fn()` on `executor`'s thread; waits for it to finish even if cancelled meanwhile.

    Raises:
        asyncio.CancelledError: The caller was cancelled (after `fn` finished).
        Whatever `fn` raised.
    """
    future = asyncio.get_running_loop().run_in_executor(executor, fn)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            if not future.done():
                cancelled = True
                continue
            if future.cancelled():
                raise
            cancelled = True
            result = future.result()
        if cancelled:
            raise asyncio.CancelledError
        return result
