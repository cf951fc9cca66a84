"""Bad input: INVALID_ARGUMENT naming the field, and nothing written."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import grpc
import pytest
from google.protobuf import field_mask_pb2

from chatstore import AsyncChatStoreClient, InvalidArgument, Message, Role, TokenUsage
from chatstore.v1 import (
    CreateSessionRequest,
    Session,
    UpdateSessionRequest,
    session_service_pb2_grpc,
)
from tests.conftest import TENANT, snapshot

Call = Callable[[AsyncChatStoreClient, str], Awaitable[object]]


async def _append(client: AsyncChatStoreClient, session_id: str, message: Message) -> object:
    return await client.append_messages(session_id, [Message(role=Role.ROLE_USER), message])


def _too_long(field: str, chars: int) -> tuple[Call, str]:
    """An append whose second message has `chars` characters in `field`."""
    message = Message(role=Role.ROLE_USER)
    setattr(message, field, "x" * chars)
    return (lambda c, s: _append(c, s, message)), f"messages[1].{field}"


CASES: dict[str, tuple[Call, str]] = {
    "session id too long": (lambda c, _: c.get_session("s" * 129), "session_id"),
    "session id with a control character": (
        lambda c, _: c.append_messages("a\tb", [Message(role=Role.ROLE_USER)]),
        "session_id",
    ),
    "session id with outer whitespace": (lambda c, _: c.get_session(" s1"), "session_id"),
    "tenant with a control character": (
        lambda c, _: c.create_session(tenant_id="a\x00b"),
        "tenant_id",
    ),
    "tenant too long": (lambda c, _: c.create_session(tenant_id="t" * 129), "tenant_id"),
    "title over 200 characters": (lambda c, _: c.create_session(title="x" * 201), "session.title"),
    "title update over 200 characters": (
        lambda c, s: c.update_session(s, title="x" * 201),
        "session.title",
    ),
    "client session id too long": (
        lambda c, _: c.create_session(session_id="s" * 129),
        "session_id",
    ),
    "client session id with a line separator": (
        lambda c, _: c.create_session(session_id="a\u2028b"),
        "session_id",
    ),
    "content over the limit": (
        lambda c, s: _append(c, s, Message(role=Role.ROLE_USER, content="x" * 100_001)),
        "messages[1].content",
    ),
    "unspecified role": (
        lambda c, s: _append(c, s, Message(content="no role")),
        "messages[1].role",
    ),
    "unknown role": (
        lambda c, s: _append(c, s, Message(role=99, content="?")),  # type: ignore[arg-type]
        "messages[1].role",
    ),
    "negative token count": (
        lambda c, s: _append(c, s, Message(role=Role.ROLE_USER, token_count=-1)),
        "messages[1].token_count",
    ),
    "malformed message id": (
        lambda c, s: _append(c, s, Message(role=Role.ROLE_USER, id="x")),
        "messages[1].id",
    ),
    "tool call id on a user message": (
        lambda c, s: _append(c, s, Message(role=Role.ROLE_USER, tool_call_id="call_1")),
        "messages[1].tool_call_id",
    ),
    "tool call id too long": (
        lambda c, s: _append(c, s, Message(role=Role.ROLE_TOOL, tool_call_id="c" * 257)),
        "messages[1].tool_call_id",
    ),
    **{
        f"message {field} too long": _too_long(field, 129)
        for field in ("name", "agent_id", "model")
    },
    "empty batch": (lambda c, s: c.append_messages(s, []), "messages"),
    "empty label key": (lambda c, _: c.create_session(labels={"": "v"}), "session.labels"),
    "label key too long": (
        lambda c, _: c.create_session(labels={"k" * 64: "v"}),
        "session.labels['" + "k" * 64 + "']",
    ),
    "label key with capitals": (
        lambda c, _: c.create_session(labels={"Team": "v"}),
        "session.labels['Team']",
    ),
    "label value too long": (
        lambda c, s: c.update_session(s, labels={"k": "v" * 256}),
        "session.labels['k']",
    ),
    "unknown retention": (
        lambda c, _: c.create_session(retention=9),  # type: ignore[arg-type]
        "session.retention",
    ),
    "unknown access mode": (
        lambda c, s: c.update_session(s, access_mode=5),  # type: ignore[arg-type]
        "session.access_mode",
    ),
    "malformed etag": (lambda c, s: c.update_session(s, title="x", etag="v1"), "etag"),
    "malformed etag on pin": (lambda c, s: c.pin_session(s, etag="abc"), "etag"),
    "model too long": (lambda c, _: c.create_session(model="m" * 129), "session.model"),
    "negative token usage": (
        lambda c, s: c.update_session(s, token_usage=TokenUsage(input_tokens=-1)),
        "session.token_usage.input_tokens",
    ),
    "batch over the limit": (
        lambda c, s: c.append_messages(s, [Message(role=Role.ROLE_USER)] * 1001),
        "messages",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_is_invalid_argument_and_writes_nothing(
    client: AsyncChatStoreClient, database_url: str, case: str
) -> None:
    call, field = CASES[case]
    session = await client.create_session(title="existing")
    before = await snapshot(database_url)

    with pytest.raises(InvalidArgument) as caught:
        await call(client, session.id)

    assert field in [v.field for v in caught.value.field_violations]
    assert field in caught.value.message
    assert caught.value.reason == "INVALID_FIELD"
    assert await snapshot(database_url) == before


async def test_empty_tenant_is_invalid(target: str) -> None:
    async with AsyncChatStoreClient(target) as no_tenant:
        with pytest.raises(ValueError, match="tenant_id"):
            await no_tenant.get_session(str(uuid.uuid4()))
    async with grpc.aio.insecure_channel(target) as channel:
        stub = session_service_pb2_grpc.SessionServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateSession(CreateSessionRequest())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tenant_id" in (caught.value.details() or "")


@pytest.mark.parametrize(
    ("paths", "field", "description"),
    [
        (["nickname"], "update_mask.paths[0]", "not a field"),
        (["title", "message_count"], "update_mask.paths[1]", "output only"),
        (["*", "title"], "update_mask", "only path"),
        (["key"], "update_mask.paths[0]", "cannot be changed"),
        (["etag"], "update_mask.paths[0]", "output only"),
        (["status"], "update_mask.paths[0]", "output only"),
        (["delete_time"], "update_mask.paths[0]", "output only"),
    ],
)
async def test_bad_update_mask_is_invalid(
    target: str, database_url: str, paths: list[str], field: str, description: str
) -> None:
    async with AsyncChatStoreClient(target, tenant_id=TENANT) as client:
        session = await client.create_session(title="keep")
    before = await snapshot(database_url)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = session_service_pb2_grpc.SessionServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.UpdateSession(
                UpdateSessionRequest(
                    tenant_id=TENANT,
                    session=Session(id=session.id, title="changed"),
                    update_mask=field_mask_pb2.FieldMask(paths=paths),
                )
            )

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")
    assert description in (caught.value.details() or "")
    assert await snapshot(database_url) == before
