"""Several server processes on one PostgreSQL database, and database outages.

These run real `chatstore-server` processes (or an in-process server behind a TCP
proxy that the test cuts), talking to the real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import collections
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chatstore import NO_RETRIES, AsyncChatStoreClient, Message, Role, RpcError, Unavailable
from chatstore_server.config import Settings
from chatstore_server.server import ChatStoreServer
from chatstore_server.store import (
    Database,
    NewSession,
    SessionRecord,
    SessionRepository,
    UnavailableError,
)
from chatstore_server.store.database import PING_AFTER_IDLE_SECONDS
from chatstore_server.store.scope import read_session
from tests.conftest import (
    TENANT,
    _postgres_database,
    _postgres_template,
    citus_cluster,
    key,
)
from tests.processes import ServerProcess, free_port
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["postgres", pytest.param("citus", marks=pytest.mark.citus)])
async def pg_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A PostgreSQL database of the test's own, or the Citus cluster's, emptied (these
    tests need a server that several processes share)."""
    if request.param == "citus":
        yield await (await citus_cluster()).emptied()
        return
    async for url in _postgres_database(await _postgres_template()):
        yield url


@pytest.fixture
async def two_servers(pg_url: str) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """Two independent server processes on one database."""
    first = await ServerProcess.start("--listen", "127.0.0.1:0", "--database-url", pg_url)
    try:
        second = await ServerProcess.start("--listen", "127.0.0.1:0", "--database-url", pg_url)
    except BaseException:
        await first.stop()
        raise
    yield first, second
    assert await first.stop() == 0, "".join(first.log)
    assert await second.stop() == 0, "".join(second.log)


def user(text: str) -> Message:
    return Message(role=Role.ROLE_USER, content=text)


