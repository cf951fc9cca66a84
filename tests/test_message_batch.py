"""SQLite appends that wait for the writer together are written together, and each
caller still gets what it would get alone: its own seqs, its errors, its replays."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import pytest

from chatstore_server.store import (
    AlreadyExistsError,
    ConflictError,
    Database,
    MessageRecord,
    MessageRepository,
    NewMessage,
    NewSession,
    Precondition,
    Role,
    SessionRecord,
    SessionRepository,
    SessionStateError,
    bodies,
)
from tests.conftest import TENANT


@pytest.fixture
def repositories(sqlite_database: Database) -> tuple[SessionRepository, MessageRepository]:
    """The sessions and their histories, on the test's SQLite file."""
    return SessionRepository(sqlite_database), MessageRepository(sqlite_database)


def _stored(path: Path, session_id: str) -> list[tuple[int, str]]:
    """(seq, content) of the session's committed messages, as another connection sees."""
    with sqlite3.connect(path) as other:
        query = "SELECT seq, body FROM messages WHERE session_id = ? ORDER BY seq"
        rows = other.execute(query, (session_id,)).fetchall()
    return [(seq, bodies.decode(body).content) for seq, body in rows]


async def test_concurrent_appends_are_written_together_with_their_own_seqs(
    repositories: tuple[SessionRepository, MessageRepository], sqlite_path: Path
) -> None:
    sessions, history = repositories
    session = await sessions.create(TENANT, NewSession())

    async def append(index: int) -> tuple[SessionRecord, list[MessageRecord]]:
        batch = [NewMessage(Role.USER, f"{index}.{part}") for part in range(index % 3 + 1)]
        return await history.append(TENANT, session.id, batch, request_id=f"r{index}")

    answers = await asyncio.gather(*(append(i) for i in range(30)))

    after = await sessions.get(TENANT, session.id)
    assert after.last_seq == after.message_count == 60
    # Written together: far fewer row versions than appends (one per block).
    assert after.revision - session.revision < 30
    stored = _stored(sqlite_path, session.id)
    assert [seq for seq, _ in stored] == list(range(1, 61))
    for index, (answered, messages) in enumerate(answers):
        # Each caller's own messages, in its order, on consecutive seqs ...
        assert [bodies.decode(m.body).content for m in messages] == [
            f"{index}.{p}" for p in range(index % 3 + 1)
        ]
        assert [m.seq for m in messages] == list(range(messages[0].seq, messages[-1].seq + 1))
        assert {(m.seq, bodies.decode(m.body).content) for m in messages} <= set(stored)
        # ... and the session as committed with them: its counters agree with each other.
        assert answered.last_seq >= messages[-1].seq
        assert answered.message_count == answered.last_seq
    assert sorted(m.seq for _, ms in answers for m in ms) == list(range(1, 61))


async def test_what_the_fast_path_does_not_decide_is_decided_alone(
    repositories: tuple[SessionRepository, MessageRepository], sqlite_path: Path
) -> None:
    sessions, history = repositories
    session = await sessions.create(TENANT, NewSession())
    deleted = await sessions.create(TENANT, NewSession())
    await sessions.soft_delete(TENANT, deleted.id)
    taken = uuid.uuid4()
    _, first = await history.append(
        TENANT, session.id, [NewMessage(Role.USER, "first", id=taken)], request_id="done"
    )

    # All in one burst, so that they wait for the writer together.
    outcomes = await asyncio.gather(
        history.append(TENANT, session.id, [NewMessage(Role.USER, "a")]),
        history.append(TENANT, deleted.id, [NewMessage(Role.USER, "to a deleted session")]),
        history.append(TENANT, session.id, [NewMessage(Role.USER, "clash", id=taken)]),
        history.append(TENANT, session.id, [NewMessage(Role.USER, "first")], request_id="done"),
        history.append(TENANT, session.id, [NewMessage(Role.USER, "twin")], request_id="t"),
        history.append(TENANT, session.id, [NewMessage(Role.USER, "twin")], request_id="t"),
        history.append(
            TENANT,
            session.id,
            [NewMessage(Role.USER, "stale")],
            precondition=Precondition(expected_last_seq=0),
        ),
        history.append(TENANT, session.id, [NewMessage(Role.USER, "b")]),
        return_exceptions=True,
    )

    fresh, to_deleted, clash, retry, twin, twin_again, stale, other = outcomes
    assert isinstance(to_deleted, SessionStateError)
    assert isinstance(clash, AlreadyExistsError)
    assert isinstance(stale, ConflictError)
    assert not isinstance(retry, BaseException)
    assert retry[1] == first  # the first call's result
    assert not isinstance(twin, BaseException)
    assert not isinstance(twin_again, BaseException)
    assert twin[1] == twin_again[1]  # written once, the other a replay of it
    assert not isinstance(fresh, BaseException)
    assert not isinstance(other, BaseException)
    assert _stored(sqlite_path, session.id) == [
        (1, "first"),
        *sorted((m.seq, bodies.decode(m.body).content) for r in (fresh, twin, other) for m in r[1]),
    ]
    assert [seq for seq, _ in _stored(sqlite_path, session.id)] == [1, 2, 3, 4]
    assert _stored(sqlite_path, deleted.id) == []


async def test_a_caller_cancelled_before_its_turn_writes_nothing(
    repositories: tuple[SessionRepository, MessageRepository], sqlite_path: Path
) -> None:
    sessions, history = repositories
    session = await sessions.create(TENANT, NewSession())

    kept = asyncio.create_task(history.append(TENANT, session.id, [NewMessage(Role.USER, "kept")]))
    dropped = asyncio.create_task(
        history.append(TENANT, session.id, [NewMessage(Role.USER, "dropped")])
    )
    await asyncio.sleep(0)  # both have queued; the writer has not taken them yet
    dropped.cancel()
    await kept

    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert _stored(sqlite_path, session.id) == [(1, "kept")]
    assert (await sessions.get(TENANT, session.id)).last_seq == 1


async def test_the_session_an_append_answers_with_is_the_row_as_committed(
    repositories: tuple[SessionRepository, MessageRepository],
) -> None:
    # After its first append, a session's later appends return only the columns they
    # change and patch the record kept from the one before: each answer must be the
    # whole row as read back, including after writes that did not go through here
    # (a title change) and for a session purged and made again under the same id.
    sessions, history = repositories
    session_id = str(uuid.uuid4())
    await sessions.create(
        TENANT, NewSession(title="first", metadata={"k": "v"}), session_id=session_id
    )

    async def append_and_compare(text: str) -> SessionRecord:
        answered, _ = await history.append(TENANT, session_id, [NewMessage(Role.USER, text)])
        assert answered == await sessions.get(TENANT, session_id)
        return answered

    await append_and_compare("kept from here on")
    usage = await append_and_compare("patched")
    assert (usage.message_count, usage.last_message_preview) == (2, "patched")
    await sessions.update(TENANT, session_id, {"title": "changed elsewhere"})
    assert (await append_and_compare("after the change")).title == "changed elsewhere"
    kept = await append_and_compare("patched again")

    await sessions.purge(TENANT, session_id)
    made = await sessions.create(TENANT, NewSession(title="second"), session_id=session_id)
    for _ in range(kept.revision - made.revision):  # the new row at the kept revision
        await sessions.update(TENANT, session_id, {"title": "second"})
    again = await append_and_compare("in the new session")
    assert (again.title, again.message_count, again.metadata) == ("second", 1, None)
