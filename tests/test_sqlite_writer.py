"""The embedded SQLite backend's writer: concurrent write blocks share one commit (group
commit), each is acknowledged only once committed, a failing block is rolled back
alone, and waiting for another process's write lock never blocks the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from chatstore_server.store import (
    AlreadyExistsError,
    Database,
    MessageRepository,
    NewMessage,
    NewSession,
    Role,
    SessionRepository,
    UnavailableError,
    bodies,
)
from tests.conftest import TENANT


def committed_messages(path: Path) -> dict[str, int]:
    """Messages per session as another connection sees them: only what is committed."""
    with sqlite3.connect(path) as other:
        query = "SELECT session_id, count(*) FROM messages GROUP BY session_id"
        return dict(other.execute(query).fetchall())


async def test_each_concurrent_append_is_committed_when_acknowledged(
    sqlite_database: Database, sqlite_path: Path
) -> None:
    sessions = SessionRepository(sqlite_database)
    history = MessageRepository(sqlite_database)
    created = [await sessions.create(TENANT, NewSession()) for _ in range(20)]
    seen_when_acknowledged: list[int] = []

    async def append(session_id: str) -> None:
        await history.append(TENANT, session_id, [NewMessage(Role.USER, "hi")])
        # Another connection sees it the moment the call returns: acknowledged = committed.
        seen_when_acknowledged.append(committed_messages(sqlite_path).get(session_id, 0))

    await asyncio.gather(*(append(s.id) for s in created for _ in range(3)))

    assert len(seen_when_acknowledged) == 60
    assert min(seen_when_acknowledged) >= 1
    assert committed_messages(sqlite_path) == {s.id: 3 for s in created}
    for session in created:
        assert (await sessions.get(TENANT, session.id)).last_seq == 3


async def test_a_failing_write_is_rolled_back_alone(
    sqlite_database: Database, sqlite_path: Path
) -> None:
    sessions = SessionRepository(sqlite_database)
    history = MessageRepository(sqlite_database)
    session = await sessions.create(TENANT, NewSession())
    taken = uuid.uuid4()
    await history.append(TENANT, session.id, [NewMessage(Role.USER, "first", id=taken)])

    async def clash() -> None:
        await history.append(TENANT, session.id, [NewMessage(Role.USER, "dup", id=taken)])

    async def fine(text: str) -> None:
        await history.append(TENANT, session.id, [NewMessage(Role.USER, text)])

    # Interleaved in one burst, so that the failures share transactions with successes.
    outcomes = await asyncio.gather(
        *(clash() if i % 3 == 0 else fine(f"m{i}") for i in range(30)), return_exceptions=True
    )

    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 10
    assert all(isinstance(f, AlreadyExistsError) for f in failures)
    after = await sessions.get(TENANT, session.id)
    assert after.last_seq == after.message_count == 21  # no seq was used by a failure
    assert committed_messages(sqlite_path) == {session.id: 21}
    page = await history.list(TENANT, session.id, limit=100)
    assert [m.seq for m in page.items] == list(range(1, 22))
    assert "dup" not in {bodies.decode(m.body).content for m in page.items}


async def test_waiting_for_another_process_lock_leaves_the_loop_free(
    sqlite_database: Database, sqlite_path: Path
) -> None:
    sessions = SessionRepository(sqlite_database)
    session = await sessions.create(TENANT, NewSession())
    locked, release = threading.Event(), threading.Event()

    def other_process_writes() -> None:  # another writer holds the lock for a while
        with sqlite3.connect(sqlite_path, isolation_level=None) as other:
            other.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(10)
            other.execute("COMMIT")

    holder = threading.Thread(target=other_process_writes)
    holder.start()
    assert await asyncio.to_thread(locked.wait, 10)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    write = asyncio.create_task(sessions.update(TENANT, session.id, {"title": "after the lock"}))
    await asyncio.sleep(0.5)
    assert not write.done()  # still waiting for the lock...
    assert ticks >= 10  # ...while the loop keeps running other tasks
    release.set()
    updated = await asyncio.wait_for(write, 10)
    ticking.cancel()
    holder.join(10)

    assert updated.title == "after the lock"
    assert time.monotonic() - started >= 0.5
    with sqlite3.connect(sqlite_path) as other:
        (title,) = other.execute(
            "SELECT title FROM sessions WHERE id = ?", (session.id,)
        ).fetchone()
    assert title == "after the lock"


async def test_a_full_disk_fails_only_unacknowledged_writes(
    sqlite_database: Database, sqlite_path: Path
) -> None:
    sessions = SessionRepository(sqlite_database)
    history = MessageRepository(sqlite_database)
    session = await sessions.create(TENANT, NewSession())
    with sqlite3.connect(sqlite_path) as other:
        (pages,) = other.execute("PRAGMA page_count").fetchone()
    async with (
        sqlite_database.write() as conn
    ):  # the writer's connection: the "disk" is nearly full
        await conn.execute(text(f"PRAGMA max_page_count = {pages + 40}"))

    async def append(index: int) -> bool:
        try:
            await history.append(TENANT, session.id, [NewMessage(Role.USER, f"{index}" * 20_000)])
        except UnavailableError:
            return False
        return True

    outcomes = await asyncio.gather(*(append(i) for i in range(40)))
    async with sqlite_database.write() as conn:  # room again
        await conn.execute(text("PRAGMA max_page_count = 1073741823"))
    await history.append(TENANT, session.id, [NewMessage(Role.USER, "after")])

    acknowledged = outcomes.count(True)
    assert 0 < acknowledged < 40  # some fitted, some did not
    after = await sessions.get(TENANT, session.id)
    assert after.last_seq == after.message_count == acknowledged + 1
    page = await history.list(TENANT, session.id, limit=100)
    assert [m.seq for m in page.items] == list(range(1, acknowledged + 2))
    assert committed_messages(sqlite_path) == {session.id: acknowledged + 1}


async def test_a_write_after_dispose_fails_instead_of_waiting_forever(
    sqlite_database: Database,
) -> None:
    sessions = SessionRepository(sqlite_database)
    await sessions.create(TENANT, NewSession())
    await sqlite_database.dispose()  # the writer's thread is gone

    async with asyncio.timeout(5):  # a COMMIT nobody runs would hang here
        with pytest.raises(UnavailableError):
            await sessions.create(TENANT, NewSession())


def committed_titles(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as other:
        return dict(other.execute("SELECT id, title FROM sessions").fetchall())


@pytest.mark.parametrize("failing", [0, 1], ids=["the first block", "a later block"])
async def test_a_failing_block_of_a_shared_transaction_takes_only_its_writes_along(
    sqlite_database: Database, sqlite_path: Path, failing: int
) -> None:
    # A transaction's first block has no savepoint (undoing it is undoing the
    # transaction); the blocks queued behind it must commit all the same.
    sessions = SessionRepository(sqlite_database)
    created = [await sessions.create(TENANT, NewSession(title="before")) for _ in range(4)]
    retitle = text("UPDATE sessions SET title = :title WHERE id = :id")
    first_in = asyncio.Event()

    async def block(index: int) -> None:
        if index > 0:
            await first_in.wait()  # queued on the write lock while block 0 holds it
        async with sqlite_database.write() as conn:
            await conn.execute(retitle, {"title": f"by {index}", "id": created[index].id})
            first_in.set()
            await asyncio.sleep(0.05 if index == 0 else 0)
            if index == failing:
                raise RuntimeError("the block fails after writing")

    outcomes = await asyncio.gather(*(block(i) for i in range(4)), return_exceptions=True)

    assert [type(o) for o in outcomes] == [
        RuntimeError if i == failing else type(None) for i in range(4)
    ]
    expected = {s.id: "before" if i == failing else f"by {i}" for i, s in enumerate(created)}
    assert committed_titles(sqlite_path) == expected
    await sessions.create(TENANT, NewSession())  # and the writer goes on