async def test_two_processes_keep_shared_sessions_gap_free(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_servers
    async with (
        AsyncChatStoreClient(a.target, tenant_id=TENANT) as on_a,
        AsyncChatStoreClient(b.target, tenant_id=TENANT) as on_b,
    ):
        sessions = [(await on_a.create_session(title=f"s{i}")).id for i in range(4)]
        acknowledged: dict[str, list[str]] = collections.defaultdict(list)

        async def client(index: int) -> None:
            via = on_a if index % 2 else on_b
            for turn in range(15):
                session_id = sessions[(index + turn) % 4]
                text = f"c{index}-t{turn}"
                await via.append_messages(session_id, [user(text)])
                acknowledged[session_id].append(text)

        await asyncio.gather(*(client(i) for i in range(16)))

        for session_id in sessions:
            stored = [m async for m in on_b.list_messages(session_id, page_size=1000)]
            count = len(acknowledged[session_id])
            assert [m.seq for m in stored] == list(range(1, count + 1))
            assert sorted(m.content for m in stored) == sorted(acknowledged[session_id])
            assert (await on_a.get_session(session_id)).message_count == count
    assert sum(len(v) for v in acknowledged.values()) == 16 * 15


async def test_get_or_create_through_both_processes_makes_one_session(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_servers
    async with (
        AsyncChatStoreClient(a.target, tenant_id=TENANT) as on_a,
        AsyncChatStoreClient(b.target, tenant_id=TENANT) as on_b,
    ):
        results = await asyncio.gather(
            *(
                (on_a if i % 2 else on_b).get_or_create_session(key("race"), agent_id="bot")
                for i in range(20)
            )
        )

    assert len({r.session.id for r in results}) == 1
    assert sum(r.created for r in results) == 1


async def test_a_watcher_on_one_process_sees_writes_through_the_other(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_servers
    async with (
        AsyncChatStoreClient(a.target, tenant_id=TENANT) as on_a,
        AsyncChatStoreClient(b.target, tenant_id=TENANT) as on_b,
    ):
        session = await on_b.create_session(title="before")
        await on_b.append_messages(session.id, [user("stored before watching")])
        stream = on_a.watch(session.id)
        first = await asyncio.wait_for(anext(stream), 10)

        for batch in range(20):
            await on_b.append_messages(session.id, [user(f"b{batch}-{i}") for i in range(5)])
        await on_b.update_session(session.id, title="after")

        seen: list[int] = [first.message.seq]
        titles: list[str] = []
        async with asyncio.timeout(20):
            async for item in stream:
                if item.HasField("message"):
                    seen.append(item.message.seq)
                else:
                    titles.append(item.session.title)
                if len(seen) == 101 and titles:
                    break
        await stream.aclose()  # type: ignore[attr-defined]

    assert seen == list(range(1, 102))
    assert titles == ["after"]


async def test_a_rewind_through_one_process_reaches_a_watcher_on_the_other(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_servers
    async with (
        AsyncChatStoreClient(a.target, tenant_id=TENANT) as on_a,
        AsyncChatStoreClient(b.target, tenant_id=TENANT) as on_b,
    ):
        session = await on_b.create_session()
        await on_b.append_messages(session.id, [user(str(n)) for n in range(3)])
        stream = on_a.watch(session.id, from_seq=3)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.5)  # subscribed on a

        await on_b.rewind_session(session.id, to_seq=1)
        rewound = await asyncio.wait_for(waiting, 10)
        await on_b.append_messages(session.id, [user("after")])
        following = await asyncio.wait_for(anext(stream), 10)
        await stream.aclose()  # type: ignore[attr-defined]

    assert rewound.WhichOneof("change") == "rewound"
    assert (rewound.rewound.to_seq, rewound.rewound.session.message_count) == (1, 1)
    assert (following.message.seq, following.message.content) == (4, "after")


async def test_workers_share_one_port(pg_url: str) -> None:
    port = free_port()
    supervisor = await ServerProcess.start(
        "--listen", f"127.0.0.1:{port}", "--database-url", pg_url, "--workers", "2"
    )
    try:
        await supervisor.wait_for_log("serving on", count=2)
        pid = supervisor.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        worker_pids = [
            child
            for child in children
            if "spawn_main" in Path(f"/proc/{child}/cmdline").read_text().replace("\0", " ")
        ]
        assert len(worker_pids) == 2
        for index in range(6):  # fresh connections, spread by the kernel
            async with AsyncChatStoreClient(f"127.0.0.1:{port}", tenant_id=TENANT) as client:
                session = await client.create_session(title=f"via connection {index}")
                assert (await client.get_session(session.id)).title == f"via connection {index}"
    finally:
        code = await supervisor.stop()
    assert code == 0, "".join(supervisor.log)
    for child in worker_pids:
        assert not Path(f"/proc/{child}").exists(), f"worker {child} outlived the supervisor"


async def test_several_workers_refuse_sqlite(tmp_path: object) -> None:
    with pytest.raises(RuntimeError, match="several workers need PostgreSQL"):
        await ServerProcess.start(
            "--listen", f"127.0.0.1:{free_port()}", "--workers", "2",
            "--database-url", f"sqlite+aiosqlite:///{tmp_path}/x.db",
        )  # fmt: skip


def _through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    netloc = (
        f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else f"127.0.0.1:{proxy.port}"
    )
    return urlunsplit(parts._replace(netloc=netloc))


async def _health(target: str) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="chatstore.v1.SessionService"), timeout=5
        )
        status: int = response.status
        return status


async def test_database_outage_fails_fast_then_recovers_without_loss(pg_url: str) -> None:
    upstream = urlsplit(pg_url)
    proxy = await TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 5432).start()
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=_through(proxy, pg_url),
        health_check_interval_seconds=0.2,
        db_connect_timeout_seconds=1,
    )
    server = await ChatStoreServer.start(settings)
    target = f"127.0.0.1:{server.port}"
    acknowledged: list[str] = []
    failures: list[RpcError] = []
    stop_load = asyncio.Event()
    try:
        # No client retries: this is about what the server answers during the outage.
        async with AsyncChatStoreClient(
            target, tenant_id=TENANT, timeout=5, retry=NO_RETRIES
        ) as client:
            session = await client.create_session(title="survives")

            async def load() -> None:
                turn = 0
                while not stop_load.is_set():
                    text = f"m{turn}"
                    turn += 1
                    try:
                        await client.append_messages(session.id, [user(text)])
                        acknowledged.append(text)
                    except RpcError as error:
                        failures.append(error)
                        await asyncio.sleep(0.05)

            writer = asyncio.create_task(load())
            while len(acknowledged) < 20:
                await asyncio.sleep(0.05)

            await proxy.cut()
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(Unavailable):
                await client.get_session(session.id)
            failed_after = loop.time() - started
            async with asyncio.timeout(15):
                while await _health(target) != health_pb2.HealthCheckResponse.NOT_SERVING:
                    await asyncio.sleep(0.1)

            await proxy.restore()
            async with asyncio.timeout(30):
                while await _health(target) != health_pb2.HealthCheckResponse.SERVING:
                    await asyncio.sleep(0.1)
                while True:
                    try:
                        await client.get_session(session.id)
                        break
                    except Unavailable:
                        await asyncio.sleep(0.1)
            count_at_recovery = len(acknowledged)
            async with asyncio.timeout(15):
                while len(acknowledged) < count_at_recovery + 20:  # writing works again
                    await asyncio.sleep(0.05)
            stop_load.set()
            await writer

            stored = [m.content async for m in client.list_messages(session.id, page_size=1000)]
    finally:
        stop_load.set()
        await server.stop(None)
        await proxy.close()

    assert failed_after < 5, "the call hung until its deadline instead of failing fast"
    assert failures, "the outage should have failed some appends"
    assert {type(f) for f in failures} == {Unavailable}, [
        f"{f.code}: {f.message}" for f in failures
    ]
    for text in acknowledged:
        assert stored.count(text) == 1, f"acknowledged {text} is missing or duplicated"


