"""The run log, checkpoints and forks (snapshot and restore)."""

from __future__ import annotations

import asyncio
import json

import pytest
from google.protobuf import struct_pb2

from chatstore import (
    AsyncChatStoreClient,
    CheckpointEvent,
    CustomEvent,
    ErrorEvent,
    Event,
    FailedPrecondition,
    InputEvent,
    InvalidArgument,
    LlmRequestEvent,
    LlmResponseEvent,
    Message,
    NotFound,
    OutputEvent,
    Role,
)
from tests.conftest import key, snapshot


def every_kind_of_event() -> list[Event]:
    data = struct_pb2.Value()
    data.struct_value.update({"tool": "grep", "ms": 12})
    return [
        Event(input=InputEvent(content="(+ 1 2)")),
        Event(llm_request=LlmRequestEvent(prompt="add these", receipt_key="r-1")),
        Event(llm_response=LlmResponseEvent(response="3", receipt_key="r-1")),
        Event(output=OutputEvent(content="3")),
        Event(error=ErrorEvent(message="boom", code="E42")),
        Event(checkpoint=CheckpointEvent(reason="manual", state_id="s-9")),
        Event(custom=CustomEvent(type="tool_timing", data=data)),
    ]


def user(text: str) -> Message:
    return Message(role=Role.ROLE_USER, content=text)


