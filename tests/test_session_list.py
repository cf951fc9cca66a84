"""ListSessions: every filter, every order, and keyset paging that neither repeats nor
skips, even while sessions are created between pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Connection

from chatstore import (
    AsyncChatStoreClient,
    Inclusion,
    InvalidArgument,
    Message,
    Retention,
    Role,
    SessionStatus,
)
from chatstore.v1 import ListSessionsRequest, TimeRange, session_service_pb2_grpc
from chatstore_server.store import (
    Database,
    NewSession,
    SessionFilter,
    SessionOrder,
    SessionRepository,
    upgrade,
)
from chatstore_server.store.session_list import list_query
from tests.conftest import TENANT, key, snapshot


async def ids(client: AsyncChatStoreClient, **filters: object) -> list[str]:
    return [s.id async for s in client.list_sessions(**filters)]  # type: ignore[arg-type]


async def test_filters_by_channel_and_peer(client: AsyncChatStoreClient) -> None:
    discord = await client.create_session(key=key("p1", channel="discord"))
    slack = await client.create_session(key=key("p2", channel="slack"))
    await client.create_session()

    assert await ids(client, channel="discord") == [discord.id]
    assert await ids(client, peer_id="p2") == [slack.id]
    assert await ids(client, account_id="bot-1", channel="slack") == [slack.id]


async def test_filters_by_any_of_several_statuses(client: AsyncChatStoreClient) -> None:
    active = await client.create_session()
    archived = await client.create_session()
    await client.archive_session(archived.id)

    assert await ids(client, statuses=[SessionStatus.SESSION_STATUS_ACTIVE]) == [active.id]
    both = await ids(
        client,
        statuses=[SessionStatus.SESSION_STATUS_ACTIVE, SessionStatus.SESSION_STATUS_ARCHIVED],
        archived=Inclusion.INCLUSION_INCLUDE,
    )
    assert sorted(both) == sorted([active.id, archived.id])


async def test_filters_by_retention(client: AsyncChatStoreClient) -> None:
    ephemeral = await client.create_session(retention=Retention.RETENTION_EPHEMERAL)
    saved = await client.create_session()

    assert await ids(client, retention=Retention.RETENTION_EPHEMERAL) == [ephemeral.id]
    assert await ids(client, retention=Retention.RETENTION_SAVED) == [saved.id]


async def test_label_filter_needs_every_pair(client: AsyncChatStoreClient) -> None:
    both = await client.create_session(labels={"team": "a", "tier": "gold"})
    await client.create_session(labels={"team": "a", "tier": "free"})
    await client.create_session(labels={"team": "b", "tier": "gold"})

    assert await ids(client, labels={"team": "a", "tier": "gold"}) == [both.id]
    assert len(await ids(client, labels={"team": "a"})) == 2


async def test_label_filter_follows_label_updates(client: AsyncChatStoreClient) -> None:
    session = await client.create_session(labels={"team": "a"})

    await client.update_session(session.id, labels={"team": "b"})

    assert await ids(client, labels={"team": "a"}) == []
    assert await ids(client, labels={"team": "b"}) == [session.id]


async def test_pinned_only(client: AsyncChatStoreClient) -> None:
    pinned = await client.create_session()
    await client.create_session()
    await client.pin_session(pinned.id)

    assert await ids(client, pinned_only=True) == [pinned.id]


@pytest.mark.parametrize("state", ["archived", "deleted"])
async def test_archived_and_deleted_are_excluded_included_or_only(
    client: AsyncChatStoreClient, state: str
) -> None:
    live = await client.create_session()
    hidden = await client.create_session()
    if state == "archived":
        await client.archive_session(hidden.id)
    else:
        await client.delete_session(hidden.id)

    assert await ids(client) == [live.id]
    assert await ids(client, **{state: Inclusion.INCLUSION_EXCLUDE}) == [live.id]
    assert sorted(await ids(client, **{state: Inclusion.INCLUSION_INCLUDE})) == sorted(
        [live.id, hidden.id]
    )
    assert await ids(client, **{state: Inclusion.INCLUSION_ONLY}) == [hidden.id]


async def test_time_ranges(client: AsyncChatStoreClient) -> None:
    first = await client.create_session()
    second = await client.create_session()
    split = second.create_time.ToDatetime(tzinfo=UTC)

    assert await ids(client, create_time_range=(None, split)) == [first.id]
    assert await ids(client, create_time_range=(split, None)) == [second.id]
    await client.update_session(first.id, title="touched")
    touched = (await client.get_session(first.id)).update_time.ToDatetime(tzinfo=UTC)
    assert await ids(client, update_time_range=(touched, touched + timedelta(seconds=1))) == [
        first.id
    ]


async def test_rows_carry_counters_and_preview(client: AsyncChatStoreClient) -> None:
    session = await client.create_session()
    await client.append_messages(session.id, [Message(role=Role.ROLE_USER, content="hello there")])

    (row,) = [s async for s in client.list_sessions()]

    assert (row.message_count, row.last_message_preview) == (1, "hello there")


ORDERS = [
    "",
    "update_time",
    "update_time desc",
    "create_time",
    "create_time desc",
    "title",
    "title desc",
]


@pytest.mark.parametrize("order_by", ORDERS)
@pytest.mark.parametrize("pinned_first", [False, True])
async def test_paging_never_repeats_or_skips_while_sessions_are_created(
    client: AsyncChatStoreClient, order_by: str, pinned_first: bool
) -> None:
    titles = ["delta", "alpha", "echo", "bravo", "charlie"] * 5  # duplicate titles: ties
    existing = []
    for index, title in enumerate(titles):
        session = await client.create_session(title=title, labels={"set": "x"})
        if index % 7 == 0:
            session = await client.pin_session(session.id)
        existing.append(session)
    await client.create_session(title="not in the filter")

    seen: list[str] = []
    pages = client.list_sessions(
        labels={"set": "x"}, order_by=order_by, pinned_first=pinned_first, page_size=5
    ).pages()
    async for page in pages:
        seen += [s.id for s in page.items]
        # Writers keep going between pages: new sessions must not disturb the walk.
        await client.create_session(title="bravo", labels={"set": "x"})

    assert len(seen) == len(set(seen)), "a session was listed twice"
    assert {s.id for s in existing} <= set(seen), "a session was skipped"
    assert len(seen) >= 25


@pytest.mark.parametrize("order_by", ORDERS)
async def test_order_is_total_and_as_asked(client: AsyncChatStoreClient, order_by: str) -> None:
    for title in ["b", "a", "c", "a"]:
        await client.create_session(title=title)

    listed = [s async for s in client.list_sessions(order_by=order_by, page_size=1)]

    field, _, direction = (order_by or "update_time desc").partition(" ")
    keys = [
        (getattr(s, field) if field == "title" else getattr(s, field).ToDatetime(), s.id)
        for s in listed
    ]
    assert keys == sorted(keys, reverse=direction == "desc")


async def test_pinned_first_puts_pinned_sessions_ahead(client: AsyncChatStoreClient) -> None:
    old = await client.create_session(title="old")
    await client.create_session(title="new")
    await client.pin_session(old.id)
    await client.create_session(title="newest")

    listed = [s.title async for s in client.list_sessions(pinned_first=True, page_size=1)]

    assert listed == ["old", "newest", "new"]


def _ts(year: int, month: int, day: int) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(datetime(year, month, day, tzinfo=UTC))
    return result


BAD_LISTS = {
    "unknown status": (ListSessionsRequest(statuses=[99]), "statuses[0]"),  # type: ignore[list-item]
    "unspecified status": (ListSessionsRequest(statuses=[0]), "statuses[0]"),  # type: ignore[list-item]
    "unknown retention": (ListSessionsRequest(retention=7), "retention"),  # type: ignore[arg-type]
    "unknown archived inclusion": (ListSessionsRequest(archived=9), "archived"),  # type: ignore[arg-type]
    "empty label key": (ListSessionsRequest(labels={"": "x"}), "labels"),
    "label key too long": (ListSessionsRequest(labels={"k" * 64: "x"}), "labels"),
    "bad order": (ListSessionsRequest(order_by="message_count desc"), "order_by"),
    "malformed page token": (ListSessionsRequest(page_token="!!"), "page_token"),
    "range start after end": (
        ListSessionsRequest(
            create_time_range=TimeRange(start_time=_ts(2025, 1, 2), end_time=_ts(2025, 1, 1))
        ),
        "create_time_range",
    ),
}


@pytest.mark.parametrize("case", list(BAD_LISTS))
async def test_bad_list_request_is_invalid_argument(
    stub: session_service_pb2_grpc.SessionServiceAsyncStub, database_url: str, case: str
) -> None:
    request, field = BAD_LISTS[case]
    request.tenant_id = TENANT
    before = await snapshot(database_url)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListSessions(request)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")
    assert await snapshot(database_url) == before


async def test_page_token_reused_with_another_order_is_invalid(
    client: AsyncChatStoreClient,
) -> None:
    for _ in range(3):
        await client.create_session()
    page = await anext(client.list_sessions(page_size=1).pages())

    with pytest.raises(InvalidArgument):
        await anext(
            client.list_sessions(order_by="create_time", page_token=page.next_page_token).pages()
        )


def _plan(connection: Connection, statement: Any, params: dict[str, Any]) -> str:
    """The planner's plan for `statement`, as text (sequential scans ruled out on
    PostgreSQL, whose planner would rather scan a table this small)."""
    compiled = statement.compile(dialect=connection.dialect)
    values = compiled.construct_params(params)
    order = compiled.positiontup or []
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET enable_seqscan = off")
        explain = "EXPLAIN "
    else:
        explain = "EXPLAIN QUERY PLAN "
    rows = connection.exec_driver_sql(explain + compiled.string, tuple(values[k] for k in order))
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize(
    ("where", "index"),
    [
        (SessionFilter(agent_id="planner"), "ix_sessions_tenant_id_agent_id_update_time_id"),
        (SessionFilter(channel="slack"), "ix_sessions_tenant_id_key_channel_update_time_id"),
        (SessionFilter(peer_id="p1"), "ix_sessions_tenant_id_key_peer_id_update_time_id"),
    ],
)
async def test_a_filtered_list_reads_the_filters_partial_index(
    database_url: str, where: SessionFilter, index: str
) -> None:
    """Those indexes hold only the sessions that have the value (migration 0005): the
    planners must still see that the filter's rows are all in them."""
    database = Database.from_url(database_url)
    try:
        await upgrade(database)
        query, params = list_query(TENANT, where, SessionOrder(), None, 10)
        async with database.read() as conn:
            plan = await conn.run_sync(_plan, query.statement, params)
    finally:
        await database.dispose()

    assert index in plan


async def test_an_empty_agent_filter_matches_every_session(database_url: str) -> None:
    database = Database.from_url(database_url)
    try:
        await upgrade(database)
        repository = SessionRepository(database)
        made = {(await repository.create(TENANT, NewSession(agent_id=a))).id for a in ("", "x")}
        page = await repository.list(TENANT, where=SessionFilter(agent_id=""), limit=10)
    finally:
        await database.dispose()

    assert {s.id for s in page.items} == made
