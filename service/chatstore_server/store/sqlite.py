"""The embedded SQLite backend: reads on the event loop, one writer with group commit.

Why not one aiosqlite connection per call: each statement there is a round trip to the
connection's own thread, and under load the trip back waits for the GIL: about 0.6 ms
per statement on the benchmark machine against 25 microseconds for the same point read
run directly (see docs/performance.md). So:

- Reads run on the event-loop thread, on connections of their own. WAL mode lets them
  read beside the writer; each statement sees the newest commit.
- Every write of the process goes through one connection (SQLite allows one writer at
  a time anyway). Write blocks run one after another on the loop, in a shared
  transaction, each after the first inside a SAVEPOINT of its own (the first one's
  undoing is the transaction's); the COMMIT, the one step that waits for the disk,
  runs on a worker thread, and the blocks that queued meanwhile form the next
  transaction. Concurrent appends therefore share one fsync, and each caller is still
  answered only after the COMMIT that made its write durable (group commit).
- `BEGIN IMMEDIATE` takes the write lock up front; when another process holds it, the
  wait (up to `busy_timeout_ms`) happens on the worker thread, not on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from chatstore_server.store.connection import (
    InlineConnection,
    OffloadedConnection,
    StoreConnection,
    run_to_completion,
)
from chatstore_server.store.errors import (
    UnavailableError,
    raise_translated,
    translate_errors,
    translated,
)

logger = logging.getLogger("chatstore_server.store")

# WAL lets readers run beside the one writer; synchronous=FULL syncs the WAL at every
# commit, so an acknowledged write survives a power cut, not only a process crash.
_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
)
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def _is_busy(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)


def _driver(connection: Connection) -> Any:
    """The `sqlite3` connection under a SQLAlchemy one."""
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    return dbapi


def _commit_writer(writer: Connection) -> None:
    """COMMIT the writer's transaction, begun on the driver's connection (`_begin`):
    through SQLAlchemy when a statement of it went through SQLAlchemy (which then keeps a
    transaction of its own), else on the driver."""
    if writer.in_transaction():
        writer.commit()
    else:
        _driver(writer).commit()


class _Group:
    """The write blocks that share one transaction, and that transaction's outcome."""

    __slots__ = ("broken", "committed")

    def __init__(self) -> None:
        self.committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Nobody may be left waiting to hear about a failure: mark it retrieved.
        self.committed.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.broken = False


class _Savepoint:
    """One write block's savepoint in the group's transaction (plain SQL: cheaper than
    SQLAlchemy's nested transactions, and the group's transaction stays SQLAlchemy's)."""

    __slots__ = ("_dbapi",)

    def __init__(self, writer: Connection) -> None:
        self._dbapi: Any = _driver(writer)
        self._dbapi.execute("SAVEPOINT chatstore_block").close()

    def release(self) -> bool:
        """Keep the block's writes in the transaction; False if the transaction is gone."""
        try:
            self._dbapi.execute("RELEASE chatstore_block").close()
        except sqlite3.Error:
            return False
        return bool(self._dbapi.in_transaction)

    def roll_back(self) -> bool:
        """Undo the block's writes only; False if the transaction itself is gone (disk
        full, I/O error), which fails every block of the group."""
        try:
            self._dbapi.execute("ROLLBACK TO chatstore_block").close()
            self._dbapi.execute("RELEASE chatstore_block").close()
        except sqlite3.Error:
            return False
        return bool(self._dbapi.in_transaction)


class _Reading:
    """`SQLiteEngine.read()`'s block: a plain class, as the read of every call enters
    one (a generator-based context manager cost about 3 us per read in one process, as
    much as a point read's statement)."""

    __slots__ = ("_connection", "_engine")

    def __init__(self, engine: SQLiteEngine) -> None:
        self._engine = engine

    async def __aenter__(self) -> StoreConnection:
        self._connection = self._engine._take_reader()
        return InlineConnection(self._connection)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _tb: object
    ) -> None:
        self._engine._give_back(self._connection)
        if error is not None:
            raise_translated(error)