async def test_every_event_payload_round_trips(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    sent = every_kind_of_event()

    response = await client.append_events(session.id, sent)
    listed = [e async for e in client.list_events(session.id, page_size=3)]

    assert [e.seq for e in listed] == list(range(1, 8))
    assert listed == list(response.events)
    for stored, original in zip(listed, sent, strict=True):
        kind = original.WhichOneof("payload")
        assert stored.WhichOneof("payload") == kind
        if kind == "custom":  # read back with its JSON text too
            assert json.loads(stored.custom.data_json) == {"tool": "grep", "ms": 12}
            stored.custom.ClearField("data_json")
        assert getattr(stored, kind) == getattr(original, kind)  # type: ignore[arg-type]
    assert (response.session.event_count, response.session.last_event_seq) == (7, 7)


async def test_concurrent_event_appends_are_gap_free(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    await asyncio.gather(
        *(client.append_events(session.id, every_kind_of_event()[:2]) for _ in range(10))
    )

    assert [e.seq async for e in client.list_events(session.id)] == list(range(1, 21))


async def test_event_appends_are_idempotent_under_a_request_id(
    client: AsyncChatStoreClient, database_url: str
) -> None:
    session = await client.create_session()
    first = await client.append_events(session.id, every_kind_of_event(), request_id="e-1")
    before = await snapshot(database_url)

    retry = await client.append_events(session.id, every_kind_of_event(), request_id="e-1")

    assert list(retry.events) == list(first.events)
    assert await snapshot(database_url) == before


async def test_racing_event_retries_write_once(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    results = await asyncio.gather(
        *(
            client.append_events(session.id, every_kind_of_event(), request_id="race")
            for _ in range(12)
        )
    )

    assert len({tuple(e.id for e in r.events) for r in results}) == 1
    assert (await client.get_session(session.id)).event_count == len(every_kind_of_event())


async def test_event_without_payload_is_invalid(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    with pytest.raises(InvalidArgument) as caught:
        await client.append_events(session.id, [Event(input=InputEvent(content="ok")), Event()])

    assert [v.field for v in caught.value.field_violations] == ["events[1].payload"]


async def test_events_and_messages_number_separately(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [user("a"), user("b")])

    response = await client.append_events(session.id, every_kind_of_event()[:1])

    assert response.events[0].seq == 1
    assert (response.session.last_seq, response.session.last_event_seq) == (2, 1)


async def test_events_to_a_read_only_session_fail(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.archive_session(session.id)

    with pytest.raises(FailedPrecondition):
        await client.append_events(session.id, every_kind_of_event()[:1])


async def test_checkpoints_are_created_listed_and_read(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [user("a"), user("b")])
    await client.append_events(session.id, every_kind_of_event()[:3])

    at_now = await client.create_checkpoint(
        session.id, label="before-refactor", description="all good", tags=["stable", "v1"]
    )
    earlier = await client.create_checkpoint(session.id, label="start", message_seq=1, event_seq=1)
    listed = [c async for c in client.list_checkpoints(session.id, page_size=1)]

    assert (at_now.message_seq, at_now.event_seq) == (2, 3)
    assert list(at_now.tags) == ["stable", "v1"]
    assert (earlier.message_seq, earlier.event_seq) == (1, 1)
    assert listed == [at_now, earlier]
    assert await client.get_checkpoint(session.id, at_now.id) == at_now
    assert (await client.get_session(session.id)).checkpoint_count == 2


async def test_checkpoint_beyond_the_history_is_invalid(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [user("a")])

    with pytest.raises(InvalidArgument) as caught:
        await client.create_checkpoint(session.id, message_seq=2)

    assert [v.field for v in caught.value.field_violations] == ["checkpoint.message_seq"]


async def test_unknown_checkpoint_is_not_found(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    with pytest.raises(NotFound) as caught:
        await client.get_checkpoint(session.id, "00000000-0000-4000-8000-000000000000")

    assert caught.value.reason == "CHECKPOINT_NOT_FOUND"


async def test_fork_at_a_checkpoint_then_both_go_their_own_way(
    client: AsyncChatStoreClient,
) -> None:
    source = await client.create_session(
        title="main", agent_id="bot", key=key("p1"), labels={"team": "a"}
    )
    await client.append_messages(
        source.id,
        [Message(role=Role.ROLE_ASSISTANT, content=f"m{i}", token_count=i) for i in range(1, 5)],
    )
    await client.append_events(source.id, every_kind_of_event()[:2])
    checkpoint = await client.create_checkpoint(source.id, label="here")
    await client.append_messages(source.id, [user("after the checkpoint")])

    fork = await client.fork_session(source.id, checkpoint_id=checkpoint.id, title="experiment")
    await client.append_messages(fork.id, [user("only in the fork")])
    await client.append_messages(source.id, [user("only in the source")])

    fork_history = [m.content async for m in client.list_messages(fork.id)]
    source_history = [m.content async for m in client.list_messages(source.id)]
    assert fork_history == ["m1", "m2", "m3", "m4", "only in the fork"]
    assert source_history == ["m1", "m2", "m3", "m4", "after the checkpoint", "only in the source"]
    assert fork.fork_source.session_id == source.id
    assert (fork.fork_source.message_seq, fork.fork_source.event_seq) == (4, 2)
    assert fork.fork_source.checkpoint_id == checkpoint.id
    assert (fork.title, fork.agent_id, dict(fork.labels)) == ("experiment", "bot", {"team": "a"})
    assert not fork.HasField("key")
    assert (fork.message_count, fork.last_seq, fork.last_event_seq) == (4, 4, 2)
    assert fork.token_usage.output_tokens == 10
    assert fork.last_message_preview == "m4"
    assert [e.seq async for e in client.list_events(fork.id)] == [1, 2]
    forked = [m async for m in client.list_messages(fork.id)]
    source_ids = {m.id async for m in client.list_messages(source.id)}
    assert not {m.id for m in forked} & source_ids  # copies, not shared rows
    for message in forked:  # each found by the id it is listed with, and the same
        assert await client.get_message(fork.id, message_id=message.id) == message
        assert await client.get_message(fork.id, seq=message.seq) == message


async def test_fork_at_a_seq(client: AsyncChatStoreClient) -> None:
    source = await client.create_session(title="main")
    await client.append_messages(source.id, [user(f"m{i}") for i in range(1, 6)])

    fork = await client.fork_session(source.id, message_seq=2)

    assert [m.content async for m in client.list_messages(fork.id)] == ["m1", "m2"]
    assert fork.title == "main"
    assert fork.fork_source.checkpoint_id == ""


async def test_fork_before_a_compaction_drops_the_recap(client: AsyncChatStoreClient) -> None:
    source = await client.create_session()
    await client.append_messages(source.id, [user(f"m{i}") for i in range(1, 7)])
    await client.compact_session(source.id, through_seq=4, recap="four")

    before = await client.fork_session(source.id, message_seq=3)
    after = await client.fork_session(source.id, message_seq=5)

    assert (before.recap, before.compacted_through_seq) == ("", 0)
    assert (after.recap, after.compacted_through_seq) == ("four", 4)


async def test_fork_beyond_the_history_is_invalid(client: AsyncChatStoreClient) -> None:
    source = await client.create_session()
    await client.append_messages(source.id, [user("a")])

    with pytest.raises(InvalidArgument) as caught:
        await client.fork_session(source.id, message_seq=5)
    assert [v.field for v in caught.value.field_violations] == ["message_seq"]
    with pytest.raises(InvalidArgument):
        await client.fork_session(source.id)
