"""chatstore on Citus: the tables are distributed by tenant_id and co-located, a tenant's
rows live on one worker, and the statements of the hot paths are routed to that worker
alone (a router plan: one task).

Every test marked postgres also runs on the Citus cluster (conftest's `citus`
parametrization); these check what only Citus has: where rows live and how
statements are planned.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from sqlalchemy.dialects import postgresql

from chatstore import AsyncChatStoreClient, CheckpointWrite, Event, InputEvent, Message, Role
from chatstore_server.config import Settings
from chatstore_server.server import ChatStoreServer
from chatstore_server.store.appends import (
    _RECORD_REQUEST,
    Precondition,
    request_values,
    reserve_params,
    reserve_statement,
)
from chatstore_server.store.context import NEWEST_FIRST
from chatstore_server.store.message_batch import MESSAGE_INSERT
from chatstore_server.store.messages import _list_statement
from chatstore_server.store.prepared import Prepared
from chatstore_server.store.schema import DISTRIBUTED_TABLES
from chatstore_server.store.scope import SESSION_BY_ID
from chatstore_server.store.session_list import SessionFilter, SessionOrder, list_query
from tests.conftest import citus_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.citus]


@pytest.fixture
async def coordinator() -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """The cluster's emptied database (its SQLAlchemy URL), and a connection to it."""
    url = await (await citus_cluster()).emptied()
    connection = await asyncpg.connect(url.replace("+asyncpg", ""), timeout=10)
    try:
        yield url, connection
    finally:
        await connection.close()


async def _worker_of(connection: asyncpg.Connection, table: str, tenant: str) -> int:
    """The port of the worker that holds `tenant`'s shard of `table`."""
    port: int = await connection.fetchval(
        "SELECT nodeport FROM citus_shards"
        " WHERE shardid = get_shard_id_for_distribution_column($1::regclass, $2::text)",
        table,
        tenant,
    )
    return port


async def _tenants_on_two_workers(connection: asyncpg.Connection) -> dict[int, str]:
    """Two tenant ids whose rows hash to shards on different workers, by worker port."""
    found: dict[int, str] = {}
    for index in range(100):
        tenant = f"tenant-{index}"
        found.setdefault(await _worker_of(connection, "sessions", tenant), tenant)
        if len(found) == 2:
            return found
    raise AssertionError("100 tenants all hashed to one worker")


async def test_every_table_is_distributed_by_tenant_and_co_located(
    coordinator: tuple[str, asyncpg.Connection],
) -> None:
    _, connection = coordinator
    rows = await connection.fetch(
        "SELECT logicalrelid::text AS name, column_to_column_name(logicalrelid, partkey)"
        " AS column, colocationid FROM pg_dist_partition"
    )

    by_table = {row["name"]: row for row in rows}
    assert set(by_table) == set(DISTRIBUTED_TABLES)
    assert {row["column"] for row in rows} == {"tenant_id"}
    assert len({row["colocationid"] for row in rows}) == 1


async def test_tenants_rows_live_on_their_own_worker(
    coordinator: tuple[str, asyncpg.Connection],
) -> None:
    url, connection = coordinator
    tenants = await _tenants_on_two_workers(connection)
    server = await ChatStoreServer.start(Settings(listen="127.0.0.1:0", database_url=url))
    try:
        async with AsyncChatStoreClient(f"127.0.0.1:{server.port}") as client:
            for tenant in tenants.values():
                session = await client.create_session(
                    tenant_id=tenant, session_id="shared-id", labels={"team": "x"}
                )
                await client.append_messages(
                    session.id,
                    [Message(role=Role.ROLE_USER, content=f"from {tenant}")],
                    tenant_id=tenant,
                    request_id="r1",
                )
                await client.append_events(
                    session.id, [Event(input=InputEvent(content="ran"))], tenant_id=tenant
                )
                checkpoint = await client.create_checkpoint(
                    session.id, tenant_id=tenant, payload=b"state"
                )
                await client.put_checkpoint_writes(
                    session.id,
                    checkpoint.id,
                    [CheckpointWrite(task_id="t1", index=0, channel="c", payload=b"v")],
                    tenant_id=tenant,
                )
                await client.update_shared_state("apps/a/state", {"k": 1}, tenant_id=tenant)
    finally:
        await server.stop(None)

    host = urlsplit(url).hostname or "127.0.0.1"
    for port, tenant in tenants.items():
        worker = await asyncpg.connect(host=host, port=port, user="postgres", database="postgres")
        try:
            for table in DISTRIBUTED_TABLES:
                # All of a tenant's rows sit in the shards of one worker (co-location).
                assert await _worker_of(connection, table, tenant) == port
                shard = await connection.fetchval(
                    "SELECT shard_name FROM citus_shards"
                    " WHERE shardid = get_shard_id_for_distribution_column($1::regclass, $2::text)",
                    table,
                    tenant,
                )
                held = await worker.fetch(f"SELECT DISTINCT tenant_id FROM {shard}")
                assert [row["tenant_id"] for row in held] == [tenant], table
        finally:
            await worker.close()


