"""GetSession answers from its rendered sessions only while the row's version is
unchanged: a write by anyone else (another server process, the sweeper) shows at once,
and a session purged and made again under the same id is the new one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from chatstore import AsyncChatStoreClient, Message, NotFound, Role, SessionStatus
from chatstore.v1 import session_pb2
from chatstore_server.api.session_cache import RenderedSessions
from chatstore_server.server import ChatStoreServer
from chatstore_server.store import (
    Database,
    MessageRepository,
    NewMessage,
    NewSession,
    RowVersion,
    SessionPolicy,
    SessionRepository,
    sweep,
)
from chatstore_server.store import Role as StoreRole
from chatstore_server.store.sessions import utc_now
from tests.conftest import TENANT


async def test_get_session_shows_a_write_made_past_this_server(
    client: AsyncChatStoreClient, server: ChatStoreServer, database_url: str
) -> None:
    created = await client.create_session(title="before")
    first = await client.get_session(created.id)
    again = await client.get_session(created.id)  # answered from the rendered session
    # Written through a store of its own, as another server process would.
    database = Database.from_url(database_url)
    try:
        sessions = SessionRepository(database)
        await sessions.update(TENANT, created.id, {"title": "after"})
        await MessageRepository(database).append(
            TENANT, created.id, [NewMessage(role=StoreRole.USER, content="hi")]
        )
    finally:
        await database.dispose()

    after = await client.get_session(created.id)

    assert first == again
    assert (after.title, after.message_count, after.last_message_preview) == ("after", 1, "hi")
    assert after.etag != first.etag


async def test_get_session_shows_what_the_sweeper_changed(
    client: AsyncChatStoreClient, database_url: str
) -> None:
    created = await client.create_session()
    await client.append_messages(created.id, [Message(role=Role.ROLE_USER, content="hi")])
    assert (await client.get_session(created.id)).status == SessionStatus.SESSION_STATUS_ACTIVE
    database = Database.from_url(database_url)
    try:
        later = utc_now() + timedelta(hours=1)
        await sweep(database, SessionPolicy(idle_after=timedelta(minutes=1)), lambda: later)
    finally:
        await database.dispose()

    assert (await client.get_session(created.id)).status == SessionStatus.SESSION_STATUS_IDLE


async def test_a_rendered_session_is_not_found_for_another_tenant(
    client: AsyncChatStoreClient, target: str
) -> None:
    created = await client.create_session()
    await client.get_session(created.id)
    async with AsyncChatStoreClient(target, tenant_id="other") as other:
        with pytest.raises(NotFound):
            await other.get_session(created.id)


async def test_a_purged_session_is_not_found_after_being_rendered(
    client: AsyncChatStoreClient,
) -> None:
    created = await client.create_session()
    await client.get_session(created.id)
    await client.delete_session(created.id, purge=True)

    with pytest.raises(NotFound):
        await client.get_session(created.id)


def _session(revision: int, title: str = "") -> session_pb2.Session:
    return session_pb2.Session(id=str(uuid.uuid4()), title=title, etag=str(revision))


_MADE = datetime(2026, 12, 1, tzinfo=UTC)


def _at(revision: int, create_time: datetime = _MADE) -> RowVersion:
    return RowVersion(revision, create_time)


def test_rendered_sessions_answer_only_for_their_tenant_and_row_version() -> None:
    rendered = RenderedSessions()
    session_id = str(uuid.uuid4())
    session = _session(3)
    rendered.put("t", session_id, _at(3), session)

    assert rendered.get("t", session_id, _at(3)) is session
    assert rendered.version("t", session_id) == _at(3)
    assert rendered.get("t", session_id, _at(4)) is None
    # The same revision of a row made again under the id (purged, then created).
    assert rendered.get("t", session_id, _at(3, _MADE + timedelta(microseconds=1))) is None
    assert rendered.get("u", session_id, _at(3)) is None
    assert rendered.version("u", session_id) is None
    assert rendered.get("t", str(uuid.uuid4()), _at(3)) is None


def test_rendered_sessions_drop_the_oldest_and_hold_no_large_session() -> None:
    rendered = RenderedSessions(max_entries=2, max_session_bytes=100)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for session_id in ids:
        rendered.put("t", session_id, _at(1), _session(1))
    rendered.put("t", ids[2], _at(2), _session(2, title="x" * 200))  # replaces, too large

    assert len(rendered) == 1
    assert rendered.get("t", ids[0], _at(1)) is None  # the oldest went first
    assert rendered.get("t", ids[1], _at(1)) is not None
    assert rendered.get("t", ids[2], _at(1)) is None  # not the stale one either
    assert rendered.version("t", ids[2]) is None


async def test_a_session_made_again_under_a_purged_ones_id_is_not_the_old_one(
    client: AsyncChatStoreClient,
) -> None:
    # Purged and made again with the same id: both rows are at revision 1.
    session_id = str(uuid.uuid4())
    await client.create_session(session_id=session_id, title="first")
    await client.get_session(session_id)
    await client.delete_session(session_id, purge=True)

    made_again = await client.create_session(session_id=session_id, title="second")
    read = await client.get_session(session_id)

    assert (made_again.title, read.title) == ("second", "second")
    assert read.create_time == made_again.create_time


async def test_a_session_made_again_past_this_server_is_not_the_old_one(
    client: AsyncChatStoreClient, database_url: str
) -> None:
    session_id = str(uuid.uuid4())
    await client.create_session(session_id=session_id, title="first")
    await client.get_session(session_id)
    # Purged and made again by another server process, at the same revision.
    database = Database.from_url(database_url)
    try:
        sessions = SessionRepository(database)
        await sessions.purge(TENANT, session_id)
        await sessions.create(TENANT, NewSession(title="second"), session_id=session_id)
    finally:
        await database.dispose()

    assert (await client.get_session(session_id)).title == "second"