class _Writing:
    """`SQLiteEngine.write()`'s block (a plain class, as `_Reading`): takes the write
    lock and the group's transaction, opens the block's savepoint (a group's first block
    has none: undoing it is undoing the transaction); on exit releases or rolls back
    that savepoint, lets the lock go, then waits for the group's COMMIT."""

    __slots__ = ("_engine", "_group", "_offload", "_savepoint")

    def __init__(self, engine: SQLiteEngine, offload: bool) -> None:
        self._engine = engine
        self._offload = offload
        self._savepoint: _Savepoint | None = None

    async def __aenter__(self) -> StoreConnection:
        engine = self._engine
        await engine._lock.acquire()
        try:
            with translate_errors():
                group = engine._group
                first = group is None
                self._group = group or await engine._begin()
                writer = engine._connect_writer()
                # The group's first block is its transaction so far: undoing it is
                # undoing the transaction (`_break`), so it needs no savepoint of its own
                # (two statements fewer, and no copies of the pages it changes). Code
                # given the SQLAlchemy connection keeps one all the same.
                self._savepoint = None if first and not self._offload else _Savepoint(writer)
        except BaseException:
            engine._lock.release()
            raise
        if self._offload:
            # Code given the SQLAlchemy connection (Alembic) must see the transaction
            # begun on the driver (`_begin`), or it would begin and COMMIT its own.
            if not writer.in_transaction():
                writer.begin()
            return OffloadedConnection(writer, engine._writer_thread)
        return InlineConnection(writer)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _tb: object
    ) -> None:
        engine, group, savepoint = self._engine, self._group, self._savepoint
        try:
            if error is None:
                kept = savepoint.release() if savepoint is not None else engine._in_transaction()
                if not kept:
                    engine._break(group)
                    raise UnavailableError("the write could not be completed")
            elif savepoint is None or not savepoint.roll_back():
                engine._break(group)  # nobody else's writes are in it: see __aenter__
        finally:
            engine._lock.release()
        if error is None:
            await asyncio.shield(group.committed)
        elif isinstance(error, Exception):  # returned after the commit, translated
            with contextlib.suppress(Exception):
                await asyncio.shield(group.committed)
            raise_translated(error)
        # Anything else (a cancellation) propagates at once.


