"""JSON stored and returned exactly: message structured content and metadata as the
caller's text (verbatim), session metadata and custom event data value for value (1
stays 1, 1.0 stays 1.0, integers beyond 2^53 keep their digits); the Struct views stay
for those who use them. And the limits frameworks outgrow are settings."""

from __future__ import annotations

import json

import grpc
import pytest

from chatstore import (
    AsyncChatStoreClient,
    CustomEvent,
    Event,
    InvalidArgument,
    Message,
    Role,
)
from chatstore.v1 import CreateSessionRequest, Session, session_service_pb2_grpc
from chatstore_server.config import Settings
from chatstore_server.server import ChatStoreServer
from tests.conftest import TENANT, snapshot

BIG = 2**63 + 7  # beyond any double's exact integers, and beyond int64
ITEM = '{"type": "message", "id":"msg_1", "n": 1, "ratio": 1.0, "big": %d, "z": [true, null]}'
ITEM %= BIG


async def test_structured_content_json_comes_back_byte_for_byte(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()
    sent = Message(role=Role.ROLE_USER, structured_content_json=ITEM, metadata_json='{"k": 1}')

    stored = (await client.append_messages(session.id, [sent])).messages[0]
    listed = [m async for m in client.list_messages(session.id)]
    got = await client.get_message(session.id, seq=1)
    watched = await anext(client.watch(session.id))

    for message in (stored, listed[0], got, watched.message):
        assert message.structured_content_json == ITEM
        assert message.metadata_json == '{"k": 1}'
        # The Struct views are there too, numbers as doubles.
        assert message.structured_content.struct_value["big"] == float(BIG)
        assert message.metadata["k"] == 1.0
    assert json.loads(got.structured_content_json)["big"] == BIG


async def test_a_value_given_as_a_struct_is_read_back_as_json_too(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()
    sent = Message(role=Role.ROLE_USER)
    sent.structured_content.list_value.values.add().string_value = "part"

    stored = (await client.append_messages(session.id, [sent])).messages[0]

    assert stored.structured_content_json == '["part"]'


async def test_session_metadata_keeps_every_value(client: AsyncChatStoreClient) -> None:
    # The client sends a dict as `metadata_json`; the server keeps the values exact.
    metadata = {"count": 1, "ratio": 1.0, "big": BIG, "nested": {"list": [1, 2.5, None]}}

    created = await client.create_session(session_metadata=metadata, session_id="s-json")
    updated = await client.update_session(created.id, session_metadata={**metadata, "count": 2})
    got = await client.get_session("s-json")
    [listed] = [s async for s in client.list_sessions()]

    assert json.loads(created.metadata_json) == metadata
    for session in (updated, got, listed):
        loaded = json.loads(session.metadata_json)
        assert loaded == {**metadata, "count": 2}
        assert (type(loaded["count"]), type(loaded["ratio"])) == (int, float)
        assert session.metadata["big"] == float(BIG)  # the Struct view, a double


async def test_session_metadata_given_as_a_struct_is_read_back_as_json_too(
    stub: session_service_pb2_grpc.SessionServiceAsyncStub,
) -> None:
    session = Session()
    session.metadata.update({"a": 1, "b": "x"})

    created = await stub.CreateSession(CreateSessionRequest(tenant_id=TENANT, session=session))

    assert json.loads(created.metadata_json) == {"a": 1.0, "b": "x"}


async def test_custom_event_data_json_keeps_every_value(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    data = {"n": 1, "f": 1.0, "big": BIG}

    stored = await client.append_events(
        session.id, [Event(custom=CustomEvent(type="t", data_json=json.dumps(data)))]
    )
    listed = [e async for e in client.list_events(session.id)]

    for event in (stored.events[0], listed[0]):
        loaded = json.loads(event.custom.data_json)
        assert loaded == data
        assert (type(loaded["n"]), type(loaded["f"])) == (int, float)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (Message(role=Role.ROLE_USER, structured_content_json="{nope"), "structured_content_json"),
        (Message(role=Role.ROLE_USER, structured_content_json="NaN"), "structured_content_json"),
        (Message(role=Role.ROLE_USER, metadata_json="[1, 2]"), "metadata_json"),
    ],
)
async def test_json_text_that_is_not_the_json_asked_for_is_invalid(
    client: AsyncChatStoreClient, database_url: str, message: Message, field: str
) -> None:
    session = await client.create_session()
    before = await snapshot(database_url)

    with pytest.raises(InvalidArgument) as caught:
        await client.append_messages(session.id, [message])

    assert [v.field for v in caught.value.field_violations] == [f"messages[0].{field}"]
    assert await snapshot(database_url) == before


async def test_both_forms_at_once_are_invalid(
    stub: session_service_pb2_grpc.SessionServiceAsyncStub,
) -> None:
    session = Session(metadata_json='{"a": 1}')
    session.metadata.update({"a": 1})

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateSession(CreateSessionRequest(tenant_id=TENANT, session=session))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "session.metadata_json" in (caught.value.details() or "")


async def test_the_limits_frameworks_outgrow_are_settings(database_url: str) -> None:
    # A 70 KB ADK state and a 150,000-character item, refused by the defaults.
    state = {"blob": "s" * 70_000}
    item = Message(role=Role.ROLE_USER, content="i" * 150_000)
    defaults = await ChatStoreServer.start(
        Settings(listen="127.0.0.1:0", database_url=database_url)
    )
    try:
        async with AsyncChatStoreClient(f"127.0.0.1:{defaults.port}", tenant_id=TENANT) as client:
            with pytest.raises(InvalidArgument):
                await client.create_session(session_metadata=state)
            session = await client.create_session()
            with pytest.raises(InvalidArgument):
                await client.append_messages(session.id, [item])
    finally:
        await defaults.stop(None)
    roomy = Settings(
        listen="127.0.0.1:0",
        database_url=database_url,
        max_metadata_bytes=256 * 1024,
        max_content_chars=200_000,
    )
    server = await ChatStoreServer.start(roomy)
    try:
        async with AsyncChatStoreClient(f"127.0.0.1:{server.port}", tenant_id=TENANT) as client:
            big = await client.create_session(session_metadata=state)
            appended = await client.append_messages(big.id, [item])
            got = await client.get_message(big.id, seq=1)
    finally:
        await server.stop(None)

    assert big.metadata["blob"] == state["blob"]
    assert appended.messages[0].seq == 1
    assert got.content == item.content
