"""Reading history: paging both ways with every filter, GetMessage, the context window,
and compaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import timestamp_pb2

from chatstore import (
    AsyncChatStoreClient,
    FailedPrecondition,
    InvalidArgument,
    Message,
    NotFound,
    Role,
    Session,
    SessionStatus,
    ToolCall,
)

ROLES = [Role.ROLE_USER, Role.ROLE_ASSISTANT, Role.ROLE_SYSTEM]
START = datetime(2025, 3, 1, tzinfo=UTC)


def at(minutes: int) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(START + timedelta(minutes=minutes))
    return result


@pytest.fixture
async def long_session(client: AsyncChatStoreClient) -> Session:
    """1,000 messages: roles cycle user/assistant/system; message i was written at minute i."""
    session = await client.create_session()
    for start in range(0, 1000, 250):
        await client.append_messages(
            session.id,
            [
                Message(role=ROLES[i % 3], content=f"m{i + 1}", create_time=at(i + 1))
                for i in range(start, start + 250)
            ],
        )
    return session


FILTERS: dict[str, tuple[dict[str, object], list[int]]] = {
    "none": ({}, list(range(1, 1001))),
    "after and before": ({"after_seq": 100, "before_seq": 401}, list(range(101, 401))),
    "roles": ({"roles": [Role.ROLE_ASSISTANT]}, list(range(2, 1001, 3))),
    "two roles": (
        {"roles": [Role.ROLE_USER, Role.ROLE_SYSTEM]},
        [s for s in range(1, 1001) if s % 3 != 2],
    ),
    "time range": (
        {"create_time_range": (START + timedelta(minutes=500), START + timedelta(minutes=700))},
        list(range(500, 700)),
    ),
}


@pytest.mark.parametrize("newest_first", [False, True])
@pytest.mark.parametrize("case", list(FILTERS))
async def test_paging_1000_messages_never_repeats_or_skips(
    client: AsyncChatStoreClient, long_session: Session, newest_first: bool, case: str
) -> None:
    filters, expected = FILTERS[case]

    seen = [
        m.seq
        async for m in client.list_messages(
            long_session.id,
            newest_first=newest_first,
            page_size=37,
            **filters,  # type: ignore[arg-type]
        )
    ]

    assert seen == (expected[::-1] if newest_first else expected)


async def test_get_message_by_id_and_by_seq(
    client: AsyncChatStoreClient, long_session: Session
) -> None:
    by_seq = await client.get_message(long_session.id, seq=777)
    by_id = await client.get_message(long_session.id, message_id=by_seq.id)

    assert by_seq == by_id
    assert by_seq.content == "m777"
    with pytest.raises(NotFound) as caught:
        await client.get_message(long_session.id, seq=1001)
    assert caught.value.reason == "MESSAGE_NOT_FOUND"
    with pytest.raises(InvalidArgument):
        await client.get_message(long_session.id)


def turn(role: Role.ValueType, text: str, tokens: int | None = 10, **fields: object) -> Message:
    return Message(role=role, content=text, token_count=tokens, **fields)  # type: ignore[arg-type]


async def test_context_window_by_count_and_by_tokens(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.append_messages(
        session.id, [turn(Role.ROLE_USER, f"m{i}", tokens=i) for i in range(1, 11)]
    )

    by_count = await client.get_context_window(session.id, max_messages=3)
    by_tokens = await client.get_context_window(session.id, max_tokens=27)  # 10 + 9 + 8
    both = await client.get_context_window(session.id, max_messages=2, max_tokens=100)
    everything = await client.get_context_window(session.id, max_messages=50)

    assert [m.content for m in by_count.messages] == ["m8", "m9", "m10"]
    assert by_count.truncated
    assert [m.content for m in by_tokens.messages] == ["m8", "m9", "m10"]
    assert by_tokens.token_count == 27
    assert [m.content for m in both.messages] == ["m9", "m10"]
    assert len(everything.messages) == 10
    assert not everything.truncated


async def test_context_window_estimates_messages_without_counts(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [turn(Role.ROLE_USER, "x" * 40, tokens=None)])

    window = await client.get_context_window(session.id, max_tokens=1000)

    assert window.token_count == 40 // 4 + 4


async def test_context_window_never_splits_a_tool_call_from_its_result(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()
    await client.append_messages(
        session.id,
        [
            turn(Role.ROLE_USER, "weather?"),
            turn(
                Role.ROLE_ASSISTANT,
                "",
                tool_calls=[ToolCall(id="c1", name="weather"), ToolCall(id="c2", name="time")],
            ),
            turn(Role.ROLE_TOOL, "sunny", tool_call_id="c1"),
            turn(Role.ROLE_TOOL, "noon", tool_call_id="c2"),
            turn(Role.ROLE_ASSISTANT, "Sunny at noon."),
        ],
    )

    # Budgets whose natural cut falls after the call, between or before the results.
    windows = [await client.get_context_window(session.id, max_messages=n) for n in (1, 2, 3, 4, 5)]

    contents = [[m.content for m in w.messages] for w in windows]
    assert contents == [
        ["Sunny at noon."],
        ["Sunny at noon."],  # "noon" alone would orphan its result
        ["Sunny at noon."],
        ["", "sunny", "noon", "Sunny at noon."],
        ["weather?", "", "sunny", "noon", "Sunny at noon."],
    ]
    assert all(w.truncated for w in windows[:4])


async def test_recap_counts_against_the_token_budget(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [turn(Role.ROLE_USER, f"m{i}") for i in range(6)])
    await client.compact_session(session.id, through_seq=2, recap="r" * 40)  # 10 tokens

    window = await client.get_context_window(session.id, max_tokens=30)

    assert window.recap == "r" * 40
    assert [m.content for m in window.messages] == ["m4", "m5"]
    assert window.token_count == 30


async def test_compaction_then_the_window_starts_after_it(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [turn(Role.ROLE_USER, f"m{i}") for i in range(1, 9)])

    compacted = await client.compact_session(session.id, through_seq=5, recap="five messages")
    window = await client.get_context_window(session.id, max_messages=100)
    kept = [m async for m in client.list_messages(session.id)]
    uncompacted = [m.seq async for m in client.list_messages(session.id, exclude_compacted=True)]

    assert compacted.status == SessionStatus.SESSION_STATUS_COMPACTED
    assert (compacted.recap, compacted.compacted_through_seq) == ("five messages", 5)
    assert [m.content for m in window.messages] == ["m6", "m7", "m8"]
    assert window.compacted_through_seq == 5
    assert len(kept) == 8  # nothing deleted
    assert [m.compacted for m in kept] == [True] * 5 + [False] * 3
    assert uncompacted == [6, 7, 8]


@pytest.mark.parametrize(("through_seq", "field"), [(9, "through_seq"), (0, "through_seq")])
async def test_compaction_out_of_range_is_invalid(
    client: AsyncChatStoreClient, through_seq: int, field: str
) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [turn(Role.ROLE_USER, f"m{i}") for i in range(8)])

    with pytest.raises(InvalidArgument) as caught:
        await client.compact_session(session.id, through_seq=through_seq, recap="r")

    assert [v.field for v in caught.value.field_violations] == [field]
    assert (await client.get_session(session.id)).compacted_through_seq == 0


async def test_compaction_below_the_current_point_is_failed_precondition(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [turn(Role.ROLE_USER, f"m{i}") for i in range(8)])
    compacted = await client.compact_session(session.id, through_seq=6, recap="six")

    with pytest.raises(FailedPrecondition) as caught:
        await client.compact_session(session.id, through_seq=4, recap="four")

    # The state of the session forbids it (the proto's contract), not a malformed field.
    assert caught.value.reason == "ALREADY_COMPACTED_BEYOND"
    assert await client.get_session(session.id) == compacted
    again = await client.compact_session(session.id, through_seq=6, recap="six, again")
    assert again.recap == "six, again"  # the same point may be compacted anew


async def test_a_message_after_compaction_makes_the_session_active(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [turn(Role.ROLE_USER, "a"), turn(Role.ROLE_USER, "b")])
    await client.compact_session(session.id, through_seq=1, recap="a")

    after = await client.append_messages(session.id, [turn(Role.ROLE_USER, "c")])

    assert after.session.status == SessionStatus.SESSION_STATUS_ACTIVE
    assert after.session.compacted_through_seq == 1