async def _kill_connections(pg_url: str) -> int:
    """Terminate every client connection to the test's database (as a restart would),
    on the server that holds it (a Citus coordinator's own daemons are left); how many."""
    admin = await asyncpg.connect(pg_url.replace("+asyncpg", ""), timeout=5)
    try:
        killed: int = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'",
            urlsplit(pg_url).path.lstrip("/"),
        )
    finally:
        await admin.close()
    return killed


async def test_pooled_connections_killed_while_idle_are_replaced_unseen(pg_url: str) -> None:
    # PostgreSQL restarts, failovers and proxies' idle timeouts kill pooled connections
    # that the server believes open: one idle past PING_AFTER_IDLE_SECONDS is pinged
    # before use, so the caller never sees the dead one.
    server = await ChatStoreServer.start(Settings(listen="127.0.0.1:0", database_url=pg_url))
    try:
        async with AsyncChatStoreClient(
            f"127.0.0.1:{server.port}", tenant_id=TENANT, retry=NO_RETRIES
        ) as client:
            session = await client.create_session(title="kept")
            await asyncio.gather(*(client.get_session(session.id) for _ in range(8)))
            killed = await _kill_connections(pg_url)
            await asyncio.sleep(PING_AFTER_IDLE_SECONDS + 0.5)

            found = await asyncio.gather(*(client.get_session(session.id) for _ in range(8)))
    finally:
        await server.stop(None)

    assert killed >= 1
    assert {s.title for s in found} == {"kept"}


async def test_a_dead_connection_under_a_direct_read_is_replaced(pg_url: str) -> None:
    # Reads by id run on asyncpg's own pool, past SQLAlchemy (store/postgres.py): a
    # connection killed under it is replaced, not handed out again, whether the pool
    # notices before the read (the socket closed meanwhile) or the read fails on it.
    database = Database.from_url(pg_url, pool_size=1, max_overflow=0)
    try:
        created = await SessionRepository(database).create(TENANT, NewSession(title="kept"))
        async with database.read() as conn:
            assert await read_session(conn, TENANT, created.id) is not None
        killed = [await _kill_connections(pg_url)]
        await asyncio.sleep(0.2)  # the client side sees the socket close
        async with database.read() as conn:  # the one pooled connection was replaced
            noticed = await read_session(conn, TENANT, created.id)
        killed.append(await _kill_connections(pg_url))
        outcomes: list[SessionRecord | UnavailableError | None] = []
        for _ in range(2):  # at once: the first read may meet the dead connection
            try:
                async with database.read() as conn:
                    outcomes.append(await read_session(conn, TENANT, created.id))
            except UnavailableError as error:
                outcomes.append(error)
    finally:
        await database.dispose()
    assert min(killed) >= 1
    assert noticed is not None
    assert noticed.title == "kept"
    last = outcomes[-1]
    assert not isinstance(last, UnavailableError)
    assert last is not None
    assert last.title == "kept"