NOW = datetime(2026, 12, 5, tzinfo=UTC)
ROUTED: dict[str, tuple[Prepared, dict[str, Any]]] = {
    "GetSession": (SESSION_BY_ID, {"tenant_id": "acme", "session_id": "s1"}),
    "ListMessages": (
        _list_statement(
            descending=False,
            before=False,
            cursor=True,
            roles=False,
            start=False,
            end=False,
            exclude_compacted=True,
        ),
        {"tenant_id": "acme", "session_id": "s1", "after_seq": 0, "cursor": 10, "limit": 51},
    ),
    "WatchSession (replay)": (
        _list_statement(
            descending=False,
            before=False,
            cursor=True,
            roles=False,
            start=False,
            end=False,
            exclude_compacted=False,
        ),
        {"tenant_id": "acme", "session_id": "s1", "after_seq": 0, "cursor": 10, "limit": 51},
    ),
    "GetContextWindow": (
        NEWEST_FIRST,
        {
            "tenant_id": "acme",
            "session_id": "s1",
            "floor": 0,
            "compacted_through_seq": 0,
            "before": 100,
            "limit": 200,
        },
    ),
    "ListSessions": list_query(
        "acme", SessionFilter(labels={"team": "x"}), SessionOrder(), None, 51
    ),
}


@pytest.mark.parametrize("call", list(ROUTED))
async def test_a_one_tenant_read_is_routed_to_one_worker(
    coordinator: tuple[str, asyncpg.Connection], call: str
) -> None:
    _, connection = coordinator
    prepared, params = ROUTED[call]
    plan = prepared.plan(postgresql.asyncpg.dialect())  # type: ignore[no-untyped-call]
    assert plan is not None

    lines = await connection.fetch(f"EXPLAIN {plan.sql}", *plan.values(params))
    text = "\n".join(line[0] for line in lines)

    assert "Task Count: 1" in text, text
    assert text.count("Node: host=") == 1, text


def _append_statements() -> dict[str, tuple[Prepared, dict[str, Any]]]:
    """What an append runs on Citus (`appends.reserve`, the request id, the rows)."""
    reserved = reserve_params(
        "acme",
        "s1",
        1,
        NOW,
        Precondition(),
        None,
        {
            "preview": "hi",
            "added_bytes": 2,
            "added_input_tokens": 0,
            "added_output_tokens": 0,
            "ephemeral_expire_time": NOW,
        },
    )
    record = request_values("acme", "s1", "message", "r1", 1, 1, "f", NOW)
    row = {
        "tenant_id": "acme",
        "session_id": "s1",
        "seq": 1,
        "id": uuid.UUID(int=1),
        "role": "user",
        "token_count": None,
        "create_time": NOW,
        "tool_call_id": "",
        "size_bytes": 2,
        "body": b"",
        "token_estimate": 5,
    }
    return {
        "reserve the seqs": (reserve_statement("message", False, False, False), reserved),
        "record the request id": (_RECORD_REQUEST["postgresql"], record),
        "insert the messages": (MESSAGE_INSERT, row),
    }


@pytest.mark.parametrize("step", list(_append_statements()))
async def test_each_statement_of_an_append_is_routed_to_one_worker(
    coordinator: tuple[str, asyncpg.Connection], step: str
) -> None:
    _, connection = coordinator
    prepared, params = _append_statements()[step]
    plan = prepared.plan(postgresql.asyncpg.dialect())  # type: ignore[no-untyped-call]
    assert plan is not None

    lines = await connection.fetch(f"EXPLAIN {plan.sql}", *plan.values(params))
    text = "\n".join(line[0] for line in lines)

    assert "Task Count: 1" in text, text
    assert text.count("Node: host=") == 1, text
