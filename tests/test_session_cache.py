"""GetSession answers from its rendered sessions only while the row's revision is
unchanged: a write by anyone else (another server process, the sweeper) shows at once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from chatstore import AsyncChatStoreClient, Message, NotFound, Role, SessionStatus
from chatstore.v1 import session_pb2
from chatstore_server.api.session_cache import RenderedSessions
from chatstore_server.server import ChatStoreServer
from chatstore_server.store import (
    Database,
    MessageRepository,
    NewMessage,
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
        await sessions.update(TENANT, uuid.UUID(created.id), {"title": "after"})
        await MessageRepository(database).append(
            TENANT, uuid.UUID(created.id), [NewMessage(role=StoreRole.USER, content="hi")]
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


def test_rendered_sessions_answer_only_for_their_tenant_and_revision() -> None:
    rendered = RenderedSessions()
    session_id = uuid.uuid4()
    session = _session(3)
    rendered.put("t", session_id, 3, session)

    assert rendered.get("t", session_id, 3) is session
    assert rendered.revision("t", session_id) == 3
    assert rendered.get("t", session_id, 4) is None
    assert rendered.get("u", session_id, 3) is None
    assert rendered.revision("u", session_id) is None
    assert rendered.get("t", uuid.uuid4(), 3) is None


def test_rendered_sessions_drop_the_oldest_and_hold_no_large_session() -> None:
    rendered = RenderedSessions(max_entries=2, max_session_bytes=100)
    ids = [uuid.uuid4() for _ in range(3)]
    for session_id in ids:
        rendered.put("t", session_id, 1, _session(1))
    rendered.put("t", ids[2], 2, _session(2, title="x" * 200))  # replaces, then too large

    assert len(rendered) == 1
    assert rendered.get("t", ids[0], 1) is None  # the oldest went first
    assert rendered.get("t", ids[1], 1) is not None
    assert rendered.get("t", ids[2], 1) is None  # not the stale one either
    assert rendered.revision("t", ids[2]) is None