async def _exit_seconds(server: ServerProcess, limit: float) -> float:
    """How long the server took to exit (it is killed past `limit` seconds)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await asyncio.wait_for(server.process.wait(), limit)
    except TimeoutError:
        server.process.kill()
        await server.process.wait()
        return float("inf")
    return loop.time() - started


GRACE_SECONDS = 1.0
SHUTDOWN_BOUND_SECONDS = 6.0
"""What a shutdown may take beyond its grace period, whatever the database does
(`server.STOP_TASKS_SECONDS` and `Database.dispose`'s bound, plus slack)."""


@pytest.mark.parametrize("outage", ["frozen", "cut"])
async def test_shutdown_ends_in_time_whatever_the_database_does(pg_url: str, outage: str) -> None:
    upstream = urlsplit(pg_url)
    proxy = await TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 5432).start()
    server = await ServerProcess.start(
        "--listen", "127.0.0.1:0", "--database-url", _through(proxy, pg_url),
        "--shutdown-grace-seconds", str(GRACE_SECONDS),
    )  # fmt: skip
    try:
        async with AsyncChatStoreClient(server.target, tenant_id=TENANT) as client:
            await client.create_session(title="pooled connections are open")
        # The database stops answering (or its connections drop) just as SIGTERM comes:
        # the change-notification connection, the pool's connections and the sweeper's
        # all lose it at once.
        if outage == "frozen":
            proxy.freeze()
        else:
            await proxy.cut()
        server.process.send_signal(signal.SIGTERM)
        took = await _exit_seconds(server, 60)
    finally:
        await proxy.close()
    assert took < GRACE_SECONDS + SHUTDOWN_BOUND_SECONDS, "".join(server.log)
    assert server.process.returncode == 0


async def test_a_second_sigterm_exits_at_once(pg_url: str) -> None:
    upstream = urlsplit(pg_url)
    proxy = await TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 5432).start()
    server = await ServerProcess.start(
        "--listen", "127.0.0.1:0", "--database-url", _through(proxy, pg_url),
        "--shutdown-grace-seconds", "60",
    )  # fmt: skip
    try:
        async with AsyncChatStoreClient(server.target, tenant_id=TENANT, retry=NO_RETRIES) as c:
            session = await c.create_session()
            proxy.freeze()
            # A call stuck on the database: the grace period would wait a minute for it.
            stuck = asyncio.create_task(c.append_messages(session.id, [user("x")], timeout=90))
            await asyncio.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            await server.wait_for_log("shutting down", count=1)
            server.process.send_signal(signal.SIGTERM)
            took = await _exit_seconds(server, 30)
            stuck.cancel()
    finally:
        await proxy.close()
    assert took < 3, "".join(server.log)
    assert server.process.returncode == 128 + signal.SIGTERM
    assert any("second SIGTERM" in line for line in server.log)


async def test_only_the_workers_of_one_server_share_a_port(pg_url: str, tmp_path: Path) -> None:
    port = free_port()
    first = await ServerProcess.start(
        "--listen", f"127.0.0.1:{port}", "--database-url", pg_url, "--workers", "2"
    )
    try:
        await first.wait_for_log("serving on", count=2)
        async for other_url in _postgres_database(await _postgres_template()):
            # Another server, on another database, with workers of its own: its workers
            # would share the port (SO_REUSEPORT) and split the clients between the two.
            with pytest.raises(RuntimeError, match="port is in use by another process"):
                await ServerProcess.start(
                    "--listen", f"127.0.0.1:{port}", "--database-url", other_url,
                    "--workers", "2",
                )  # fmt: skip
            with pytest.raises(RuntimeError, match="port is in use by another process"):
                await ServerProcess.start(
                    "--listen", f"127.0.0.1:{port}",
                    "--database-url", f"sqlite:///{tmp_path / 'other.db'}",
                )  # fmt: skip
        assert not (tmp_path / "other.db").exists()  # refused before anything was made
        for index in range(8):  # every connection still reaches the first server's data
            async with AsyncChatStoreClient(f"127.0.0.1:{port}", tenant_id=TENANT) as client:
                made = await client.create_session(title=f"c{index}")
                assert (await client.get_session(made.id)).title == f"c{index}"
    finally:
        assert await first.stop() == 0, "".join(first.log)
