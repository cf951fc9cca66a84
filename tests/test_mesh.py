"""Behaving well in a mesh: limits, request ids, metrics, structured logs, config."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from chatstore import AsyncChatStoreClient, InvalidArgument, Message, ResourceExhausted, Role
from chatstore.v1 import CreateSessionRequest, session_service_pb2_grpc
from chatstore_server.__main__ import main
from chatstore_server.config import Settings
from chatstore_server.server import ChatStoreServer
from tests.conftest import TENANT
from tests.processes import ServerProcess


@pytest.fixture
async def small_server(database_url: str) -> AsyncIterator[ChatStoreServer]:
    """A server with small message-size limits and a metrics endpoint."""
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=database_url,
        max_receive_message_bytes=512 * 1024,
        max_send_message_bytes=256 * 1024,
        max_batch_bytes=256 * 1024,
        metrics_port=0,
    )
    server = await ChatStoreServer.start(settings)
    yield server
    await server.stop(None)


def user(text: str) -> Message:
    return Message(role=Role.ROLE_USER, content=text)


async def test_an_oversized_request_is_refused_and_the_server_carries_on(
    small_server: ChatStoreServer,
) -> None:
    async with AsyncChatStoreClient(f"127.0.0.1:{small_server.port}", tenant_id=TENANT) as client:
        session = await client.create_session()
        with pytest.raises(ResourceExhausted):
            await client.append_messages(session.id, [user("x" * 90_000)] * 8)  # ~720 KB
        with pytest.raises(InvalidArgument) as caught:
            await client.append_messages(session.id, [user("x" * 90_000)] * 4)  # over the batch
        assert [v.field for v in caught.value.field_violations] == ["messages"]

        stored = await client.append_messages(session.id, [user("fine")])
    assert stored.session.last_seq == 1


async def test_pages_stop_short_of_the_send_limit(small_server: ChatStoreServer) -> None:
    async with AsyncChatStoreClient(f"127.0.0.1:{small_server.port}", tenant_id=TENANT) as client:
        session = await client.create_session()
        for i in range(10):
            await client.append_messages(session.id, [user(f"{i} " + "y" * 60_000)])

        pages = [p async for p in client.list_messages(session.id, page_size=10).pages()]

    assert len(pages) > 1  # 600 KB does not fit one 256 KB response
    assert [m.seq for p in pages for m in p.items] == list(range(1, 11))


async def test_the_request_id_comes_back_in_trailing_metadata(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = session_service_pb2_grpc.SessionServiceStub(channel)
        call = stub.CreateSession(
            CreateSessionRequest(tenant_id=TENANT), metadata=(("x-request-id", "trace-123"),)
        )
        await call
        echoed = dict(await call.trailing_metadata())
        failing = stub.CreateSession(CreateSessionRequest())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await failing
        generated = dict(caught.value.trailing_metadata())

    assert echoed["x-request-id"] == "trace-123"
    assert len(generated["x-request-id"]) == 32


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def test_metrics_count_calls_by_method_and_status(small_server: ChatStoreServer) -> None:
    assert small_server.metrics_port is not None
    port = small_server.metrics_port
    created = 'chatstore_requests_total{code="OK",method="CreateSession"}'
    not_found = 'chatstore_requests_total{code="NOT_FOUND",method="GetSession"}'
    before = await asyncio.to_thread(scrape, port)

    async with AsyncChatStoreClient(f"127.0.0.1:{small_server.port}", tenant_id=TENANT) as client:
        session = await client.create_session()
        await client.create_session()
        with pytest.raises(Exception, match="NOT_FOUND"):
            await client.get_session("00000000-0000-4000-8000-000000000000")
        stream = client.watch(session.id)
        await client.append_messages(session.id, [user("hi")])
        await anext(stream)
        during = await asyncio.to_thread(scrape, port)
        await stream.aclose()  # type: ignore[attr-defined]

    after = await asyncio.to_thread(scrape, port)
    assert after[created] - before.get(created, 0) == 2
    assert after[not_found] - before.get(not_found, 0) == 1
    assert after['chatstore_request_duration_seconds_count{method="CreateSession"}'] >= 2
    assert during["chatstore_watch_streams"] == 1
    assert 'chatstore_db_pool_connections{state="size"}' in after


async def test_logs_are_json_lines_with_request_details(tmp_path: Path) -> None:
    server = await ServerProcess.start(
        "--listen", "127.0.0.1:0", "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'l.db'}"
    )
    try:
        async with AsyncChatStoreClient(server.target, tenant_id=TENANT) as client:
            await client.create_session()
        await server.wait_for_log('"method": "/chatstore.v1.SessionService/CreateSession"', 1)
    finally:
        await server.stop()

    entries = [json.loads(line) for line in server.log if line.startswith("{")]
    access = [e for e in entries if e.get("logger") == "chatstore_server.access"]
    assert access
    assert {"request_id", "method", "code", "duration_ms", "time", "level"} <= set(access[0])
    assert access[0]["code"] == "OK"


def test_settings_come_from_a_config_file_then_env_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatstore_server.config import load

    config = tmp_path / "chatstore.toml"
    config.write_text('listen = "127.0.0.1:6000"\nmax_page_size = 200\nlog_format = "text"\n')
    monkeypatch.setenv("CHATSTORE_MAX_PAGE_SIZE", "300")

    settings = load({"log_format": "json"}, config)

    assert settings.listen == "127.0.0.1:6000"  # from the file
    assert settings.max_page_size == 300  # the environment beats the file
    assert settings.log_format == "json"  # a flag beats both


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--max-page-size", "lots"], "bad setting max_page_size"),
        (["--tls-cert-file", "/nonexistent.pem"], "no such file"),
        (["--api-keys", '[{"name": "x", "sha256": "short"}]'], "bad setting api_keys"),
        (["--workers", "2"], "bad setting workers"),
    ],
)
def test_bad_settings_are_reported_clearly(
    args: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert complaint in capsys.readouterr().err


def test_a_bad_config_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('max_content_chars = "many"\n')

    assert main(["--config", str(config)]) == 2
    assert "bad setting max_content_chars" in capsys.readouterr().err
