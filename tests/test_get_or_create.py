"""GetOrCreateSession: one live session per (tenant, agent, key), even under races."""

from __future__ import annotations

import asyncio

import pytest

from chatstore import AsyncChatStoreClient, InvalidArgument, PeerKind, Session, SessionKey
from tests.conftest import key, snapshot


async def test_creates_once_then_returns_the_same_session(client: AsyncChatStoreClient) -> None:
    first = await client.get_or_create_session(
        key("u1"), agent_id="bot", defaults=Session(title="From Discord", model="m1")
    )
    second = await client.get_or_create_session(key("u1"), agent_id="bot")

    assert first.created
    assert not second.created
    assert second.session == first.session
    assert (first.session.title, first.session.model, first.session.agent_id) == (
        "From Discord",
        "m1",
        "bot",
    )
    assert first.session.key == key("u1")


async def test_twenty_concurrent_callers_get_one_session(
    client: AsyncChatStoreClient, database_url: str
) -> None:
    results = await asyncio.gather(
        *(client.get_or_create_session(key("race"), agent_id="bot") for _ in range(20))
    )

    assert len({r.session.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert len((await snapshot(database_url))["sessions"]) == 1


async def test_each_part_of_the_key_and_the_agent_tell_sessions_apart(
    client: AsyncChatStoreClient,
) -> None:
    base = await client.get_or_create_session(key("u1"), agent_id="bot")
    variants = [
        await client.get_or_create_session(key("u2"), agent_id="bot"),
        await client.get_or_create_session(key("u1", channel="slack"), agent_id="bot"),
        await client.get_or_create_session(key("u1"), agent_id="other"),
    ]

    assert all(v.created for v in variants)
    assert len({base.session.id, *(v.session.id for v in variants)}) == 4


async def test_a_deleted_session_gives_its_key_up(client: AsyncChatStoreClient) -> None:
    old = await client.get_or_create_session(key("u1"), agent_id="bot")
    await client.delete_session(old.session.id)

    new = await client.get_or_create_session(key("u1"), agent_id="bot")

    assert new.created
    assert new.session.id != old.session.id


@pytest.mark.parametrize(
    ("bad_key", "field"),
    [
        (None, "key"),
        (SessionKey(account_id="a", peer_kind=PeerKind.PEER_KIND_DM, peer_id="p"), "key.channel"),
        (SessionKey(channel="c", peer_kind=PeerKind.PEER_KIND_DM, peer_id="p"), "key.account_id"),
        (SessionKey(channel="c", account_id="a", peer_id="p"), "key.peer_kind"),
        (SessionKey(channel="c", account_id="a", peer_kind=PeerKind.PEER_KIND_DM), "key.peer_id"),
        (
            SessionKey(
                channel="c" * 65, account_id="a", peer_kind=PeerKind.PEER_KIND_DM, peer_id="p"
            ),
            "key.channel",
        ),
    ],
)
async def test_bad_key_is_invalid_argument(
    client: AsyncChatStoreClient, database_url: str, bad_key: SessionKey | None, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await client.get_or_create_session(bad_key)  # type: ignore[arg-type]

    assert field in [v.field for v in caught.value.field_violations]
    assert (await snapshot(database_url))["sessions"] == []
