"""AppendMessages as an agent runtime uses it: full message fields, idempotent retries
(also racing), preconditions, batch atomicity, many concurrent writers."""

from __future__ import annotations

import asyncio
import json

import pytest
from google.protobuf import json_format, struct_pb2

from chatstore import (
    Aborted,
    AsyncChatStoreClient,
    FailedPrecondition,
    InvalidArgument,
    Message,
    OutOfRange,
    Role,
    TokenUsage,
    ToolCall,
)
from tests.conftest import snapshot


def user(text: str) -> Message:
    return Message(role=Role.ROLE_USER, content=text)


async def test_every_message_field_round_trips(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    parts = struct_pb2.Value()
    parts.list_value.values.add().struct_value.update({"type": "image_url", "url": "https://x"})
    meta = struct_pb2.Struct()
    meta.update({"latency_ms": 120, "cached": True})
    sent = [
        Message(
            role=Role.ROLE_ASSISTANT,
            content="Let me look.",
            structured_content=parts,
            tool_calls=[ToolCall(id="call_9", name="search", arguments='{"q":"x"}')],
            name="planner",
            agent_id="agent-7",
            model="gpt-4o",
            metadata=meta,
            token_count=12,
        ),
        Message(role=Role.ROLE_TOOL, content="result", tool_call_id="call_9", name="search"),
    ]

    stored = (await client.append_messages(session.id, sent)).messages
    listed = [m async for m in client.list_messages(session.id)]

    assert listed == list(stored)
    first = listed[0]
    assert first.structured_content == parts
    assert (first.name, first.agent_id, first.model) == ("planner", "agent-7", "gpt-4o")
    assert first.metadata == meta
    assert listed[1].tool_call_id == "call_9"
    assert not first.compacted


@pytest.mark.parametrize(
    "value",
    [
        struct_pb2.Value(null_value=struct_pb2.NULL_VALUE),
        struct_pb2.Value(
            list_value=struct_pb2.ListValue(
                values=[struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)]
            )
        ),
        struct_pb2.Value(bool_value=False),
        struct_pb2.Value(number_value=0),
        struct_pb2.Value(string_value=""),
    ],
    ids=["null", "list of null", "false", "zero", "empty string"],
)
async def test_structured_content_that_is_json_null_or_falsy_round_trips(
    client: AsyncChatStoreClient, value: struct_pb2.Value
) -> None:
    session = await client.create_session()

    stored = (
        await client.append_messages(
            session.id, [Message(role=Role.ROLE_USER, structured_content=value)]
        )
    ).messages[0]
    read = await client.get_message(session.id, seq=stored.seq)

    for message in (stored, read):
        assert message.HasField("structured_content")
        assert message.structured_content == value
    as_json = json.dumps(json_format.MessageToDict(value), separators=(",", ":"))
    assert (await client.get_session(session.id)).size_bytes == len(as_json)


async def test_size_counts_structured_content(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    value = struct_pb2.Value(string_value="abc")

    after = (
        await client.append_messages(
            session.id, [Message(role=Role.ROLE_USER, content="hi", structured_content=value)]
        )
    ).session

    assert after.size_bytes == len("hi") + len('"abc"')


async def test_retry_with_the_same_request_id_returns_the_first_result(
    client: AsyncChatStoreClient, database_url: str
) -> None:
    session = await client.create_session()
    first = await client.append_messages(session.id, [user("a"), user("b")], request_id="req-1")
    before = await snapshot(database_url)

    retry = await client.append_messages(session.id, [user("a"), user("b")], request_id="req-1")

    assert list(retry.messages) == list(first.messages)
    assert retry.session.last_seq == 2
    assert await snapshot(database_url) == before


async def test_racing_retries_write_once(client: AsyncChatStoreClient, database_url: str) -> None:
    session = await client.create_session()

    results = await asyncio.gather(
        *(client.append_messages(session.id, [user("once")], request_id="race") for _ in range(12))
    )

    assert len({r.messages[0].id for r in results}) == 1
    assert {r.messages[0].seq for r in results} == {1}
    assert len((await snapshot(database_url))["messages"]) == 1


async def test_request_id_is_per_session(client: AsyncChatStoreClient) -> None:
    one = await client.create_session()
    two = await client.create_session()

    await client.append_messages(one.id, [user("x")], request_id="same")
    other = await client.append_messages(two.id, [user("x")], request_id="same")

    assert other.messages[0].session_id == two.id


async def test_request_id_reused_with_other_messages_fails(
    client: AsyncChatStoreClient, database_url: str
) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [user("a")], request_id="req")
    before = await snapshot(database_url)

    with pytest.raises(FailedPrecondition) as caught:
        await client.append_messages(session.id, [user("different")], request_id="req")

    assert caught.value.reason == "REQUEST_ID_REUSED"
    assert await snapshot(database_url) == before


