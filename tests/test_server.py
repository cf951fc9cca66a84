"""The server as a whole: restart durability, health, reflection, shutdown, errors."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from chatstore import AsyncChatStoreClient, Internal, Message, Role, Unauthenticated
from chatstore_server.__main__ import _parser, main
from chatstore_server.config import Settings, read_api_keys_file
from chatstore_server.keys import hash_key
from chatstore_server.server import ChatStoreServer
from chatstore_server.store import SessionRepository
from tests.conftest import TENANT
from tests.processes import ServerProcess

BIN = Path(sys.executable).parent


async def test_data_survives_a_restart(settings: Settings) -> None:
    first = await ChatStoreServer.start(settings)
    async with AsyncChatStoreClient(f"127.0.0.1:{first.port}", tenant_id=TENANT) as client:
        session = await client.create_session(title="kept", session_metadata={"k": [1, "x"]})
        await client.append_messages(
            session.id, [Message(role=Role.ROLE_USER, content=f"m{i}") for i in range(5)]
        )
        before = await client.get_session(session.id)
        messages_before = [m async for m in client.list_messages(session.id)]
    await first.stop(None)

    second = await ChatStoreServer.start(settings)
    try:
        async with AsyncChatStoreClient(f"127.0.0.1:{second.port}", tenant_id=TENANT) as client:
            after = await client.get_session(session.id)
            messages_after = [m async for m in client.list_messages(session.id)]
            listed = [s async for s in client.list_sessions()]
    finally:
        await second.stop(None)

    assert after == before
    assert (after.message_count, after.last_seq) == (5, 5)
    assert messages_after == messages_before
    assert listed == [before]


async def test_health_check_reports_serving(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "chatstore.v1.SessionService"):
            response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert response.status == health_pb2.HealthCheckResponse.SERVING


async def _buf_curl(target: str, method: str, body: dict[str, object]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(BIN / "buf"),
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--data",
        json.dumps(body),
        f"http://{target}/{method}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_buf_curl_reads_a_session_through_reflection(
    client: AsyncChatStoreClient, target: str
) -> None:
    session = await client.create_session(title="from buf")

    code, output = await _buf_curl(
        target,
        "chatstore.v1.SessionService/GetSession",
        {"tenant_id": TENANT, "session_id": session.id},
    )

    assert code == 0, output
    fetched = json.loads(output)
    assert (fetched["id"], fetched["tenantId"], fetched["title"]) == (
        session.id,
        TENANT,
        "from buf",
    )
    assert fetched["createTime"].endswith("Z")
    code, output = await _buf_curl(target, "grpc.health.v1.Health/Check", {})
    assert (code, json.loads(output)) == (0, {"status": "SERVING"})


async def test_unexpected_error_is_internal_without_its_text(
    client: AsyncChatStoreClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    session = await client.create_session()

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("SELECT secret FROM sessions -- boom")

    monkeypatch.setattr(SessionRepository, "get", broken)
    monkeypatch.setattr(SessionRepository, "version", broken)  # the rendered session's check
    with caplog.at_level(logging.ERROR), pytest.raises(Internal) as caught:
        await client.get_session(session.id)

    assert "secret" not in str(caught.value)
    assert "boom" not in str(caught.value)
    request_id = caught.value.request_id
    assert request_id
    assert request_id in caught.value.message
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged
    assert logged[0].exc_info
    assert "boom" in str(logged[0].exc_info[1])


async def test_sigterm_drains_and_exits_cleanly(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        str(BIN / "chatstore-server"),
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    port = None
    while port is None:
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        assert line, "server exited before serving"
        if found := re.search(r"\(port (\d+)\)", line):
            port = int(found.group(1))
    async with AsyncChatStoreClient(f"127.0.0.1:{port}", tenant_id=TENANT) as client:
        created = await client.create_session(title="before shutdown")

    process.send_signal(signal.SIGTERM)
    rest = (await asyncio.wait_for(process.stderr.read(), 30)).decode()

    assert await process.wait() == 0
    assert "shutting down" in rest
    assert created.id


async def test_text_logs_keep_the_call_fields_and_start_up_says_what_is_on(
    tmp_path: Path,
) -> None:
    server = await ServerProcess.start(
        "--listen", "127.0.0.1:0", "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'db'}",
        "--log-format", "text", "--metrics-port", "0",
    )  # fmt: skip
    try:
        async with AsyncChatStoreClient(server.target, tenant_id=TENANT) as client:
            await client.create_session(metadata=[("x-request-id", "req-in-text")])
        await server.wait_for_log("req-in-text", count=1)
    finally:
        assert await server.stop() == 0

    [start_up] = [line for line in server.log if "serving on" in line]
    [call] = [line for line in server.log if "req-in-text" in line]
    assert "tls off" in start_up
    assert "auth off" in start_up
    assert re.search(r"metrics 127\.0\.0\.1:\d+", start_up)
    assert "method=/chatstore.v1.SessionService/CreateSession" in call
    assert "code=OK" in call
    assert re.search(r"duration_ms=\d", call)
    assert "request_id=req-in-text" in call


def test_bad_setting_is_reported_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-level", "LOUD"]) == 2
    assert "bad setting log_level" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "expected"),
    [([], None), (["--log-requests"], True), (["--no-log-requests"], False)],
)
def test_switches_turn_on_and_off_from_the_command_line(
    flags: list[str], expected: bool | None
) -> None:
    # None: not given on the command line, so the environment or the default decides.
    assert vars(_parser().parse_args(flags))["log_requests"] is expected


async def test_second_server_cannot_take_a_port_in_use(
    server: ChatStoreServer, database_url: str
) -> None:
    with pytest.raises(RuntimeError):
        await ChatStoreServer.start(
            Settings(listen=f"127.0.0.1:{server.port}", database_url=database_url)
        )


def _one_line(err: str) -> str:
    """The stderr of a start-up that failed: exactly one line, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


