"""Credentials per tenant, read-only keys, JWTs, safe defaults, TLS and mTLS."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pydantic import ValidationError

from chatstore import AsyncChatStoreClient, PermissionDenied, Unauthenticated, Unavailable
from chatstore.v1 import session_service_pb2
from chatstore_server.api.auth import READ_METHODS
from chatstore_server.config import ApiKey, Settings
from chatstore_server.keys import hash_key
from chatstore_server.server import ChatStoreServer
from tests.pki import certificate_authority, issue
from tests.processes import ServerProcess

KEYS = {"a": "key-of-tenant-a", "b": "key-of-tenant-b", "ro": "read-only-a", "admin": "admin"}
GRANTS = [
    ApiKey(name="a", sha256=hash_key(KEYS["a"]), tenants=["a"]),
    ApiKey(name="b", sha256=hash_key(KEYS["b"]), tenants=["b"]),
    ApiKey(name="ro", sha256=hash_key(KEYS["ro"]), tenants=["a"], mode="read_only"),
    ApiKey(name="admin", sha256=hash_key(KEYS["admin"]), tenants=["*"]),
]
SERVICE = session_service_pb2.DESCRIPTOR.services_by_name["SessionService"]
JWT_SECRET = "a-long-shared-secret-for-hmac-tests-only"


@pytest.fixture
async def secured(database_url: str) -> AsyncIterator[ChatStoreServer]:
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=database_url,
        api_keys=GRANTS,
        jwt_key=JWT_SECRET,
        jwt_algorithms=["HS256"],
    )
    server = await ChatStoreServer.start(settings)
    yield server
    await server.stop(None)


def client(server: ChatStoreServer, key: str | None, tenant: str = "a") -> AsyncChatStoreClient:
    return AsyncChatStoreClient(f"127.0.0.1:{server.port}", tenant_id=tenant, api_key=key)


def request_for(method: Any, tenant_id: str, session_id: str) -> Any:
    """A well-formed request of the method's type, aimed at a session of `tenant_id`."""
    request = getattr(session_service_pb2, method.input_type.name)(tenant_id=tenant_id)
    fields = method.input_type.fields_by_name
    if "session_id" in fields:
        request.session_id = session_id
    if "session" in fields and method.name == "UpdateSession":
        request.session.id = session_id
        request.session.title = "x"
    if "key" in fields:
        request.key.channel, request.key.account_id, request.key.peer_id = "c", "a", "p"
        request.key.peer_kind = 1
    if "messages" in fields:
        request.messages.add(role=1, content="hi")
    if "events" in fields:
        request.events.add().input.content = "hi"
    if method.name == "CompactSession":
        request.through_seq, request.recap = 1, "r"
    if method.name == "GetContextWindow":
        request.max_messages = 10
    if method.name == "GetMessage":
        request.seq = 1
    if method.name == "GetCheckpoint":
        request.checkpoint_id = str(uuid.uuid4())
    if method.name == "ForkSession":
        request.message_seq = 0
    return request