async def test_retry_wins_over_its_own_moved_precondition(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    first = await client.append_messages(
        session.id, [user("a")], request_id="r", expected_last_seq=0
    )

    retry = await client.append_messages(
        session.id, [user("a")], request_id="r", expected_last_seq=0
    )

    assert list(retry.messages) == list(first.messages)


@pytest.mark.parametrize("precondition", ["expected_last_seq", "etag"])
async def test_precondition_mismatch_is_aborted_and_writes_nothing(
    client: AsyncChatStoreClient, database_url: str, precondition: str
) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [user("a")])
    before = await snapshot(database_url)
    stale = (
        {"expected_last_seq": 0} if precondition == "expected_last_seq" else {"etag": session.etag}
    )

    with pytest.raises(Aborted):
        await client.append_messages(session.id, [user("b")], **stale)

    assert await snapshot(database_url) == before


async def test_matching_preconditions_let_the_append_through(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    first = await client.append_messages(session.id, [user("a")], expected_last_seq=0)
    second = await client.append_messages(
        session.id, [user("b")], expected_last_seq=1, etag=first.session.etag
    )

    assert second.session.last_seq == 2


async def test_one_bad_message_writes_none_of_the_batch(
    client: AsyncChatStoreClient, database_url: str
) -> None:
    session = await client.create_session()
    before = await snapshot(database_url)
    batch = [
        user("ok 1"),
        user("ok 2"),
        Message(role=Role.ROLE_TOOL, content="no call id"),
        user("ok 3"),
    ]

    with pytest.raises(InvalidArgument) as caught:
        await client.append_messages(session.id, batch)

    assert [v.field for v in caught.value.field_violations] == ["messages[2].tool_call_id"]
    assert await snapshot(database_url) == before


async def test_32_concurrent_appenders_get_unique_gap_free_seqs(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()

    async def writer(index: int) -> list[int]:
        seqs = []
        for turn in range(5):
            response = await client.append_messages(session.id, [user(f"w{index}-{turn}")])
            seqs.append(response.messages[0].seq)
        return seqs

    results = await asyncio.gather(*(writer(i) for i in range(32)))

    seqs = sorted(s for r in results for s in r)
    assert seqs == list(range(1, 32 * 5 + 1))
    for mine in results:
        assert mine == sorted(mine)  # each writer sees its own appends in order
    stored = [m.seq async for m in client.list_messages(session.id, page_size=1000)]
    assert stored == seqs
    assert (await client.get_session(session.id)).message_count == 160


INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


@pytest.mark.parametrize("counter", ["input_tokens", "output_tokens", "total_tokens"])
async def test_an_append_that_would_overflow_token_usage_is_out_of_range_and_writes_nothing(
    client: AsyncChatStoreClient, database_url: str, counter: str
) -> None:
    session = await client.create_session()
    usage = TokenUsage(**{counter: INT64_MAX})
    await client.update_session(session.id, token_usage=usage)
    before = await snapshot(database_url)
    role = Role.ROLE_ASSISTANT if counter == "output_tokens" else Role.ROLE_USER

    with pytest.raises(OutOfRange) as caught:
        await client.append_messages(
            session.id, [Message(role=role, content="x", token_count=INT32_MAX)]
        )

    assert caught.value.reason == "COUNTER_OVERFLOW"
    assert caught.value.metadata["counter"] == f"token_usage.{counter}"
    assert await snapshot(database_url) == before
    # The tenant is whole: the session reads, lists, and takes what fits.
    assert (await client.get_session(session.id)).token_usage == usage
    assert [s.id async for s in client.list_sessions()] == [session.id]
    await client.update_session(session.id, token_usage=TokenUsage())
    fits = await client.append_messages(
        session.id, [Message(role=role, content="x", token_count=INT32_MAX)]
    )
    assert fits.session.token_usage.total_tokens == INT32_MAX


async def test_concurrent_appends_refuse_only_the_one_that_would_overflow(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()
    start = INT64_MAX - 10
    await client.update_session(
        session.id, token_usage=TokenUsage(input_tokens=start, total_tokens=start)
    )

    async def append(tokens: int) -> object:
        message = Message(role=Role.ROLE_USER, content=str(tokens), token_count=tokens)
        return await client.append_messages(session.id, [message])

    # Appended together (SQLite writes such appends as one block): the block is refused,
    # and each append is then decided alone.
    results = await asyncio.gather(
        *(append(tokens) for tokens in (1, 1, INT32_MAX, 1, 1)), return_exceptions=True
    )

    assert [type(r) is OutOfRange for r in results] == [False, False, True, False, False]
    after = await client.get_session(session.id)
    assert (after.token_usage.input_tokens, after.last_seq) == (start + 4, 4)