async def _tables(database_url: str) -> list[str]:
    """The tables in a database (none: nothing was made or migrated)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()


def _without_driver(url: str) -> str:
    """`url` with no driver named: `postgresql://...`, `sqlite:///...`."""
    return re.sub(r"^(\w+)\+\w+://", r"\1://", url)


async def test_a_url_without_a_driver_is_served(database_url: str) -> None:
    settings = Settings(listen="127.0.0.1:0", database_url=_without_driver(database_url))
    server = await ChatStoreServer.start(settings)
    try:
        async with AsyncChatStoreClient(f"127.0.0.1:{server.port}", tenant_id=TENANT) as client:
            made = await client.create_session(title="through a plain URL")
            assert (await client.get_session(made.id)).title == "through a plain URL"
    finally:
        await server.stop(None)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("mysql://db/x", "unsupported database"),
        ("postgresql+psycopg2://db/x", "through asyncpg"),
        ("sqlite://", "needs a database file"),
        ("not a url", "not a database URL"),
    ],
)
def test_an_unusable_url_is_one_line(
    url: str, complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database-url", url]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "bad setting database_url" in line
    assert complaint in line


def test_a_database_that_cannot_be_opened_is_one_line(
    empty_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if empty_database_url.startswith("sqlite"):
        url, reason = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}", "unable to open"
    else:
        url, reason = empty_database_url.rsplit("/", 1)[0] + "/no_such_db", "does not exist"

    assert main(["--listen", "127.0.0.1:0", "--database-url", url]) == 2

    line = _one_line(capsys.readouterr().err)
    assert line.startswith("chatstore-server: bad setting database_url:")
    assert reason in line


async def test_a_port_in_use_is_one_line_and_changes_nothing(
    empty_database_url: str, tmp_path: Path
) -> None:
    first = await ChatStoreServer.start(
        Settings(listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'first.db'}")
    )
    try:
        process = await asyncio.create_subprocess_exec(
            str(BIN / "chatstore-server"),
            "--listen", f"127.0.0.1:{first.port}", "--database-url", empty_database_url,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        await first.stop(None)

    assert process.returncode == 2
    line = _one_line(err.decode())
    assert "bad setting listen" in line
    assert str(first.port) in line
    if empty_database_url.startswith("sqlite"):
        assert not Path(empty_database_url.split("///", 1)[1]).exists()
    else:
        assert await _tables(empty_database_url) == []  # not migrated


async def test_the_key_line_of_chatstore_new_api_key_is_a_keys_file(
    database_url: str, tmp_path: Path
) -> None:
    made = subprocess.run(  # noqa: ASYNC221 - a short command, before the server starts
        [str(BIN / "chatstore-new-api-key"), "--name", "bot", "--tenants", TENANT],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = made.stderr.rsplit(": ", 1)[1].strip()
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(made.stdout)  # one key object, as printed
    settings = Settings(listen="127.0.0.1:0", database_url=database_url, api_keys_file=keys_file)
    server = await ChatStoreServer.start(settings)
    try:
        target = f"127.0.0.1:{server.port}"
        async with AsyncChatStoreClient(target, tenant_id=TENANT, api_key=key) as client:
            assert (await client.create_session(title="keyed")).title == "keyed"
        async with AsyncChatStoreClient(target, tenant_id=TENANT) as anonymous:
            with pytest.raises(Unauthenticated):
                await anonymous.create_session()
    finally:
        await server.stop(None)


def test_chatstore_new_api_key_adds_to_a_keys_file_and_asks_for_tenants(
    tmp_path: Path,
) -> None:
    keys_file = tmp_path / "keys.json"

    def new_key(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / "chatstore-new-api-key"), *args]
        return subprocess.run(command, capture_output=True, text=True)

    made = [
        new_key("--name", name, "--tenants", tenants, "--keys-file", str(keys_file))
        for name, tenants in (("bot", TENANT), ("ops", "*"))
    ]
    again = new_key("--name", "bot", "--tenants", TENANT, "--keys-file", str(keys_file))
    untenanted = new_key("--name", "x")

    keys = read_api_keys_file(keys_file)
    assert [(k.name, k.tenants) for k in keys] == [("bot", [TENANT]), ("ops", ["*"])]
    assert [(m.returncode, m.stdout) for m in made] == [(0, ""), (0, "")]  # into the file
    for made_key, configured in zip(made, keys, strict=True):
        assert hash_key(made_key.stderr.split(": ", 1)[1].split()[0]) == configured.sha256
    assert again.returncode == 2
    assert "already has a key named 'bot'" in again.stderr
    assert untenanted.returncode == 2
    assert "--tenants" in untenanted.stderr


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("[1", "is not JSON"),
        ('{"name": "x"}', "entry 0: sha256"),
        ('"a key"', "JSON list of keys"),
    ],
)
def test_a_bad_keys_file_is_one_line(
    tmp_path: Path, content: str, complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(content)

    assert main(["--api-keys-file", str(keys_file)]) == 2

    line = _one_line(capsys.readouterr().err)
    assert "bad setting api_keys_file" in line
    assert complaint in line
