"""RewindSession: removing the newest messages (OpenAI's pop_item, ADK's rewind, a
retried last turn), with every counter moved in the same transaction, idempotent under
a request id, and seen by watchers; seqs are never reused."""

from __future__ import annotations

import asyncio

import pytest

from chatstore import (
    Aborted,
    AsyncChatStoreClient,
    FailedPrecondition,
    Message,
    Role,
    TokenUsage,
)
from tests.conftest import snapshot


def turn(role: Role.ValueType, text: str, tokens: int | None = None) -> Message:
    message = Message(role=role, content=text)
    if tokens is not None:
        message.token_count = tokens
    return message


async def _conversation(client: AsyncChatStoreClient, count: int = 5) -> str:
    session = await client.create_session()
    roles = [Role.ROLE_USER, Role.ROLE_ASSISTANT]
    await client.append_messages(
        session.id, [turn(roles[i % 2], f"m{i + 1}", tokens=10 * (i + 1)) for i in range(count)]
    )
    return session.id


async def test_removing_the_newest_message_pops_it_and_moves_every_counter(
    client: AsyncChatStoreClient,
) -> None:
    session_id = await _conversation(client)
    before = await client.get_session(session_id)

    popped = await client.rewind_session(session_id, remove_count=1)

    assert [(m.seq, m.content) for m in popped.removed_messages] == [(5, "m5")]
    assert popped.removed_count == 1
    after = popped.session
    assert (after.message_count, after.last_seq) == (4, 5)  # seqs are never reused
    assert after.size_bytes == before.size_bytes - len("m5")
    # m5 was a USER message of 50 tokens: input tokens go down by 50.
    assert after.token_usage == TokenUsage(input_tokens=40, output_tokens=60, total_tokens=100)
    assert after.last_message_preview == "m4"
    assert after.etag != before.etag
    assert await client.get_session(session_id) == after
    assert [m.seq async for m in client.list_messages(session_id)] == [1, 2, 3, 4]
    appended = await client.append_messages(session_id, [turn(Role.ROLE_USER, "again")])
    assert appended.messages[0].seq == 6


async def test_rewinding_to_a_seq_removes_every_later_message(
    client: AsyncChatStoreClient,
) -> None:
    session_id = await _conversation(client)

    done = await client.rewind_session(session_id, to_seq=2)
    none_left = await client.rewind_session(session_id, to_seq=0)

    assert [m.content for m in done.removed_messages] == ["m3", "m4", "m5"]
    assert none_left.removed_count == 2
    emptied = none_left.session
    assert (emptied.message_count, emptied.last_seq, emptied.size_bytes) == (0, 5, 0)
    assert emptied.token_usage == TokenUsage()
    assert emptied.last_message_preview == ""
    assert not emptied.HasField("last_message_time")


async def test_rewinding_past_the_newest_message_removes_nothing(
    client: AsyncChatStoreClient, database_url: str
) -> None:
    session_id = await _conversation(client, 3)
    before = await snapshot(database_url)

    done = await client.rewind_session(session_id, to_seq=10)

    assert (done.removed_count, list(done.removed_messages)) == (0, [])
    assert await snapshot(database_url) == before


async def test_a_retried_rewind_answers_the_same_and_removes_nothing_more(
    client: AsyncChatStoreClient,
) -> None:
    session_id = await _conversation(client)

    first = await client.rewind_session(session_id, remove_count=2, request_id="pop-1")
    retry = await client.rewind_session(session_id, remove_count=2, request_id="pop-1")

    assert list(retry.removed_messages) == list(first.removed_messages)
    assert retry.removed_count == 2
    assert (await client.get_session(session_id)).message_count == 3
    with pytest.raises(FailedPrecondition) as caught:
        await client.rewind_session(session_id, remove_count=1, request_id="pop-1")
    assert caught.value.reason == "REQUEST_ID_REUSED"


@pytest.mark.parametrize("precondition", ["expected_last_seq", "etag"])
async def test_a_stale_precondition_removes_nothing(
    client: AsyncChatStoreClient, database_url: str, precondition: str
) -> None:
    session_id = await _conversation(client)
    before = await snapshot(database_url)
    stale = {"expected_last_seq": 4} if precondition == "expected_last_seq" else {"etag": "1"}

    with pytest.raises(Aborted):
        await client.rewind_session(session_id, remove_count=1, **stale)

    assert await snapshot(database_url) == before


async def test_concurrent_pops_each_take_their_own_message(client: AsyncChatStoreClient) -> None:
    session_id = await _conversation(client, 10)

    popped = await asyncio.gather(
        *(client.rewind_session(session_id, remove_count=1) for _ in range(6))
    )

    taken = sorted(m.seq for p in popped for m in p.removed_messages)
    assert taken == [5, 6, 7, 8, 9, 10]
    assert (await client.get_session(session_id)).message_count == 4


async def test_the_compacted_history_cannot_be_rewound_into(client: AsyncChatStoreClient) -> None:
    session_id = await _conversation(client)
    await client.compact_session(session_id, through_seq=3, recap="three")

    with pytest.raises(FailedPrecondition) as caught:
        await client.rewind_session(session_id, to_seq=2)
    kept = await client.rewind_session(session_id, to_seq=3)

    assert caught.value.reason == "COMPACTED_HISTORY"
    assert kept.removed_count == 2


async def test_removing_many_messages_answers_with_their_count_only(
    client: AsyncChatStoreClient,
) -> None:
    session_id = await _conversation(client, 150)

    done = await client.rewind_session(session_id, remove_count=120)

    assert (done.removed_count, len(done.removed_messages)) == (120, 0)
    assert (done.session.message_count, done.session.last_message_preview) == (30, "m30")


async def test_token_usage_never_goes_below_zero(client: AsyncChatStoreClient) -> None:
    session_id = await _conversation(client, 2)
    await client.update_session(session_id, token_usage=TokenUsage(input_tokens=5))

    done = await client.rewind_session(session_id, to_seq=0)

    assert done.session.token_usage == TokenUsage()


async def test_a_deleted_session_cannot_be_rewound(client: AsyncChatStoreClient) -> None:
    session_id = await _conversation(client)
    await client.delete_session(session_id)

    with pytest.raises(FailedPrecondition) as caught:
        await client.rewind_session(session_id, remove_count=1)

    assert caught.value.reason == "SESSION_DELETED"


async def test_a_watcher_is_told_of_a_rewind_then_sees_new_messages(
    client: AsyncChatStoreClient,
) -> None:
    session_id = await _conversation(client, 3)
    stream = client.watch(session_id, from_seq=3, reconnect=False)
    started = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)  # subscribed

    await client.rewind_session(session_id, to_seq=1)
    rewound = await asyncio.wait_for(started, 10)
    await client.append_messages(session_id, [turn(Role.ROLE_USER, "after")])
    following = await asyncio.wait_for(anext(stream), 10)

    assert rewound.WhichOneof("change") == "rewound"
    assert rewound.rewound.to_seq == 1
    assert rewound.rewound.session.message_count == 1
    assert (following.message.seq, following.message.content) == (4, "after")
