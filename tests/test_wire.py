"""ListMessages' pages are written from the stored bytes (`store.encoded`, `api.wire`),
not built as Message objects: what a client parses must be the same Message, field for
field, as the one the other reads build (`api.convert`), for every kind of field."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2

from chatstore import AsyncChatStoreClient, Message, Role, ToolCall
from chatstore.v1 import message_pb2, session_service_pb2
from chatstore_server.api import wire
from chatstore_server.api.convert import message_to_proto
from chatstore_server.store import StoredMessage, encoded


def _varied() -> list[Message]:
    with_struct = Message(role=Role.ROLE_USER, content="struct")
    with_struct.structured_content.struct_value.update({"a": [1, "b", None], "n": 2.5})
    with_struct.metadata.update({"k": "v"})
    return [
        Message(role=Role.ROLE_USER, content="plain"),
        Message(role=Role.ROLE_ASSISTANT, content=""),  # no content field at all
        Message(role=Role.ROLE_USER, content="ünïcödé ✓ 🚀 \u2028 中文"),
        Message(role=Role.ROLE_USER, content="x" * 20_000),  # a length past 2 bytes of varint
        Message(
            role=Role.ROLE_ASSISTANT,
            content="calling",
            tool_calls=[ToolCall(id="c1", name="lookup", arguments='{"q": 1}')],
            token_count=7,
            model="m-1",
            agent_id="planner",
            name="bot",
        ),
        Message(role=Role.ROLE_TOOL, content="result", tool_call_id="c1", token_count=0),
        Message(
            role=Role.ROLE_SYSTEM, structured_content_json='{"n": 1, "big": 18446744073709551617}'
        ),
        Message(role=Role.ROLE_USER, structured_content_json="null", metadata_json='{"x": 1.0}'),
        with_struct,
    ]


async def test_a_listed_message_is_the_message_read_alone(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    # 140 messages: seqs past 127 take two bytes of varint.
    filler = [Message(role=Role.ROLE_USER, content=f"m{n}") for n in range(131)]
    await client.append_messages(session.id, filler)
    await client.append_messages(session.id, _varied())
    await client.compact_session(session.id, through_seq=133, recap="the start")

    listed = [m async for m in client.list_messages(session.id, page_size=1_000)]
    newest_first = [m async for m in client.list_messages(session.id, newest_first=True)]

    assert [m.seq for m in listed] == list(range(1, 141))
    for message in listed[125:]:
        alone = await client.get_message(session.id, seq=message.seq)
        assert message == alone, message.seq
    assert [m.compacted for m in listed[131:134]] == [True, True, False]
    assert listed[133].content == "ünïcödé ✓ 🚀 \u2028 中文"
    assert listed[134].content == "x" * 20_000
    assert newest_first[:15] == listed[::-1][:15]


@pytest.mark.parametrize(
    "value", [1, 127, 128, 300, 16_383, 16_384, 2_097_151, 2_097_152, 2**31, 2**63 - 1]
)
def test_varints_match_protobufs(value: int) -> None:
    assert message_pb2.Message(seq=value).SerializeToString() == b"\x18" + encoded.varint(value)


def test_a_page_encodes_as_the_messages_convert_builds() -> None:
    ids = ["0190aabb-ccdd-7eef-8001-0203040506ff", "0190aabb-ccdd-7eef-8001-020304050600"]
    bodies = [
        message_pb2.Message(
            id=id,
            role=message_pb2.ROLE_ASSISTANT,
            content=content,
            token_count=3,
            structured_content=struct_pb2.Value(string_value="v"),
            structured_content_json='"v"',
        ).SerializeToString()
        for id, content in zip(ids, ["héllo", ""], strict=True)
    ]
    # As the database hands the rows over: seq, body, compacted (SQLite's 0 or 1).
    stored = [StoredMessage(20_000, bodies[0], 0), StoredMessage(20_001, bodies[1], 1)]

    page = wire.list_messages_response(encoded.messages(stored, "a session"), "tok")

    parsed = session_service_pb2.ListMessagesResponse.FromString(page)
    assert list(parsed.messages) == [message_to_proto(m, "a session") for m in stored]
    assert [(m.id, m.content, m.seq, m.compacted) for m in parsed.messages] == [
        (ids[0], "héllo", 20_000, False),
        (ids[1], "", 20_001, True),
    ]
    assert parsed.next_page_token == "tok"
