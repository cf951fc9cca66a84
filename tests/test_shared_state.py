"""Shared states (an app's, a user's within an app: ADK's `app:` and `user:` state), and
appends that change the session and shared states in their own transaction (ADK's
event with its state delta: one call, one commit)."""

from __future__ import annotations

import json

import pytest

from chatstore import (
    Aborted,
    AsyncChatStoreClient,
    Event,
    InputEvent,
    InvalidArgument,
    Message,
    PatchMode,
    Role,
    session_change,
)
from chatstore.v1 import Session
from chatstore_server.config import Settings
from chatstore_server.server import ChatStoreServer
from tests.conftest import TENANT, snapshot

APP = "apps/travel/state"
USER = "apps/travel/users/u-1/state"


def user(text: str) -> Message:
    return Message(role=Role.ROLE_USER, content=text)


async def test_a_state_never_written_is_empty(client: AsyncChatStoreClient) -> None:
    state = await client.get_shared_state(APP)

    assert (state.name, state.data_json, state.etag) == (APP, "{}", "0")
    assert not state.HasField("update_time")


async def test_a_merge_patch_merges_nested_objects_and_removes_nulls(
    client: AsyncChatStoreClient,
) -> None:
    await client.update_shared_state(APP, {"theme": "dark", "limits": {"a": 1, "b": 2}})

    state = await client.update_shared_state(APP, {"theme": None, "limits": {"b": 3}, "n": 10**20})

    assert json.loads(state.data_json) == {"limits": {"a": 1, "b": 3}, "n": 10**20}
    assert state.data["n"] == float(10**20)  # the Struct view: a double
    assert state.etag == "2"
    assert await client.get_shared_state(APP) == state


async def test_replace_keys_sets_each_top_level_key_whole(client: AsyncChatStoreClient) -> None:
    # ADK's state_delta: a dict update. An object replaces the old one; None is kept.
    await client.update_shared_state(APP, {"prefs": {"a": 1, "b": 2}, "keep": 1})

    state = await client.update_shared_state(
        APP, {"prefs": {"a": 5}, "gone": None}, mode=PatchMode.PATCH_MODE_REPLACE_KEYS
    )

    assert json.loads(state.data_json) == {"gone": None, "keep": 1, "prefs": {"a": 5}}


