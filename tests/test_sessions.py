"""Sessions through the real server: create, get, list with paging, update, delete."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from chatstore import (
    AlreadyExists,
    AsyncChatStoreClient,
    InvalidArgument,
    Message,
    NotFound,
    Role,
)
from chatstore.v1 import Session, UpdateSessionRequest, session_service_pb2_grpc
from tests.conftest import TENANT


async def test_create_then_get_returns_the_stored_session(client: AsyncChatStoreClient) -> None:
    created = await client.create_session(
        title="Trip planning", agent_id="planner", session_metadata={"user": "u1", "n": 2}
    )

    fetched = await client.get_session(created.id)

    assert uuid.UUID(created.id).version == 4
    assert fetched == created
    assert fetched.tenant_id == TENANT
    assert (fetched.title, fetched.agent_id) == ("Trip planning", "planner")
    assert dict(fetched.metadata) == {"user": "u1", "n": 2}
    assert fetched.create_time == fetched.update_time
    assert (fetched.message_count, fetched.last_seq) == (0, 0)


async def test_create_with_a_client_supplied_id_keeps_it(client: AsyncChatStoreClient) -> None:
    wanted = str(uuid.uuid4())

    created = await client.create_session(session_id=wanted)

    assert created.id == wanted
    with pytest.raises(AlreadyExists) as caught:
        await client.create_session(session_id=wanted)
    assert caught.value.reason == "SESSION_ALREADY_EXISTS"


async def test_get_unknown_session_is_not_found(client: AsyncChatStoreClient) -> None:
    missing = str(uuid.uuid4())

    with pytest.raises(NotFound) as caught:
        await client.get_session(missing)

    assert caught.value.reason == "SESSION_NOT_FOUND"
    assert caught.value.domain == "chatstore"
    assert caught.value.metadata["session_id"] == missing


async def test_session_of_another_tenant_is_not_found(client: AsyncChatStoreClient) -> None:
    theirs = await client.create_session(tenant_id="other", title="private")

    with pytest.raises(NotFound):
        await client.get_session(theirs.id)
    with pytest.raises(NotFound):
        await client.delete_session(theirs.id)
    assert [s.id async for s in client.list_sessions()] == []
    assert (await client.get_session(theirs.id, tenant_id="other")).title == "private"


async def test_a_session_id_is_unique_within_its_tenant_only(
    client: AsyncChatStoreClient,
) -> None:
    shared = "11111111-1111-4111-8111-111111111111"
    ours = await client.create_session(session_id=shared, title="ours")
    await client.append_messages(shared, [Message(role=Role.ROLE_USER, content="mine")])

    # Another tenant learns nothing from the id: it makes its own session under it.
    theirs = await client.create_session(tenant_id="other", session_id=shared, title="theirs")
    await client.append_messages(
        shared, [Message(role=Role.ROLE_USER, content="x")] * 2, tenant_id="other"
    )

    assert (ours.id, theirs.id) == (shared, shared)
    got_ours = await client.get_session(shared)
    got_theirs = await client.get_session(shared, tenant_id="other")
    assert (got_ours.title, got_ours.last_seq) == ("ours", 1)
    assert (got_theirs.title, got_theirs.last_seq) == ("theirs", 2)
    assert [m.content async for m in client.list_messages(shared)] == ["mine"]
    with pytest.raises(AlreadyExists):  # within a tenant, an id is still taken once
        await client.create_session(tenant_id="other", session_id=shared)
    await client.delete_session(shared, purge=True, tenant_id="other")
    assert (await client.get_session(shared)).last_seq == 1


OWN_IDS = ["user-123", "thread/42:main", "sessão 1", "🙂", "s" * 128, "not-a-uuid"]


@pytest.mark.parametrize("own_id", OWN_IDS)
async def test_the_callers_own_session_id_works_in_every_call(
    client: AsyncChatStoreClient, own_id: str
) -> None:
    created = await client.create_session(session_id=own_id, title="t")
    appended = await client.append_messages(own_id, [Message(role=Role.ROLE_USER, content="a")])
    checkpoint = await client.create_checkpoint(own_id, label="here")
    fork = await client.fork_session(own_id, checkpoint_id=checkpoint.id)
    watched = await anext(client.watch(own_id))
    await client.update_session(own_id, title="renamed")
    await client.pin_session(own_id)

    assert created.id == appended.session.id == own_id
    assert appended.messages[0].session_id == own_id
    assert fork.fork_source.session_id == own_id
    assert watched.message.session_id == own_id
    assert [s.id async for s in client.list_sessions(pinned_only=True)] == [own_id]
    assert (await client.get_session(own_id)).title == "renamed"
    await client.delete_session(own_id)
    assert (await client.undelete_session(own_id)).id == own_id


async def test_a_session_id_in_uuid_form_is_taken_in_canonical_lowercase(
    client: AsyncChatStoreClient,
) -> None:
    upper = "ABCDEF01-2345-4678-89AB-CDEF01234567"

    created = await client.create_session(session_id=upper)

    assert created.id == upper.lower()
    assert (await client.get_session(upper)).id == upper.lower()
    with pytest.raises(AlreadyExists):
        await client.create_session(session_id=upper.lower())


async def test_list_pages_through_every_session_newest_first(client: AsyncChatStoreClient) -> None:
    created = [await client.create_session(title=f"s{i}") for i in range(7)]

    pages = [page async for page in client.list_sessions(page_size=3).pages()]

    assert [len(p.items) for p in pages] == [3, 3, 1]
    assert pages[-1].next_page_token == ""
    listed = [s.id for p in pages for s in p.items]
    assert listed == [s.id for s in reversed(created)]


async def test_list_orders_by_update_time(client: AsyncChatStoreClient) -> None:
    first = await client.create_session(title="first")
    second = await client.create_session(title="second")

    await client.update_session(first.id, title="first, edited")

    assert [s.id async for s in client.list_sessions()] == [first.id, second.id]


async def test_list_filters_by_agent(client: AsyncChatStoreClient) -> None:
    mine = [await client.create_session(agent_id="a1") for _ in range(3)]
    await client.create_session(agent_id="a2")

    listed = [s.id async for s in client.list_sessions(agent_id="a1", page_size=2)]

    assert sorted(listed) == sorted(s.id for s in mine)


async def test_page_size_over_the_maximum_is_capped(client: AsyncChatStoreClient) -> None:
    await client.create_session()

    pages = [p async for p in client.list_sessions(page_size=1_000_000).pages()]

    assert len(pages) == 1


async def test_page_token_reused_with_another_filter_is_invalid(
    client: AsyncChatStoreClient,
) -> None:
    for _ in range(3):
        await client.create_session(agent_id="a1")
    first_page = await anext(client.list_sessions(agent_id="a1", page_size=1).pages())

    with pytest.raises(InvalidArgument) as caught:
        await anext(
            client.list_sessions(agent_id="a2", page_token=first_page.next_page_token).pages()
        )

    assert [v.field for v in caught.value.field_violations] == ["page_token"]


@pytest.mark.parametrize("token", ["garbage", "eyJ2IjoxfQ", "%%%"])
async def test_malformed_page_token_is_invalid(client: AsyncChatStoreClient, token: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await anext(client.list_sessions(page_token=token).pages())

    assert [v.field for v in caught.value.field_violations] == ["page_token"]


async def test_negative_page_size_is_invalid(client: AsyncChatStoreClient) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await anext(client.list_sessions(page_size=-1).pages())

    assert [v.field for v in caught.value.field_violations] == ["page_size"]


async def test_update_changes_only_the_fields_named(client: AsyncChatStoreClient) -> None:
    created = await client.create_session(title="old", agent_id="a1", session_metadata={"k": "v"})

    updated = await client.update_session(created.id, title="new")

    assert (updated.title, updated.agent_id, dict(updated.metadata)) == ("new", "a1", {"k": "v"})
    assert updated.update_time.ToDatetime() > created.update_time.ToDatetime()
    assert await client.get_session(created.id) == updated


async def test_update_can_clear_fields(client: AsyncChatStoreClient) -> None:
    created = await client.create_session(title="old", session_metadata={"k": "v"})

    updated = await client.update_session(created.id, title="", session_metadata=None)

    assert updated.title == ""
    assert not updated.HasField("metadata")


async def test_update_with_wildcard_mask_replaces_every_mutable_field(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = session_service_pb2_grpc.SessionServiceStub(channel)
        async with AsyncChatStoreClient(target, tenant_id=TENANT) as client:
            created = await client.create_session(title="old", agent_id="a1")

        updated = await stub.UpdateSession(
            UpdateSessionRequest(
                tenant_id=TENANT,
                session=Session(id=created.id, title="new"),
                update_mask=field_mask_pb2.FieldMask(paths=["*"]),
            )
        )

    assert (updated.title, updated.agent_id) == ("new", "")


async def test_update_without_mask_changes_the_populated_fields(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = session_service_pb2_grpc.SessionServiceStub(channel)
        async with AsyncChatStoreClient(target, tenant_id=TENANT) as client:
            created = await client.create_session(title="old", agent_id="a1")

        updated = await stub.UpdateSession(
            UpdateSessionRequest(tenant_id=TENANT, session=Session(id=created.id, title="new"))
        )

    assert (updated.title, updated.agent_id) == ("new", "a1")


async def test_purge_removes_the_session(client: AsyncChatStoreClient) -> None:
    created = await client.create_session(title="doomed")

    purged = await client.delete_session(created.id, purge=True)

    assert purged.id == created.id
    with pytest.raises(NotFound):
        await client.get_session(created.id)
    with pytest.raises(NotFound):
        await client.delete_session(created.id, purge=True)


@pytest.mark.parametrize("paths", [["labels"], ["*"], []], ids=["labels", "wildcard", "implied"])
async def test_changed_labels_show_in_every_read(target: str, paths: list[str]) -> None:
    async with AsyncChatStoreClient(target, tenant_id=TENANT) as client:
        created = await client.create_session(title="t", labels={"old": "1"})
        async with grpc.aio.insecure_channel(target) as channel:
            updated = await session_service_pb2_grpc.SessionServiceStub(channel).UpdateSession(
                UpdateSessionRequest(
                    tenant_id=TENANT,
                    session=Session(id=created.id, title="t", labels={"a": "b"}),
                    update_mask=field_mask_pb2.FieldMask(paths=paths),
                )
            )
        got = await client.get_session(created.id)
        [listed] = [s async for s in client.list_sessions()]
        by_new = [s.id async for s in client.list_sessions(labels={"a": "b"})]
        by_old = [s.id async for s in client.list_sessions(labels={"old": "1"})]

    for session in (updated, got, listed):
        assert dict(session.labels) == {"a": "b"}
    assert (by_new, by_old) == ([created.id], [])


async def test_labels_can_be_cleared(client: AsyncChatStoreClient) -> None:
    created = await client.create_session(labels={"team": "x", "tier": "1"})

    cleared = await client.update_session(created.id, labels={})

    assert dict(cleared.labels) == {}
    assert dict((await client.get_session(created.id)).labels) == {}
    assert [s.id async for s in client.list_sessions(labels={"team": "x"})] == []