class SQLiteEngine:
    """Reader connections and the group-committing writer over one SQLite file.

    Args:
        url: A SQLAlchemy SQLite URL (any driver name; the stdlib `sqlite3` is used).
        pool_size: Idle reader connections kept open.
        busy_timeout_ms: How long a writer waits for another process's write lock, and
            a reader for a lock in SQLite's rare reader waits.
    """

    def __init__(self, url: URL, *, pool_size: int = 10, busy_timeout_ms: int = 5000) -> None:
        self._busy_timeout_ms = busy_timeout_ms
        self._engine: Engine = create_engine(
            url.set(drivername="sqlite+pysqlite"),
            poolclass=NullPool,  # connections are kept here, below
            connect_args={"check_same_thread": False},  # the writer also runs on a thread
        )
        event.listen(self._engine, "connect", self._on_connect)
        self._pool_size = pool_size
        self._readers: list[Connection] = []
        self._readers_in_use = 0
        self._writer: Connection | None = None
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="chatstore-sqlite-writer")
        self._lock = asyncio.Lock()
        self._group: _Group | None = None
        self._commits: set[asyncio.Task[None]] = set()

    @property
    def engine(self) -> Engine:
        """The engine every connection comes from."""
        return self._engine

    def _on_connect(self, dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control from the driver: BEGIN only where this module says.
        dbapi_connection.isolation_level = None
        for pragma in (*_PRAGMAS, f"PRAGMA busy_timeout={self._busy_timeout_ms}"):
            dbapi_connection.execute(pragma).close()

    # Reads

    def read(self) -> _Reading:
        """A reader connection, run on the event loop, for an `async with` block; driver
        errors raised in the block are translated (`translate_errors`).

        Raises:
            UnavailableError: The database file cannot be opened.
        """
        return _Reading(self)

    def _take_reader(self) -> Connection:
        if self._readers:
            connection = self._readers.pop()
        else:
            with translate_errors():
                connection = self._engine.connect()
        self._readers_in_use += 1
        return connection

    def _give_back(self, connection: Connection) -> None:
        self._readers_in_use -= 1
        if len(self._readers) < self._pool_size and not connection.invalidated:
            self._readers.append(connection)
        else:
            connection.close()

    # Writes

    def write(self, *, offload: bool = False) -> _Writing:
        """The writer, in the current group's transaction, for an `async with` block;
        a block that raises is undone alone (a savepoint; for the group's first block,
        the transaction, which the blocks after it then begin anew).

        The block's exit returns after the COMMIT that holds the block's writes; a
        block that raised gets its error back after that COMMIT too, so that whatever
        it saw of other blocks (a taken key, an earlier request) is committed when the
        caller looks. Driver errors are translated (`translate_errors`).

        Args:
            offload: Run the block's statements on the writer's thread.

        Raises:
            UnavailableError: The COMMIT failed (nothing of the group is kept), or the
                write lock stayed with another process for `busy_timeout_ms`.
        """
        return _Writing(self, offload)

    def _connect_writer(self) -> Connection:
        if self._writer is None or self._writer.invalidated:
            self._writer = self._engine.connect()
            # Never wait for another process's lock on the loop: see `_begin`.
            _driver(self._writer).execute("PRAGMA busy_timeout=0").close()
        return self._writer

    async def _begin(self) -> _Group:
        writer = self._connect_writer()
        try:
            # On the driver's connection, as the savepoints: SQLAlchemy's execution of a
            # statement cost more than SQLite's BEGIN (about 30 us in one process).
            _driver(writer).execute("BEGIN IMMEDIATE").close()
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                self._rollback_quietly()
                raise
            try:  # another process writes: wait for it on the writer's thread
                await run_to_completion(self._writer_thread, self._begin_waiting)
            except BaseException:
                self._rollback_quietly()
                raise
        group = _Group()
        self._group = group
        task = asyncio.create_task(self._commit(group), name="chatstore-sqlite-commit")
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)
        return group

    def _begin_waiting(self) -> None:
        driver = _driver(self._connect_writer())
        driver.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}").close()
        try:
            driver.execute("BEGIN IMMEDIATE").close()
        finally:
            driver.execute("PRAGMA busy_timeout=0").close()

    async def _commit(self, group: _Group) -> None:
        # Queued on the lock behind the blocks that were already waiting: they join.
        await self._lock.acquire()
        if group.broken:  # already rolled back and detached by `_break`
            group.committed.set_exception(
                UnavailableError("the write failed the shared transaction")
            )
            self._lock.release()
            return
        self._group = None
        writer = self._writer
        assert writer is not None
        loop = asyncio.get_running_loop()

        def commit() -> None:
            error: BaseException | None = None
            try:
                _commit_writer(writer)
            except BaseException as caught:  # noqa: BLE001 - handed to the loop
                error = caught
            loop.call_soon_threadsafe(self._committed, group, error)

        # The lock stays held until the loop hears back (`_committed`): no task waits
        # on the thread, so the COMMIT's end reaches the waiting blocks in one step.
        try:
            self._writer_thread.submit(commit)
        except RuntimeError as error:  # the thread is shut down: the group fails
            self._committed(group, error)

    def _committed(self, group: _Group, error: BaseException | None) -> None:
        """On the loop, once the group's COMMIT has ended: its outcome to every block of
        the group, and the write lock to the next."""
        try:
            if error is None:
                group.committed.set_result(None)
            else:
                self._rollback_quietly()
                group.committed.set_exception(
                    translated(error) or UnavailableError("the commit did not complete")
                )
        finally:
            self._lock.release()

    def _in_transaction(self) -> bool:
        """Whether the writer's transaction is still open (SQLite ends it by itself on
        some errors: a full disk, an I/O error)."""
        writer = self._writer
        return writer is not None and bool(_driver(writer).in_transaction)

    def _break(self, group: _Group) -> None:
        """Roll the group's transaction back: every block in it fails, none is kept."""
        group.broken = True
        if self._group is group:
            self._group = None
        self._rollback_quietly()

    def _rollback_quietly(self) -> None:
        writer = self._writer
        if writer is None:
            return
        try:
            writer.rollback()
            dbapi = writer.connection.dbapi_connection
            if dbapi is not None and dbapi.in_transaction:
                dbapi.execute("ROLLBACK").close()
        except (exc.SQLAlchemyError, sqlite3.Error):
            writer.invalidate()

    # Administration

    def pool_stats(self) -> dict[str, int]:
        """Reader connections by state, plus the writer as one connection in use."""
        return {
            "in_use": self._readers_in_use + (1 if self._lock.locked() else 0),
            "idle": len(self._readers),
            "overflow": max(self._readers_in_use - self._pool_size, 0),
            "size": self._pool_size,
        }

    async def dispose(self, timeout_seconds: float) -> None:
        """Wait for pending commits, then close every connection; a COMMIT that has not
        ended after `timeout_seconds` plus the busy timeout (a stalled disk) is left to
        the process's exit, and so is the writer."""
        try:
            async with asyncio.timeout(timeout_seconds + self._busy_timeout_ms / 1000):
                while self._commits:
                    await asyncio.gather(*self._commits, return_exceptions=True)
                async with self._lock:  # a COMMIT on the writer's thread holds it until done
                    pass
        except TimeoutError:
            logger.warning("a SQLite COMMIT did not end in time; not waiting for it")
            self._writer_thread.shutdown(wait=False)
            return
        for connection in self._readers:
            connection.close()
        self._readers.clear()
        if self._writer is not None:
            self._rollback_quietly()
            self._writer.close()
            self._writer = None
        self._writer_thread.shutdown(wait=True)
        self._engine.dispose()
