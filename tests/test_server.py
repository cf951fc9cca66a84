"""The server as a whole: restart durability, health, reflection, shutdown, errors."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chatstore import AsyncChatStoreClient, Internal, Message, Role
from chatstore_server.__main__ import _parser, main
from chatstore_server.config import Settings
from chatstore_server.server import ChatStoreServer
from chatstore_server.store import SessionRepository
from tests.conftest import TENANT

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
