"""Messages through the real server: batches, gap-free seqs, paging, counters."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from google.protobuf import timestamp_pb2

from chatstore import AlreadyExists, AsyncChatStoreClient, Message, NotFound, Role, ToolCall
from tests.conftest import snapshot


def user(text: str) -> Message:
    return Message(role=Role.ROLE_USER, content=text)


async def test_appends_in_batches_get_gap_free_seqs(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    seqs: list[int] = []
    for start in range(0, 10, 4):
        response = await client.append_messages(
            session.id, [user(f"m{i}") for i in range(start, min(start + 4, 10))]
        )
        seqs += [m.seq for m in response.messages]

    assert seqs == list(range(1, 11))
    assert (response.session.message_count, response.session.last_seq) == (10, 10)
    assert response.session.update_time.ToDatetime() > session.update_time.ToDatetime()
    assert await client.get_session(session.id) == response.session


async def test_append_returns_the_stored_messages(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    call = ToolCall(id="call_1", name="search", arguments='{"q": "rome"')  # malformed on purpose

    response = await client.append_messages(
        session.id,
        [
            Message(role=Role.ROLE_ASSISTANT, content="", tool_calls=[call], token_count=0),
            Message(role=Role.ROLE_TOOL, content="3 results", tool_call_id="call_1"),
        ],
    )

    first, second = response.messages
    assert first.session_id == session.id
    assert uuid.UUID(first.id).version == 7  # time-ordered (chatstore_server.ids.uuid7)
    assert list(first.tool_calls) == [call]
    assert first.HasField("token_count")
    assert first.token_count == 0
    assert not second.HasField("token_count")
    assert first.create_time == second.create_time == response.session.update_time
    listed = [m async for m in client.list_messages(session.id)]
    assert listed == list(response.messages)


async def test_imported_ids_and_times_are_kept(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    wanted = str(uuid.uuid4())
    sent = timestamp_pb2.Timestamp()
    sent.FromDatetime(datetime(2024, 5, 1, 12, 30, tzinfo=UTC))

    stored = (
        await client.append_messages(
            session.id, [Message(id=wanted, role=Role.ROLE_USER, content="hi", create_time=sent)]
        )
    ).messages[0]

    assert (stored.id, stored.create_time) == (wanted, sent)


async def test_listing_returns_messages_in_seq_order_page_by_page(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [user(f"m{i}") for i in range(25)])

    pages = [p async for p in client.list_messages(session.id, page_size=10).pages()]

    assert [len(p.items) for p in pages] == [10, 10, 5]
    assert [m.seq for p in pages for m in p.items] == list(range(1, 26))
    assert [m.content for p in pages for m in p.items] == [f"m{i}" for i in range(25)]


async def test_exactly_full_last_page_has_no_next_token(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [user("a"), user("b")])

    pages = [p async for p in client.list_messages(session.id, page_size=2).pages()]

    assert len(pages) == 1
    assert pages[0].next_page_token == ""


async def test_concurrent_appends_to_one_session_stay_gap_free(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()

    responses = await asyncio.gather(
        *(
            client.append_messages(session.id, [user(f"w{w}-{i}") for i in range(3)])
            for w in range(8)
        )
    )

    seqs = sorted(m.seq for r in responses for m in r.messages)
    assert seqs == list(range(1, 25))
    for response in responses:
        batch = [m.seq for m in response.messages]
        assert batch == list(range(batch[0], batch[0] + 3))  # each batch is contiguous
    assert (await client.get_session(session.id)).message_count == 24


async def test_list_messages_of_unknown_session_is_not_found(client: AsyncChatStoreClient) -> None:
    with pytest.raises(NotFound):
        await anext(client.list_messages(str(uuid.uuid4())).pages())


async def test_empty_session_lists_no_messages(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    assert [m async for m in client.list_messages(session.id)] == []


async def test_append_to_unknown_session_is_not_found(client: AsyncChatStoreClient) -> None:
    with pytest.raises(NotFound):
        await client.append_messages(str(uuid.uuid4()), [user("hi")])


async def test_duplicate_message_id_writes_nothing(
    client: AsyncChatStoreClient, database_url: str
) -> None:
    session = await client.create_session()
    taken = (await client.append_messages(session.id, [user("first")])).messages[0].id
    before = await snapshot(database_url)

    with pytest.raises(AlreadyExists) as caught:
        await client.append_messages(
            session.id, [user("ok"), Message(id=taken, role=Role.ROLE_USER, content="dup")]
        )

    assert caught.value.reason == "MESSAGE_ALREADY_EXISTS"
    assert await snapshot(database_url) == before


async def test_purging_a_session_deletes_its_messages(
    client: AsyncChatStoreClient, database_url: str
) -> None:
    session = await client.create_session(labels={"team": "a"})
    await client.append_messages(session.id, [user("a"), user("b")])

    await client.delete_session(session.id, purge=True)

    assert await snapshot(database_url) == {"sessions": [], "messages": [], "session_labels": []}
