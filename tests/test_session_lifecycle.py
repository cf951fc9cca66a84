"""The session lifecycle: fields, pin, archive, soft delete, undelete, access mode,
retention, etags and counters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from chatstore import (
    Aborted,
    AccessMode,
    AlreadyExists,
    AsyncChatStoreClient,
    FailedPrecondition,
    Message,
    Retention,
    Role,
    SessionStatus,
    SessionView,
    TokenUsage,
)
from tests.conftest import key, snapshot


def user(text: str, tokens: int | None = None) -> Message:
    return Message(role=Role.ROLE_USER, content=text, token_count=tokens)


async def test_new_session_has_lifecycle_defaults(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    assert session.status == SessionStatus.SESSION_STATUS_ACTIVE
    assert session.retention == Retention.RETENTION_SAVED
    assert session.access_mode == AccessMode.ACCESS_MODE_READ_WRITE
    for unset in ("key", "pin_time", "archive_time", "delete_time", "expire_time"):
        assert not session.HasField(unset), unset
    assert not session.HasField("last_message_time")
    assert session.token_usage == TokenUsage()
    assert session.etag


async def test_every_field_round_trips(client: AsyncChatStoreClient) -> None:
    created = await client.create_session(
        title="t",
        agent_id="bot",
        key=key("peer-7"),
        retention=Retention.RETENTION_EPHEMERAL,
        access_mode=AccessMode.ACCESS_MODE_READ_ONLY,
        model="gpt-4o",
        persona_id="pirate",
        recap="so far: nothing",
        labels={"team": "support", "tier": "gold"},
    )

    fetched = await client.get_session(created.id)

    assert fetched == created
    assert fetched.key == key("peer-7")
    assert (fetched.model, fetched.persona_id, fetched.recap) == (
        "gpt-4o",
        "pirate",
        "so far: nothing",
    )
    assert dict(fetched.labels) == {"team": "support", "tier": "gold"}


async def test_pin_and_unpin(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    pinned = await client.pin_session(session.id)
    again = await client.pin_session(session.id)
    unpinned = await client.unpin_session(session.id)

    assert pinned.HasField("pin_time")
    assert again == pinned  # a no-op: not even the etag moves
    assert not unpinned.HasField("pin_time")
    assert len({session.etag, pinned.etag, unpinned.etag}) == 3


async def test_archive_and_unarchive(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    archived = await client.archive_session(session.id)
    listed_by_default = [s.id async for s in client.list_sessions()]
    unarchived = await client.unarchive_session(session.id)

    assert archived.status == SessionStatus.SESSION_STATUS_ARCHIVED
    assert archived.HasField("archive_time")
    assert listed_by_default == []
    assert unarchived.status == SessionStatus.SESSION_STATUS_ACTIVE
    assert not unarchived.HasField("archive_time")
    assert [s.id async for s in client.list_sessions()] == [session.id]


async def test_soft_delete_then_undelete(client: AsyncChatStoreClient) -> None:
    session = await client.create_session(title="oops")
    await client.append_messages(session.id, [user("kept")])

    deleted = await client.delete_session(session.id)

    assert deleted.HasField("delete_time")
    retention = deleted.expire_time.ToDatetime() - deleted.delete_time.ToDatetime()
    assert retention.days == 30  # the default deleted-session retention
    assert [s.id async for s in client.list_sessions()] == []
    assert (await client.get_session(session.id)).HasField("delete_time")  # AIP-164
    assert await client.delete_session(session.id) == deleted  # deleting again: no-op

    restored = await client.undelete_session(session.id)

    assert not restored.HasField("delete_time")
    assert not restored.HasField("expire_time")
    assert [m.content async for m in client.list_messages(session.id)] == ["kept"]
    assert [s.id async for s in client.list_sessions()] == [session.id]


async def test_undelete_of_a_live_session_is_already_exists(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    with pytest.raises(AlreadyExists) as caught:
        await client.undelete_session(session.id)

    assert caught.value.reason == "SESSION_NOT_DELETED"


@pytest.mark.parametrize(
    ("make_unwritable", "reason"),
    [
        ("delete_session", "SESSION_DELETED"),
        ("archive_session", "SESSION_ARCHIVED"),
        ("read_only", "SESSION_READ_ONLY"),
    ],
)
async def test_append_to_an_unwritable_session_fails_and_writes_nothing(
    client: AsyncChatStoreClient, database_url: str, make_unwritable: str, reason: str
) -> None:
    session = await client.create_session()
    if make_unwritable == "read_only":
        await client.update_session(session.id, access_mode=AccessMode.ACCESS_MODE_READ_ONLY)
    else:
        await getattr(client, make_unwritable)(session.id)
    before = await snapshot(database_url)

    with pytest.raises(FailedPrecondition) as caught:
        await client.append_messages(session.id, [user("refused")])

    assert caught.value.reason == reason
    assert caught.value.metadata["session_id"] == session.id
    assert await snapshot(database_url) == before


async def test_read_only_session_accepts_appends_again_once_read_write(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session(access_mode=AccessMode.ACCESS_MODE_READ_ONLY)

    await client.update_session(session.id, access_mode=AccessMode.ACCESS_MODE_READ_WRITE)
    response = await client.append_messages(session.id, [user("now ok")])

    assert response.session.last_seq == 1


async def test_updating_a_deleted_session_fails(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.delete_session(session.id)

    with pytest.raises(FailedPrecondition) as caught:
        await client.update_session(session.id, title="x")
    assert caught.value.reason == "SESSION_DELETED"
    with pytest.raises(FailedPrecondition):
        await client.pin_session(session.id)


async def test_ephemeral_session_expires_until_saved(client: AsyncChatStoreClient) -> None:
    session = await client.create_session(retention=Retention.RETENTION_EPHEMERAL)
    ttl = session.expire_time.ToDatetime() - session.create_time.ToDatetime()

    saved = await client.update_session(session.id, retention=Retention.RETENTION_SAVED)
    ephemeral_again = await client.update_session(
        session.id, retention=Retention.RETENTION_EPHEMERAL
    )

    assert ttl.total_seconds() == 24 * 3600  # the default ephemeral TTL
    assert not saved.HasField("expire_time")
    assert ephemeral_again.expire_time.ToDatetime() > session.expire_time.ToDatetime()


async def test_appending_slides_an_ephemeral_expiry(client: AsyncChatStoreClient) -> None:
    session = await client.create_session(retention=Retention.RETENTION_EPHEMERAL)

    after = (await client.append_messages(session.id, [user("hi")])).session

    assert after.expire_time.ToDatetime() > session.expire_time.ToDatetime()


async def test_every_write_changes_the_etag(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    etags = [session.etag]
    etags.append((await client.update_session(session.id, title="a")).etag)
    etags.append((await client.append_messages(session.id, [user("m")])).session.etag)
    etags.append((await client.pin_session(session.id)).etag)
    etags.append((await client.archive_session(session.id)).etag)
    etags.append((await client.unarchive_session(session.id)).etag)
    etags.append((await client.delete_session(session.id)).etag)
    etags.append((await client.undelete_session(session.id)).etag)

    assert len(set(etags)) == len(etags)


@pytest.mark.parametrize(
    "write",
    ["update_session", "delete_session", "pin_session", "archive_session", "purge"],
)
async def test_stale_etag_is_aborted_and_changes_nothing(
    client: AsyncChatStoreClient, database_url: str, write: str
) -> None:
    session = await client.create_session(title="v1")
    stale = session.etag
    await client.update_session(session.id, title="v2")
    before = await snapshot(database_url)

    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "update_session": lambda: client.update_session(session.id, title="v3", etag=stale),
        "purge": lambda: client.delete_session(session.id, purge=True, etag=stale),
        "delete_session": lambda: client.delete_session(session.id, etag=stale),
        "pin_session": lambda: client.pin_session(session.id, etag=stale),
        "archive_session": lambda: client.archive_session(session.id, etag=stale),
    }

    with pytest.raises(Aborted) as caught:
        await calls[write]()

    assert caught.value.reason == "ETAG_MISMATCH"
    assert await snapshot(database_url) == before


async def test_current_etag_lets_the_write_through(client: AsyncChatStoreClient) -> None:
    session = await client.create_session(title="v1")

    updated = await client.update_session(session.id, title="v2", etag=session.etag)

    assert updated.title == "v2"


async def test_appends_move_the_counters(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    after = (
        await client.append_messages(
            session.id,
            [
                user("héllo", tokens=3),
                Message(role=Role.ROLE_ASSISTANT, content="x" * 300, token_count=10),
                Message(role=Role.ROLE_TOOL, content="done", tool_call_id="c1"),
            ],
        )
    ).session

    assert after.token_usage == TokenUsage(input_tokens=3, output_tokens=10, total_tokens=13)
    assert after.size_bytes == len("héllo".encode()) + 300 + 4
    assert after.last_message_preview == "done"
    assert after.last_message_time == after.update_time
    assert after.message_count == 3
    longer = await client.append_messages(session.id, [user("y" * 500)])
    assert longer.session.last_message_preview == "y" * 200


async def test_token_usage_can_be_overwritten(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    billed = TokenUsage(input_tokens=1000, output_tokens=50, total_tokens=1050)

    updated = await client.update_session(session.id, token_usage=billed)

    assert updated.token_usage == billed


async def test_full_view_embeds_the_newest_messages(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [user(f"m{i}") for i in range(1, 121)])

    basic = await client.get_session(session.id)
    full = await client.get_session(session.id, view=SessionView.SESSION_VIEW_FULL)

    assert len(basic.recent_messages) == 0
    assert [m.seq for m in full.recent_messages] == list(range(21, 121))


async def test_keyed_session_is_unique_per_agent(client: AsyncChatStoreClient) -> None:
    await client.create_session(agent_id="bot", key=key("p1"))

    with pytest.raises(AlreadyExists) as caught:
        await client.create_session(agent_id="bot", key=key("p1"))
    other_agent = await client.create_session(agent_id="other-bot", key=key("p1"))

    assert caught.value.reason == "SESSION_KEY_ALREADY_EXISTS"
    assert other_agent.key == key("p1")


async def test_full_view_marks_compacted_messages(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [user(f"m{i}") for i in range(1, 6)])
    await client.compact_session(session.id, through_seq=3, recap="m1 to m3")

    full = await client.get_session(session.id, view=SessionView.SESSION_VIEW_FULL)

    # As ListMessages reports them: compaction marks messages, it does not delete them.
    assert [(m.seq, m.compacted) for m in full.recent_messages] == [
        (1, True), (2, True), (3, True), (4, False), (5, False),
    ]  # fmt: skip
