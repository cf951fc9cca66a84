"""WatchSession: replay then live, resume without gaps or duplicates, session changes,
and a slow reader cut off with RESOURCE_EXHAUSTED instead of unbounded buffering."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest

from chatstore import (
    AsyncChatStoreClient,
    InvalidArgument,
    Message,
    NotFound,
    ResourceExhausted,
    Role,
    Unavailable,
    WatchSessionResponse,
)
from chatstore.v1 import WatchSessionRequest, session_service_pb2_grpc
from chatstore_server.config import Settings
from chatstore_server.server import ChatStoreServer
from tests.conftest import TENANT


def user(text: str) -> Message:
    return Message(role=Role.ROLE_USER, content=text)


async def take(
    stream: AsyncIterator[WatchSessionResponse], count: int
) -> list[WatchSessionResponse]:
    items = []
    async for item in stream:
        items.append(item)
        if len(items) == count:
            break
    return items


async def test_replays_then_follows(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [user("old 1"), user("old 2")])
    stream = client.watch(session.id)

    replayed = await asyncio.wait_for(take(stream, 2), 10)
    await client.append_messages(session.id, [user("new 3")])
    live = await asyncio.wait_for(take(stream, 1), 10)
    await stream.aclose()  # type: ignore[attr-defined]

    assert [r.message.content for r in replayed] == ["old 1", "old 2"]
    assert [(r.message.seq, r.message.content) for r in live] == [(3, "new 3")]


async def test_from_seq_skips_what_the_client_has(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [user(f"m{i}") for i in range(1, 6)])

    stream = client.watch(session.id, from_seq=3)
    got = await asyncio.wait_for(take(stream, 2), 10)
    await stream.aclose()  # type: ignore[attr-defined]

    assert [r.message.seq for r in got] == [4, 5]


async def test_resume_after_disconnect_sees_every_seq_exactly_once(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()
    total = 300
    writing_done = asyncio.Event()

    async def writer() -> None:
        for i in range(total):
            await client.append_messages(session.id, [user(f"m{i}")])
            if i % 7 == 0:
                await asyncio.sleep(0)
        writing_done.set()

    seen: list[int] = []
    task = asyncio.create_task(writer())
    while len(seen) < total:
        stream = client.watch(session.id, from_seq=seen[-1] if seen else 0)
        # Read a few, then drop the connection, while the writer keeps going.
        got = await asyncio.wait_for(take(stream, min(23, total - len(seen))), 30)
        await stream.aclose()  # type: ignore[attr-defined]
        seen += [r.message.seq for r in got if r.HasField("message")]
    await task

    assert seen == list(range(1, total + 1))


async def test_session_changes_are_streamed(client: AsyncChatStoreClient) -> None:
    session = await client.create_session(title="before")
    stream = client.watch(session.id)
    reader = asyncio.create_task(asyncio.wait_for(take(stream, 4), 10))
    await asyncio.sleep(0.1)  # let the watch subscribe

    await client.update_session(session.id, title="after")
    await client.append_messages(session.id, [user("hi"), user("there")])
    await client.compact_session(session.id, through_seq=1, recap="hi")
    got = await reader
    await stream.aclose()  # type: ignore[attr-defined]

    kinds = [r.WhichOneof("change") for r in got]
    assert kinds == ["session", "message", "message", "session"]
    assert got[0].session.title == "after"
    assert got[3].session.compacted_through_seq == 1


async def test_a_purged_session_ends_the_stream_with_not_found(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()
    stream = client.watch(session.id)

    async def read_all() -> list[WatchSessionResponse]:
        return [item async for item in stream]

    reader = asyncio.create_task(asyncio.wait_for(read_all(), 10))
    await asyncio.sleep(0.1)
    await client.delete_session(session.id, purge=True)

    with pytest.raises(NotFound):
        await reader


async def test_watching_an_unknown_session_is_not_found(client: AsyncChatStoreClient) -> None:
    with pytest.raises(NotFound):
        await anext(client.watch("00000000-0000-4000-8000-000000000000"))


async def test_from_seq_beyond_the_newest_message_is_invalid(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [user("only one")])

    with pytest.raises(InvalidArgument) as caught:
        await anext(client.watch(session.id, from_seq=2))

    assert [v.field for v in caught.value.field_violations] == ["from_seq"]


async def test_negative_from_seq_is_invalid(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    with pytest.raises(InvalidArgument) as caught:
        await anext(client.watch(session.id, from_seq=-1))

    assert [v.field for v in caught.value.field_violations] == ["from_seq"]


async def test_a_slow_reader_is_cut_off_not_buffered(database_url: str) -> None:
    settings = Settings(listen="127.0.0.1:0", database_url=database_url, watch_buffer_changes=16)
    server = await ChatStoreServer.start(settings)
    appended = 600
    try:
        async with AsyncChatStoreClient(f"127.0.0.1:{server.port}", tenant_id=TENANT) as client:
            session = await client.create_session()
            stream = client.watch(session.id, reconnect=False)
            await client.append_messages(session.id, [user("first")])
            await asyncio.wait_for(take(stream, 1), 10)  # subscribed and reading...
            # ...then the reader stops reading while the writer goes on.
            for i in range(appended):
                await client.append_messages(session.id, [user(f"{i:04} " + "x" * 20_000)])

            received: list[WatchSessionResponse] = []

            async def drain() -> None:
                async for item in stream:
                    received.append(item)

            with pytest.raises(ResourceExhausted) as caught:
                await drain()
    finally:
        await server.stop(None)

    assert caught.value.reason == "WATCH_TOO_SLOW"
    assert int(caught.value.metadata["last_seq"]) == len(received) + 1
    assert len(received) < appended  # the server buffered a bounded amount, not everything


async def test_a_slow_reader_of_small_messages_is_cut_off_at_the_buffer_bound(
    database_url: str,
) -> None:
    # The bound counts the changes the server holds for a watcher beyond what the
    # connection has taken: a client's gRPC library takes as much as its flow-control
    # window lets in, which BDP probing grows to megabytes. A reader that keeps its
    # window at HTTP/2's 64 KiB (no BDP probing) shows the server's own bound.
    settings = Settings(listen="127.0.0.1:0", database_url=database_url, watch_buffer_changes=8)
    server = await ChatStoreServer.start(settings)
    appended = 2_000
    try:
        target = f"127.0.0.1:{server.port}"
        async with (
            AsyncChatStoreClient(target, tenant_id=TENANT) as writer,
            grpc.aio.insecure_channel(target, options=[("grpc.http2.bdp_probe", 0)]) as channel,
        ):
            session = await writer.create_session()
            call = session_service_pb2_grpc.SessionServiceStub(channel).WatchSession(
                WatchSessionRequest(tenant_id=TENANT, session_id=session.id)
            )
            await call.initial_metadata()  # subscribed; and now it reads nothing
            for index in range(appended):
                await writer.append_messages(session.id, [user(f"small {index}")])
            received: list[object] = []

            async def drain() -> None:
                async for item in call:
                    received.append(item)

            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await drain()
    finally:
        await server.stop(None)

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "from_seq=" in (caught.value.details() or "")
    # 64 KiB of window holds a few hundred of these; the server held 8 more at most.
    assert 0 < len(received) < appended // 2


async def test_shutdown_ends_watches_with_unavailable(database_url: str) -> None:
    settings = Settings(listen="127.0.0.1:0", database_url=database_url)
    server = await ChatStoreServer.start(settings)
    async with AsyncChatStoreClient(f"127.0.0.1:{server.port}", tenant_id=TENANT) as client:
        session = await client.create_session()
        stream = client.watch(session.id, reconnect=False)

        async def read_all() -> None:
            async for _ in stream:
                pass

        reader = asyncio.create_task(read_all())
        await asyncio.sleep(0.1)
        await server.stop(5)
        with pytest.raises(Unavailable):
            await asyncio.wait_for(reader, 10)
    with contextlib.suppress(Exception):
        await server.stop(None)


async def test_an_idle_watch_is_connected_before_any_message(
    client: AsyncChatStoreClient,
    stub: session_service_pb2_grpc.SessionServiceAsyncStub,
) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [user("already seen")])
    call = stub.WatchSession(
        WatchSessionRequest(tenant_id=TENANT, session_id=session.id, from_seq=1)
    )
    try:
        # Nothing to replay and nothing new: the stream still says it is open.
        metadata = await asyncio.wait_for(call.initial_metadata(), 5)
        assert metadata is not None
        assert not call.done()
    finally:
        call.cancel()
