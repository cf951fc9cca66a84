"""The Python client as a user meets it: both flavours, every method, retries, watch
reconnection, pinned public names, and a README example that type-checks."""

from __future__ import annotations

import asyncio
import inspect
import re
import uuid
from pathlib import Path

import pytest
from mypy import api as mypy_api

import chatstore
from chatstore import (
    AsyncChatStoreClient,
    ChatStoreClient,
    CheckpointWrite,
    Event,
    InputEvent,
    Message,
    NotFound,
    Role,
    SessionView,
    Unavailable,
)
from chatstore_server.config import Settings
from chatstore_server.server import ChatStoreServer
from tests.conftest import TENANT, key
from tests.flaky import FlakyProxy
from tests.processes import free_port

PUBLIC_NAMES = [
    "Aborted", "AccessMode", "AlreadyExists", "AsyncChatStoreClient", "AsyncPager",
    "ChatStoreClient", "ChatStoreError", "Checkpoint", "CheckpointEvent", "CheckpointWrite",
    "ContextWindow", "CustomEvent", "DEFAULT_TARGET", "DEFAULT_TIMEOUT_SECONDS",
    "DeadlineExceeded", "ErrorEvent", "Event", "FailedPrecondition", "FieldViolation",
    "ForkSource", "Inclusion", "InputEvent", "Internal", "InvalidArgument", "LlmRequestEvent",
    "LlmResponseEvent", "Message", "NO_RETRIES", "NotFound", "OutOfRange", "OutputEvent",
    "Page", "Pager", "PatchMode", "PeerKind", "PermissionDenied", "ResourceExhausted", "Retention",
    "RetryPolicy", "Rewound", "Role", "RpcError", "Session", "SessionChange", "SessionKey",
    "SessionStatus", "SessionView", "SharedState", "SharedStatePatch", "TokenUsage", "ToolCall",
    "UNSET", "Unauthenticated", "Unavailable", "WatchSessionResponse", "session_change",
]  # fmt: skip


def test_public_names_are_pinned() -> None:
    assert sorted(chatstore.__all__) == sorted(PUBLIC_NAMES)
    for name in chatstore.__all__:
        assert getattr(chatstore, name) is not None


