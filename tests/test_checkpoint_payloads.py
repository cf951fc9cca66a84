"""Checkpoints that hold a framework's saved state (issue 20): the caller's ids, a
namespace, a parent, an opaque payload kept byte for byte, JSON metadata to filter on,
the writes of tasks stored against a checkpoint, and deletion and pruning. What a
LangGraph checkpointer needs, without emulation."""

from __future__ import annotations

import os
import sqlite3

import pytest
from sqlalchemy import exc as sa_exc

from chatstore import (
    AlreadyExists,
    AsyncChatStoreClient,
    CheckpointWrite,
    InvalidArgument,
    Message,
    NotFound,
    Role,
)
from chatstore_server.store import (
    CheckpointRepository,
    CheckpointWriteRecord,
    Database,
    NewCheckpoint,
    NewSession,
    SessionRepository,
)
from chatstore_server.store.errors import UnavailableError, translated
from tests.conftest import TENANT, snapshot

BLOB = os.urandom(300_000) + b"\x00\xff"  # any bytes, larger than one default page


async def test_a_payload_comes_back_byte_for_byte(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()

    created = await client.create_checkpoint(
        session.id,
        checkpoint_id="1ef-a",
        namespace="inner:7",
        parent_id="1ef-0",
        payload=BLOB,
        payload_type="msgpack",
        checkpoint_metadata={"source": "loop", "step": 3, "ratio": 1.0},
    )
    got = await client.get_checkpoint(session.id, "1ef-a", namespace="inner:7")

    for checkpoint in (created, got):
        assert (checkpoint.id, checkpoint.namespace, checkpoint.parent_id) == (
            "1ef-a",
            "inner:7",
            "1ef-0",
        )
        assert checkpoint.payload == BLOB
        assert checkpoint.payload_type == "msgpack"
        assert checkpoint.metadata_json == '{"ratio":1.0,"source":"loop","step":3}'
    assert (await client.get_session(session.id)).checkpoint_count == 1


async def test_a_listing_leaves_payloads_out_unless_asked(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.create_checkpoint(session.id, checkpoint_id="c1", payload=b"state")
    await client.put_checkpoint_writes(
        session.id, "c1", [CheckpointWrite(task_id="t", index=0, channel="x", payload=b"w")]
    )

    [basic] = [c async for c in client.list_checkpoints(session.id)]
    [full] = [c async for c in client.list_checkpoints(session.id, full=True)]

    assert (basic.payload, list(basic.pending_writes)) == (b"", [])
    assert full.payload == b"state"
    assert [(w.task_id, w.payload) for w in full.pending_writes] == [("t", b"w")]


async def test_without_an_id_the_newest_of_the_namespace_is_got(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()
    for name in ("a", "b", "c"):
        await client.create_checkpoint(session.id, checkpoint_id=name, payload=name.encode())
    await client.create_checkpoint(session.id, checkpoint_id="other", namespace="sub")

    assert (await client.get_checkpoint(session.id)).id == "c"
    assert (await client.get_checkpoint(session.id, namespace="sub")).id == "other"
    with pytest.raises(NotFound):
        await client.get_checkpoint(session.id, namespace="none-here")
    with pytest.raises(NotFound):
        await client.get_checkpoint(session.id, "other")  # it is in "sub", not ""


async def test_an_id_is_taken_once_per_namespace_unless_replaced(
    client: AsyncChatStoreClient, database_url: str
) -> None:
    session = await client.create_session()
    first = await client.create_checkpoint(session.id, checkpoint_id="c", payload=b"one")
    await client.create_checkpoint(session.id, checkpoint_id="c", namespace="sub")
    before = await snapshot(database_url)

    with pytest.raises(AlreadyExists):
        await client.create_checkpoint(session.id, checkpoint_id="c", payload=b"two")
    assert await snapshot(database_url) == before

    replaced = await client.create_checkpoint(
        session.id, checkpoint_id="c", payload=b"two", replace=True
    )
    again = await client.create_checkpoint(
        session.id, checkpoint_id="c", payload=b"two", replace=True
    )

    assert (replaced.payload, again.payload) == (b"two", b"two")
    # Its create time, and so its place in listings, stays.
    assert replaced.create_time == again.create_time == first.create_time
    assert (await client.get_checkpoint(session.id, "c")).payload == b"two"
    assert (await client.get_session(session.id)).checkpoint_count == 2


async def test_listings_filter_by_metadata_namespace_and_age(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()
    steps = [
        ("c1", "", {"source": "input", "step": -1}),
        ("c2", "", {"source": "loop", "step": 0, "tags": ["x"]}),
        ("c3", "", {"source": "loop", "step": 1.0, "done": False}),
        ("c4", "sub", {"source": "loop", "step": 1}),
    ]
    for checkpoint_id, namespace, metadata in steps:
        await client.create_checkpoint(
            session.id,
            checkpoint_id=checkpoint_id,
            namespace=namespace,
            checkpoint_metadata=metadata,
        )

    async def ids(**kwargs: object) -> list[str]:
        return [c.id async for c in client.list_checkpoints(session.id, **kwargs)]  # type: ignore[arg-type]

    assert await ids() == ["c1", "c2", "c3", "c4"]
    assert await ids(namespace="") == ["c1", "c2", "c3"]
    assert await ids(namespace="sub") == ["c4"]
    assert await ids(metadata_filter={"source": "loop"}) == ["c2", "c3", "c4"]
    # Numbers compare by value: 1 matches 1.0.
    assert await ids(metadata_filter={"step": 1}) == ["c3", "c4"]
    assert await ids(metadata_filter={"source": "loop", "step": 0}) == ["c2"]
    assert await ids(metadata_filter={"done": False}) == ["c3"]
    assert await ids(metadata_filter={"tags": ["x"]}) == ["c2"]
    assert await ids(metadata_filter={"missing": None}) == []
    assert await ids(newest_first=True, namespace="") == ["c3", "c2", "c1"]
    assert await ids(before_checkpoint_id="c3", newest_first=True) == ["c2", "c1"]
    assert await ids(before_checkpoint_id="c3", page_size=1) == ["c1", "c2"]
    with pytest.raises(NotFound):
        await ids(before_checkpoint_id="nope")


async def test_writes_replace_those_of_the_same_task_and_index(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()
    await client.create_checkpoint(session.id, checkpoint_id="c")
    first = [
        CheckpointWrite(task_id="t2", index=0, channel="a", payload=b"1", task_path="p"),
        CheckpointWrite(task_id="t1", index=1, channel="b", payload=b"2"),
        CheckpointWrite(task_id="t1", index=0, channel="c", payload=b"3", payload_type="json"),
    ]

    assert await client.put_checkpoint_writes(session.id, "c", first) == 3
    assert (
        await client.put_checkpoint_writes(
            session.id, "c", [CheckpointWrite(task_id="t1", index=1, channel="b", payload=b"new")]
        )
        == 1
    )
    got = await client.get_checkpoint(session.id, "c")

    # In the order LangGraph's savers give them: task path, task id, index.
    assert [(w.task_id, w.index, w.channel, w.payload) for w in got.pending_writes] == [
        ("t1", 0, "c", b"3"),
        ("t1", 1, "b", b"new"),
        ("t2", 0, "a", b"1"),
    ]
    assert got.pending_writes[0].payload_type == "json"


async def test_writes_may_come_before_their_checkpoint(
    client: AsyncChatStoreClient, database_url: str
) -> None:
    # LangGraph stores a step's writes while the checkpoint is still being stored.
    session = await client.create_session()
    write = CheckpointWrite(task_id="t", index=0, channel="x", payload=b"early")

    assert await client.put_checkpoint_writes(session.id, "next", [write]) == 1
    with pytest.raises(NotFound):
        await client.get_checkpoint(session.id, "next")
    await client.create_checkpoint(session.id, checkpoint_id="next")

    got = await client.get_checkpoint(session.id, "next")
    assert [w.payload for w in got.pending_writes] == [b"early"]


async def test_bad_writes_are_refused(client: AsyncChatStoreClient, database_url: str) -> None:
    session = await client.create_session()
    write = CheckpointWrite(task_id="t", index=0, channel="x")
    before = await snapshot(database_url)

    with pytest.raises(NotFound):
        await client.put_checkpoint_writes("no-such-session", "c", [write])
    with pytest.raises(InvalidArgument) as caught:
        await client.put_checkpoint_writes(session.id, "c", [write, write], namespace="sub")

    assert [v.field for v in caught.value.field_violations] == ["writes[1]"]
    assert await snapshot(database_url) == before


async def test_delete_and_prune(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    for checkpoint_id, namespace in [("a", ""), ("b", ""), ("c", ""), ("x", "sub"), ("y", "sub")]:
        await client.create_checkpoint(session.id, checkpoint_id=checkpoint_id, namespace=namespace)
    await client.put_checkpoint_writes(
        session.id, "a", [CheckpointWrite(task_id="t", index=0, channel="x")]
    )

    await client.put_checkpoint_writes(
        session.id, "never", [CheckpointWrite(task_id="t", index=0, channel="x")]
    )
    await client.delete_checkpoint(session.id, "a")
    with pytest.raises(NotFound):
        await client.delete_checkpoint(session.id, "a")
    kept = await client.prune_checkpoints(session.id)  # the newest of each namespace stay
    left = [(c.namespace, c.id) async for c in client.list_checkpoints(session.id)]

    assert kept == 2
    assert left == [("", "c"), ("sub", "y")]
    assert (await client.get_session(session.id)).checkpoint_count == 2
    assert await client.prune_checkpoints(session.id, keep_latest=False) == 2
    assert [c async for c in client.list_checkpoints(session.id)] == []
    assert (await client.get_session(session.id)).checkpoint_count == 0
    # Their writes went with them, and those whose checkpoint never came.
    for checkpoint_id in ("a", "never"):
        await client.create_checkpoint(session.id, checkpoint_id=checkpoint_id)
        assert not (await client.get_checkpoint(session.id, checkpoint_id)).pending_writes


async def test_a_fork_starts_from_a_checkpoint_of_the_callers_id(
    client: AsyncChatStoreClient,
) -> None:
    session = await client.create_session()
    said = [Message(role=Role.ROLE_USER, content=str(n)) for n in range(4)]
    await client.append_messages(session.id, said[:2])
    await client.create_checkpoint(session.id, checkpoint_id="step-2", payload=b"s")
    await client.append_messages(session.id, said[2:])

    fork = await client.fork_session(session.id, checkpoint_id="step-2")

    assert fork.last_seq == 2
    assert fork.fork_source.checkpoint_id == "step-2"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"checkpoint_id": " padded"}, "checkpoint.id"),
        ({"checkpoint_id": "x" * 129}, "checkpoint.id"),
        ({"parent_id": "bad\nid"}, "checkpoint.parent_id"),
        ({"namespace": "n" * 129}, "checkpoint.namespace"),
        ({"checkpoint_metadata": "[1]"}, "checkpoint.metadata_json"),
        ({"replace": True}, "replace"),
        ({"payload_type": "t" * 129}, "checkpoint.payload_type"),
    ],
)
async def test_a_bad_checkpoint_is_refused_by_field(
    client: AsyncChatStoreClient, database_url: str, kwargs: dict[str, object], field: str
) -> None:
    session = await client.create_session()
    before = await snapshot(database_url)

    with pytest.raises(InvalidArgument) as caught:
        await client.create_checkpoint(session.id, **kwargs)  # type: ignore[arg-type]

    assert field in [v.field for v in caught.value.field_violations]
    assert await snapshot(database_url) == before


async def test_a_full_page_of_checkpoints_reads_with_their_writes(
    sqlite_database: Database,
) -> None:
    # 1,000 checkpoints' writes in one query: row values, not 1,000 ORs (past SQLite's
    # expression depth).
    sessions, repository = SessionRepository(sqlite_database), CheckpointRepository(sqlite_database)
    await sessions.create(TENANT, NewSession(), session_id="many")
    for n in range(1_000):
        await repository.create(TENANT, "many", NewCheckpoint(id=f"c{n:04}"))
    write = CheckpointWriteRecord(task_id="t", index=0, channel="x", payload=b"w")
    await repository.put_writes(TENANT, "many", "", "c0999", [write])

    page = await repository.list(TENANT, "many", limit=1_000, whole=True)

    assert len(page.items) == 1_000
    assert [w.payload for w in page.items[-1].pending_writes] == [b"w"]


def test_a_statement_sqlite_refuses_is_a_fault_not_an_outage() -> None:
    def operational(name: str) -> sa_exc.OperationalError:
        cause = sqlite3.OperationalError("refused")
        cause.sqlite_errorname = name
        return sa_exc.OperationalError("SELECT 1", {}, cause)

    assert isinstance(translated(operational("SQLITE_BUSY")), UnavailableError)
    assert isinstance(translated(operational("SQLITE_IOERR_WRITE")), UnavailableError)
    assert translated(operational("SQLITE_ERROR")) is None  # surfaces as INTERNAL