async def test_an_append_can_replace_keys_of_the_metadata_and_states(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session(session_metadata={"s": {"x": 1}, "t": 1})
    await client.update_shared_state(USER, {"u": {"x": 1}})

    appended = await client.append_messages(
        session.id,
        [user("hi")],
        session_change=session_change(
            metadata_patch={"s": {"y": 2}, "t": None},
            shared_state_patches={USER: {"u": {"y": 2}}},
            patch_mode=PatchMode.PATCH_MODE_REPLACE_KEYS,
        ),
    )

    assert json.loads(appended.session.metadata_json) == {"s": {"y": 2}, "t": None}
    assert json.loads(appended.shared_states[0].data_json) == {"u": {"y": 2}}


async def test_a_stale_etag_changes_nothing(client: AsyncChatStoreClient) -> None:
    first = await client.update_shared_state(APP, {"v": 1})
    await client.update_shared_state(APP, {"v": 2})

    with pytest.raises(Aborted):
        await client.update_shared_state(APP, {"v": 3}, etag=first.etag)

    assert json.loads((await client.get_shared_state(APP)).data_json) == {"v": 2}


async def test_states_are_per_tenant_and_per_name(client: AsyncChatStoreClient) -> None:
    await client.update_shared_state(APP, {"who": "acme app"})
    await client.update_shared_state(USER, {"who": "acme user"})
    await client.update_shared_state(APP, {"who": "other app"}, tenant_id="other")

    assert json.loads((await client.get_shared_state(APP)).data_json) == {"who": "acme app"}
    assert json.loads((await client.get_shared_state(USER)).data_json) == {"who": "acme user"}
    theirs = await client.get_shared_state(USER, tenant_id="other")
    assert theirs.data_json == "{}"


@pytest.mark.parametrize(
    "name", ["apps/x", "apps//state", "apps/x/users/state", "users/x/state", "apps/a/b/state"]
)
async def test_a_malformed_name_is_invalid(client: AsyncChatStoreClient, name: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await client.update_shared_state(name, {"a": 1})

    assert [v.field for v in caught.value.field_violations] == ["patch.name"]


async def test_a_state_over_the_limit_is_refused(database_url: str) -> None:
    settings = Settings(listen="127.0.0.1:0", database_url=database_url, max_metadata_bytes=1000)
    server = await ChatStoreServer.start(settings)
    try:
        async with AsyncChatStoreClient(f"127.0.0.1:{server.port}", tenant_id=TENANT) as client:
            await client.update_shared_state(APP, {"a": "x" * 500})
            with pytest.raises(InvalidArgument) as caught:
                await client.update_shared_state(APP, {"b": "y" * 600})
            kept = await client.get_shared_state(APP)
    finally:
        await server.stop(None)

    assert [v.field for v in caught.value.field_violations] == ["patch.patch_json"]
    assert json.loads(kept.data_json) == {"a": "x" * 500}


async def test_an_append_changes_the_session_and_states_in_its_transaction(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session(session_metadata={"step": 1, "keep": True})
    change = session_change(
        metadata_patch={"step": 2, "cart": ["x"]},
        shared_state_patches={APP: {"visits": 1}, USER: {"name": "Ada"}},
        fields=Session(title="Booked"),
        update_mask=["title"],
    )

    appended = await client.append_messages(session.id, [user("book it")], session_change=change)

    after = await client.get_session(session.id)
    assert json.loads(after.metadata_json) == {"step": 2, "keep": True, "cart": ["x"]}
    assert after.title == "Booked"
    assert appended.session == after
    assert after.message_count == 1
    assert [(s.name, json.loads(s.data_json)) for s in appended.shared_states] == [
        (APP, {"visits": 1}),
        (USER, {"name": "Ada"}),
    ]


async def test_a_refused_change_writes_nothing_of_the_append(
    client: AsyncChatStoreClient, database_url: str
) -> None:
    session = await client.create_session(session_metadata={"step": 1})
    stale = await client.update_shared_state(APP, {"v": 1})
    await client.update_shared_state(APP, {"v": 2})
    before = await snapshot(database_url)
    change = session_change(
        metadata_patch={"step": 2},
        shared_state_patches={USER: {"a": 1}, APP: {"v": 3}},
        shared_state_etags={APP: stale.etag},
    )

    with pytest.raises(Aborted):
        await client.append_messages(session.id, [user("lost")], session_change=change)

    assert await snapshot(database_url) == before
    assert (await client.get_shared_state(USER)).data_json == "{}"
    assert json.loads((await client.get_shared_state(APP)).data_json) == {"v": 2}


async def test_a_retried_append_with_a_change_changes_once(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    change = session_change(shared_state_patches={APP: {"n": 1}})

    first = await client.append_messages(
        session.id, [user("a")], session_change=change, request_id="r-1"
    )
    await client.update_shared_state(APP, {"n": 5})
    retry = await client.append_messages(
        session.id, [user("a")], session_change=change, request_id="r-1"
    )

    assert list(retry.messages) == list(first.messages)
    assert json.loads(retry.shared_states[0].data_json) == {"n": 5}  # as it is now
    assert (await client.get_session(session.id)).message_count == 1


async def test_events_carry_a_change_too(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    appended = await client.append_events(
        session.id,
        [Event(input=InputEvent(content="go"))],
        session_change=session_change(metadata_patch={"ran": True}),
    )

    assert json.loads(appended.session.metadata_json) == {"ran": True}
    assert appended.session.event_count == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (session_change(metadata_patch="[1]"), "session_change.metadata_patch_json"),
        (session_change(metadata_patch="{"), "session_change.metadata_patch_json"),
        (
            session_change(shared_state_patches={"apps/x": {"a": 1}}),
            "session_change.shared_state_patches[0].name",
        ),
        (
            session_change(fields=Session(title="t"), update_mask=["message_count"]),
            "session_change.update_mask.paths[0]",
        ),
        (
            session_change(
                metadata_patch={"a": 1}, fields=Session(title="t"), update_mask=["metadata"]
            ),
            "session_change.metadata_patch_json",
        ),
        (
            session_change(metadata_patch={"a": 1}, patch_mode=7),  # type: ignore[arg-type]
            "session_change.metadata_patch_mode",
        ),
    ],
)
async def test_a_bad_change_is_invalid_and_writes_nothing(
    client: AsyncChatStoreClient, database_url: str, change: object, field: str
) -> None:
    session = await client.create_session()
    before = await snapshot(database_url)

    with pytest.raises(InvalidArgument) as caught:
        await client.append_messages(session.id, [user("x")], session_change=change)  # type: ignore[arg-type]

    assert field in [v.field for v in caught.value.field_violations]
    assert await snapshot(database_url) == before