def _public_methods(cls: type) -> dict[str, list[str]]:
    return {
        name: list(inspect.signature(member).parameters)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_both_clients_have_the_same_methods_and_parameters() -> None:
    assert _public_methods(ChatStoreClient) == _public_methods(AsyncChatStoreClient)


def user(text: str) -> Message:
    return Message(role=Role.ROLE_USER, content=text)


TOURED: set[str] = set()


async def tour_async(client: AsyncChatStoreClient) -> None:
    """Every method of the async client, once, checking what comes back."""
    session = await client.create_session(title="tour", agent_id="bot")
    assert (await client.get_session(session.id)).title == "tour"
    keyed = await client.get_or_create_session(key("tour"), agent_id="bot")
    assert keyed.created
    assert len([s async for s in client.list_sessions(page_size=1)]) == 2
    assert (await client.update_session(session.id, title="toured")).title == "toured"
    appended = await client.append_messages(session.id, [user("a"), user("b"), user("c")])
    assert [m.seq for m in appended.messages] == [1, 2, 3]
    assert [m.seq async for m in client.list_messages(session.id, page_size=2)] == [1, 2, 3]
    assert (await client.get_message(session.id, seq=2)).content == "b"
    assert len((await client.get_context_window(session.id, max_messages=2)).messages) == 2
    assert (await client.compact_session(session.id, through_seq=1, recap="a")).recap == "a"
    events = await client.append_events(session.id, [Event(input=InputEvent(content="x"))])
    assert events.events[0].seq == 1
    assert [e.seq async for e in client.list_events(session.id)] == [1]
    checkpoint = await client.create_checkpoint(session.id, label="here")
    assert [c.id async for c in client.list_checkpoints(session.id)] == [checkpoint.id]
    assert (await client.get_checkpoint(session.id, checkpoint.id)).label == "here"
    fork = await client.fork_session(session.id, checkpoint_id=checkpoint.id)
    assert fork.last_seq == 3
    write = CheckpointWrite(task_id="t", index=0, channel="c", payload=b"v")
    assert await client.put_checkpoint_writes(session.id, checkpoint.id, [write]) == 1
    second = await client.create_checkpoint(session.id, label="later")
    assert await client.prune_checkpoints(session.id) == 1
    await client.delete_checkpoint(session.id, second.id)
    state = await client.update_shared_state("apps/tour/state", {"n": 1})
    assert (await client.get_shared_state("apps/tour/state")).etag == state.etag
    rewound = await client.rewind_session(fork.id, remove_count=1)
    assert [m.seq for m in rewound.removed_messages] == [3]
    stream = client.watch(session.id, from_seq=2)
    assert (await stream.__anext__()).message.seq == 3
    await stream.aclose()  # type: ignore[attr-defined]
    assert (await client.pin_session(session.id)).HasField("pin_time")
    assert not (await client.unpin_session(session.id)).HasField("pin_time")
    assert (await client.archive_session(session.id)).HasField("archive_time")
    assert not (await client.unarchive_session(session.id)).HasField("archive_time")
    assert (await client.delete_session(session.id)).HasField("delete_time")
    assert not (await client.undelete_session(session.id)).HasField("delete_time")
    full = await client.get_session(session.id, view=SessionView.SESSION_VIEW_FULL)
    assert len(full.recent_messages) == 3
    await client.delete_session(fork.id, purge=True)
    with pytest.raises(NotFound):
        await client.get_session(fork.id)


def tour_sync(client: ChatStoreClient) -> None:
    """The same tour, blocking."""
    session = client.create_session(title="tour", agent_id="bot")
    assert client.get_session(session.id).title == "tour"
    assert client.get_or_create_session(key("tour"), agent_id="bot").created
    assert len(list(client.list_sessions(page_size=1))) == 2
    assert client.update_session(session.id, title="toured").title == "toured"
    appended = client.append_messages(session.id, [user("a"), user("b"), user("c")])
    assert [m.seq for m in appended.messages] == [1, 2, 3]
    assert [m.seq for m in client.list_messages(session.id, page_size=2)] == [1, 2, 3]
    assert [len(p.items) for p in client.list_messages(session.id, page_size=2).pages()] == [2, 1]
    assert client.get_message(session.id, seq=2).content == "b"
    assert len(client.get_context_window(session.id, max_messages=2).messages) == 2
    assert client.compact_session(session.id, through_seq=1, recap="a").recap == "a"
    assert (
        client.append_events(session.id, [Event(input=InputEvent(content="x"))]).events[0].seq == 1
    )
    assert [e.seq for e in client.list_events(session.id)] == [1]
    checkpoint = client.create_checkpoint(session.id, label="here")
    assert [c.id for c in client.list_checkpoints(session.id)] == [checkpoint.id]
    assert client.get_checkpoint(session.id, checkpoint.id).label == "here"
    fork = client.fork_session(session.id, checkpoint_id=checkpoint.id)
    assert fork.last_seq == 3
    write = CheckpointWrite(task_id="t", index=0, channel="c", payload=b"v")
    assert client.put_checkpoint_writes(session.id, checkpoint.id, [write]) == 1
    second = client.create_checkpoint(session.id, label="later")
    assert client.prune_checkpoints(session.id) == 1
    client.delete_checkpoint(session.id, second.id)
    state = client.update_shared_state("apps/tour/state", {"n": 1})
    assert client.get_shared_state("apps/tour/state").etag == state.etag
    assert [m.seq for m in client.rewind_session(fork.id, remove_count=1).removed_messages] == [3]
    stream = client.watch(session.id, from_seq=2)
    assert next(stream).message.seq == 3
    stream.close()  # type: ignore[attr-defined]
    assert client.pin_session(session.id).HasField("pin_time")
    assert not client.unpin_session(session.id).HasField("pin_time")
    assert client.archive_session(session.id).HasField("archive_time")
    assert not client.unarchive_session(session.id).HasField("archive_time")
    assert client.delete_session(session.id).HasField("delete_time")
    assert not client.undelete_session(session.id).HasField("delete_time")
    assert (
        len(client.get_session(session.id, view=SessionView.SESSION_VIEW_FULL).recent_messages) == 3
    )
    client.delete_session(fork.id, purge=True)
    with pytest.raises(NotFound):
        client.get_session(fork.id)


def test_the_tours_call_every_method() -> None:
    called = set(re.findall(r"client\.(\w+)\(", inspect.getsource(tour_async)))
    assert called >= set(_public_methods(AsyncChatStoreClient)) - {"close"}
    called = set(re.findall(r"client\.(\w+)\(", inspect.getsource(tour_sync)))
    assert called >= set(_public_methods(ChatStoreClient)) - {"close"}


async def test_every_async_method_against_the_server(target: str) -> None:
    async with AsyncChatStoreClient(target, tenant_id=TENANT) as client:
        await tour_async(client)


async def test_every_sync_method_against_the_server(target: str) -> None:
    def run() -> None:
        with ChatStoreClient(target, tenant_id=TENANT) as client:
            tour_sync(client)

    await asyncio.to_thread(run)


async def test_idempotent_calls_are_retried_on_unavailable(target: str) -> None:
    proxy = await FlakyProxy(target, failures=2).start()
    try:
        async with AsyncChatStoreClient(target, tenant_id=TENANT) as direct:
            session = await direct.create_session()
            async with AsyncChatStoreClient(f"127.0.0.1:{proxy.port}", tenant_id=TENANT) as client:
                fetched = await client.get_session(session.id)
                appended = await client.append_messages(session.id, [user("exactly once")])
                with pytest.raises(Unavailable):
                    await client.create_session()  # not idempotent: no retry
            stored = [m async for m in direct.list_messages(session.id)]
    finally:
        await proxy.stop()

    assert fetched.id == session.id
    assert proxy.attempts["GetSession"] == 3
    assert proxy.attempts["AppendMessages"] == 3  # retried: it carries a request id
    assert [m.content for m in stored] == ["exactly once"]
    assert appended.messages[0].seq == 1
    assert proxy.attempts["CreateSession"] == 1


async def test_the_sync_client_retries_the_same_way(target: str) -> None:
    proxy = await FlakyProxy(target, failures=1).start()

    def run() -> tuple[int, str]:
        with ChatStoreClient(f"127.0.0.1:{proxy.port}", tenant_id=TENANT) as client:
            listed = len(list(client.list_sessions()))
            with pytest.raises(Unavailable):
                client.create_session()
            return listed, client.create_session(title="second try").title

    try:
        listed, title = await asyncio.to_thread(run)
    finally:
        await proxy.stop()
    assert (listed, title) == (0, "second try")
    assert proxy.attempts["ListSessions"] == 2
    assert proxy.attempts["CreateSession"] == 2  # two calls, one attempt each


async def test_retries_stop_at_the_deadline(target: str) -> None:
    proxy = await FlakyProxy(target, failures=1_000).start()
    loop = asyncio.get_running_loop()
    try:
        async with AsyncChatStoreClient(
            f"127.0.0.1:{proxy.port}",
            tenant_id=TENANT,
            retry=chatstore.RetryPolicy(max_attempts=1_000, initial_backoff_seconds=0.05),
        ) as client:
            started = loop.time()
            with pytest.raises((Unavailable, chatstore.DeadlineExceeded)):
                await client.get_session(str(uuid.uuid4()), timeout=0.5)
            elapsed = loop.time() - started
    finally:
        await proxy.stop()
    assert proxy.attempts["GetSession"] > 1
    assert elapsed < 5


async def test_watch_reconnects_across_a_server_restart(database_url: str) -> None:
    port = free_port()
    settings = Settings(listen=f"127.0.0.1:{port}", database_url=database_url)
    server = await ChatStoreServer.start(settings)
    total = 120
    try:
        async with (
            AsyncChatStoreClient(f"127.0.0.1:{port}", tenant_id=TENANT) as writer,
            AsyncChatStoreClient(f"127.0.0.1:{port}", tenant_id=TENANT) as watcher,
        ):
            session = await writer.create_session()
            seen: list[int] = []

            async def follow() -> None:
                async for item in watcher.watch(session.id):
                    if item.HasField("message"):
                        seen.append(item.message.seq)
                        if len(seen) == total:
                            return

            following = asyncio.create_task(follow())
            for i in range(total):
                await writer.append_messages(session.id, [user(f"m{i}")])
                if i == total // 2:  # restart the server mid-stream
                    await server.stop(1)
                    server = await ChatStoreServer.start(settings)
            await asyncio.wait_for(following, 30)
    finally:
        await server.stop(None)

    assert seen == list(range(1, total + 1))


README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_examples_pass_mypy_strict(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    for index, block in enumerate(blocks):
        (tmp_path / f"example_{index}.py").write_text(block)

    out, err, status = mypy_api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".mypy"), str(tmp_path)]
    )

    assert status == 0, out + err


async def test_both_clients_take_their_target_and_tenant_from_the_environment(
    target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the `chatstore` command does: CHATSTORE_TARGET and CHATSTORE_TENANT.
    monkeypatch.setenv("CHATSTORE_TARGET", target)
    monkeypatch.setenv("CHATSTORE_TENANT", "from-env")

    async with AsyncChatStoreClient() as client:
        made = await client.create_session(title="async")

    def blocking() -> str:
        with ChatStoreClient() as client:
            return client.get_session(made.id).title

    assert await asyncio.to_thread(blocking) == "async"
    async with AsyncChatStoreClient(target, tenant_id=TENANT) as other:
        with pytest.raises(NotFound):  # it was made in the tenant the environment named
            await other.get_session(made.id)