async def invoke(
    server: ChatStoreServer, method: Any, request: Any, key: str
) -> grpc.aio.AioRpcError:
    """Call the method raw; the error it ends with (the test expects one)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        path = f"/{SERVICE.full_name}/{method.name}"
        metadata = (("authorization", f"Bearer {key}"),)
        response_type = message_factory.GetMessageClass(method.output_type)
        kwargs = {
            "request_serializer": type(request).SerializeToString,
            "response_deserializer": response_type.FromString,
        }
        try:
            if method.server_streaming:
                stream = channel.unary_stream(path, **kwargs)(
                    request, metadata=metadata, timeout=10
                )
                async for _ in stream:
                    pass
            else:
                await channel.unary_unary(path, **kwargs)(request, metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as error:
            return error
    raise AssertionError(f"{method.name} succeeded")


async def test_a_tenant_credential_is_denied_every_rpc_on_another_tenant(
    secured: ChatStoreServer,
) -> None:
    async with client(secured, KEYS["b"], tenant="b") as theirs:
        existing = (await theirs.create_session(title="b's secret")).id
    missing = str(uuid.uuid4())
    covered = []

    for method in SERVICE.methods:
        answers = []
        for session_id in (existing, missing):
            error = await invoke(secured, method, request_for(method, "b", session_id), KEYS["a"])
            answers.append((error.code(), error.details()))
        covered.append(method.name)

        assert answers[0][0] == grpc.StatusCode.PERMISSION_DENIED, (method.name, answers[0])
        assert answers[0] == answers[1], f"{method.name} tells whether the session exists"

    assert covered == [m.name for m in SERVICE.methods]
    async with client(secured, KEYS["b"], tenant="b") as theirs:
        assert (await theirs.get_session(existing)).title == "b's secret"  # untouched


async def test_a_read_only_credential_cannot_write(secured: ChatStoreServer) -> None:
    async with client(secured, KEYS["a"]) as writer:
        session = await writer.create_session()
    writes = [m for m in SERVICE.methods if f"/{SERVICE.full_name}/{m.name}" not in READ_METHODS]
    assert len(writes) + len(READ_METHODS) == len(SERVICE.methods)  # reads are real methods

    for method in writes:
        error = await invoke(secured, method, request_for(method, "a", session.id), KEYS["ro"])
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, method.name
        assert "read-only" in (error.details() or ""), method.name
    async with client(secured, KEYS["ro"]) as reader:
        assert (await reader.get_session(session.id)).id == session.id
        assert [s.id async for s in reader.list_sessions()] == [session.id]


async def test_a_wildcard_credential_reaches_every_tenant(secured: ChatStoreServer) -> None:
    async with client(secured, KEYS["admin"], tenant="a") as admin:
        in_a = await admin.create_session()
        in_z = await admin.create_session(tenant_id="z")

    assert in_a.tenant_id == "a"
    assert in_z.tenant_id == "z"


@pytest.mark.parametrize("key", [None, "not-a-key", ""])
async def test_missing_or_invalid_credentials_are_unauthenticated(
    secured: ChatStoreServer, key: str | None
) -> None:
    async with client(secured, key) as stranger:
        with pytest.raises(Unauthenticated) as caught:
            await stranger.list_sessions().pages().__anext__()

    assert caught.value.reason in {"CREDENTIALS_MISSING", "CREDENTIALS_INVALID"}


async def test_health_needs_no_credentials(secured: ChatStoreServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured.port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())

    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_needs_no_credentials(secured: ChatStoreServer) -> None:
    # It serves the public schema only (see chatstore_server.api.reflection).
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [answer] = [answer async for answer in stub.ServerReflectionInfo(iter([request]))]

    assert "chatstore.v1.SessionService" in {s.name for s in answer.list_services_response.service}


def token(claims: dict[str, Any], key: Any = JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode({"exp": int(time.time()) + 60, **claims}, key, algorithm=algorithm)


async def test_jwts_carry_tenants_and_mode(secured: ChatStoreServer) -> None:
    writer = token({"sub": "svc", "tenants": ["a"], "chatstore_mode": "read_write"})
    reader = token({"sub": "ui", "tenants": ["a"]})  # no mode claim: read-only
    expired = token({"tenants": ["a"], "exp": int(time.time()) - 10})
    forged = token({"tenants": ["a"]}, key="some-other-secret-of-enough-length")

    async with client(secured, writer) as with_writer:
        session = await with_writer.create_session()
        with pytest.raises(PermissionDenied):
            await with_writer.get_session(session.id, tenant_id="b")
    async with client(secured, reader) as with_reader:
        assert (await with_reader.get_session(session.id)).id == session.id
        with pytest.raises(PermissionDenied):
            await with_reader.create_session()
    for bad in (expired, forged):
        async with client(secured, bad) as with_bad:
            with pytest.raises(Unauthenticated):
                await with_bad.get_session(session.id)


async def test_rs256_jwts_verify_against_a_public_key(database_url: str, tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "jwt.pem").write_bytes(public_pem)
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=database_url,
        jwt_key_file=tmp_path / "jwt.pem",
        jwt_algorithms=["ES256"],
        jwt_audience="chatstore",
    )
    server = await ChatStoreServer.start(settings)
    try:
        good = token(
            {"tenants": "a", "aud": "chatstore", "chatstore_mode": "read_write"}, private, "ES256"
        )
        wrong_audience = token({"tenants": "a", "aud": "other"}, private, "ES256")
        async with client(server, good) as with_good:
            assert (await with_good.create_session()).tenant_id == "a"
        async with client(server, wrong_audience) as with_wrong:
            with pytest.raises(Unauthenticated):
                await with_wrong.create_session()
    finally:
        await server.stop(None)


def test_a_non_loopback_address_without_credentials_is_refused() -> None:
    with pytest.raises(ValidationError, match="--allow-unauthenticated"):
        Settings(listen="0.0.0.0:50051")
    assert Settings(listen="0.0.0.0:50051", allow_unauthenticated=True).allow_unauthenticated
    assert Settings(listen="0.0.0.0:50051", api_keys=GRANTS[:1]).has_credentials
    assert Settings(listen="[::1]:50051").listen == "[::1]:50051"  # loopback is fine


async def test_the_server_refuses_to_start_open_on_all_interfaces(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(RuntimeError, match="allow-unauthenticated"):
        await ServerProcess.start("--listen", "0.0.0.0:0", "--database-url", database)

    opened = await ServerProcess.start(
        "--listen", "0.0.0.0:0", "--database-url", database, "--allow-unauthenticated"
    )
    assert await opened.stop() == 0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca, ca_key = certificate_authority()
    server = issue(ca, ca_key, "chatstore", server=True)
    client_pair = issue(ca, ca_key, "agent", server=False)
    stranger_ca, stranger_key = certificate_authority("someone else's CA")
    stranger = issue(stranger_ca, stranger_key, "intruder", server=False)
    files = {
        "ca": ca.certificate,
        "server.crt": server.certificate,
        "server.key": server.key,
        "client.crt": client_pair.certificate,
        "client.key": client_pair.key,
        "stranger.crt": stranger.certificate,
        "stranger.key": stranger.key,
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


async def test_tls(database_url: str, pki: dict[str, Path]) -> None:
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=database_url,
        tls_cert_file=pki["server.crt"],
        tls_key_file=pki["server.key"],
    )
    server = await ChatStoreServer.start(settings)
    target = f"127.0.0.1:{server.port}"
    try:
        async with AsyncChatStoreClient(
            target, tenant_id="a", root_certificates=pki["ca"].read_bytes()
        ) as secure:
            assert (await secure.create_session()).tenant_id == "a"
        async with AsyncChatStoreClient(target, tenant_id="a", timeout=5) as plain:
            with pytest.raises(Unavailable):
                await plain.create_session()
    finally:
        await server.stop(None)


async def test_mtls_refuses_clients_without_a_valid_certificate(
    database_url: str, pki: dict[str, Path]
) -> None:
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=database_url,
        tls_cert_file=pki["server.crt"],
        tls_key_file=pki["server.key"],
        tls_client_ca_file=pki["ca"],
    )
    server = await ChatStoreServer.start(settings)
    target = f"127.0.0.1:{server.port}"
    root = pki["ca"].read_bytes()
    try:
        async with AsyncChatStoreClient(
            target,
            tenant_id="a",
            root_certificates=root,
            client_certificate=pki["client.crt"].read_bytes(),
            client_private_key=pki["client.key"].read_bytes(),
        ) as trusted:
            assert (await trusted.create_session()).tenant_id == "a"
        async with AsyncChatStoreClient(
            target, tenant_id="a", root_certificates=root, timeout=5
        ) as anonymous:
            with pytest.raises(Unavailable):
                await anonymous.create_session()
        async with AsyncChatStoreClient(
            target,
            tenant_id="a",
            root_certificates=root,
            client_certificate=pki["stranger.crt"].read_bytes(),
            client_private_key=pki["stranger.key"].read_bytes(),
            timeout=5,
        ) as intruder:
            with pytest.raises(Unavailable):
                await intruder.create_session()
    finally:
        await server.stop(None)
