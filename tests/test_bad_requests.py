"""Requests as an outside client can send them, over the wire, from the generated stubs
(or as raw bytes): whatever is wrong with them is INVALID_ARGUMENT naming the field,
never INTERNAL or UNKNOWN, with no exception text, and nothing is written."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2
from google.rpc import error_details_pb2, status_pb2

from chatstore import AsyncChatStoreClient, Message, PeerKind, Role
from chatstore.v1 import (
    AppendEventsRequest,
    AppendMessagesRequest,
    ArchiveSessionRequest,
    Checkpoint,
    CompactSessionRequest,
    CreateCheckpointRequest,
    CreateSessionRequest,
    CustomEvent,
    DeleteSessionRequest,
    ErrorEvent,
    Event,
    ForkSessionRequest,
    GetOrCreateSessionRequest,
    GetSessionRequest,
    InputEvent,
    ListSessionsRequest,
    LlmRequestEvent,
    LlmResponseEvent,
    OutputEvent,
    PinSessionRequest,
    Session,
    SessionKey,
    ToolCall,
    UnarchiveSessionRequest,
    UndeleteSessionRequest,
    UnpinSessionRequest,
    UpdateSessionRequest,
    session_service_pb2_grpc,
)
from chatstore.v1 import CheckpointEvent as CheckpointEventPayload
from chatstore.v1 import Message as MessageProto
from tests.conftest import TENANT, snapshot

if TYPE_CHECKING:  # the async stub type exists in the .pyi only
    Stub = session_service_pb2_grpc.SessionServiceAsyncStub
else:
    Stub = Any
# Builds a request against an existing session (its id) and sends it.
Send = Callable[[Stub, str], Awaitable[Any]]
NUL = "a\x00b"


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    holder = struct_pb2.Struct()
    holder.update(value)
    return holder


def _append(message: MessageProto) -> Send:
    return lambda stub, sid: stub.AppendMessages(
        AppendMessagesRequest(tenant_id=TENANT, session_id=sid, messages=[message])
    )


def _event(event: Event) -> Send:
    return lambda stub, sid: stub.AppendEvents(
        AppendEventsRequest(tenant_id=TENANT, session_id=sid, events=[event])
    )


def _update(session: Session, *paths: str) -> Send:
    def send(stub: Stub, sid: str) -> Awaitable[Any]:
        changed = Session()
        changed.CopyFrom(session)
        changed.id = sid
        return stub.UpdateSession(
            UpdateSessionRequest(
                tenant_id=TENANT,
                session=changed,
                update_mask=field_mask_pb2.FieldMask(paths=list(paths)),
            )
        )

    return send


def _key(**parts: str) -> SessionKey:
    key = SessionKey(channel="web", account_id="bot", peer_kind=PeerKind.PEER_KIND_DM, peer_id="u1")
    for name, value in parts.items():
        setattr(key, name, value)
    return key


USER = Role.ROLE_USER
NUL_CASES: dict[str, tuple[Send, str]] = {
    "title": (
        lambda stub, _: stub.CreateSession(
            CreateSessionRequest(tenant_id=TENANT, session=Session(title=NUL))
        ),
        "session.title",
    ),
    "agent id": (_update(Session(agent_id=NUL), "agent_id"), "session.agent_id"),
    "model": (_update(Session(model=NUL), "model"), "session.model"),
    "recap": (_update(Session(recap=NUL), "recap"), "session.recap"),
    "label key": (_update(Session(labels={NUL: "v"}), "labels"), "session.labels['a\\x00b']"),
    "label value": (_update(Session(labels={"k": NUL}), "labels"), "session.labels['k']"),
    "metadata key": (
        _update(Session(metadata=_struct({NUL: 1})), "metadata"),
        "session.metadata['a\\x00b']",
    ),
    "nested metadata value": (
        _update(Session(metadata=_struct({"a": {"b": ["ok", NUL]}})), "metadata"),
        "session.metadata['a']['b'][1]",
    ),
    "content": (_append(MessageProto(role=USER, content=NUL)), "messages[0].content"),
    "tool call id": (
        _append(MessageProto(role=Role.ROLE_TOOL, tool_call_id=NUL)),
        "messages[0].tool_call_id",
    ),
    "tool call arguments": (
        _append(
            MessageProto(
                role=Role.ROLE_ASSISTANT,
                tool_calls=[ToolCall(id="c1", name="f", arguments='{"x": "\x00"}')],
            )
        ),
        "messages[0].tool_calls[0].arguments",
    ),
    "message name": (_append(MessageProto(role=USER, name=NUL)), "messages[0].name"),
    "message metadata": (
        _append(MessageProto(role=USER, metadata=_struct({"k": NUL}))),
        "messages[0].metadata['k']",
    ),
    "structured content": (
        _append(MessageProto(role=USER, structured_content=struct_pb2.Value(string_value=NUL))),
        "messages[0].structured_content",
    ),
    "input event": (_event(Event(input=InputEvent(content=NUL))), "events[0].input.content"),
    "output event": (_event(Event(output=OutputEvent(content=NUL))), "events[0].output.content"),
    "llm request event": (
        _event(Event(llm_request=LlmRequestEvent(prompt="p", receipt_key=NUL))),
        "events[0].llm_request.receipt_key",
    ),
    "llm response event": (
        _event(Event(llm_response=LlmResponseEvent(response=NUL))),
        "events[0].llm_response.response",
    ),
    "error event": (_event(Event(error=ErrorEvent(message=NUL))), "events[0].error.message"),
    "checkpoint event": (
        _event(Event(checkpoint=CheckpointEventPayload(state_id=NUL))),
        "events[0].checkpoint.state_id",
    ),
    "custom event data": (
        _event(Event(custom=CustomEvent(type="t", data=struct_pb2.Value(string_value=NUL)))),
        "events[0].custom.data",
    ),
    "compaction recap": (
        lambda stub, sid: stub.CompactSession(
            CompactSessionRequest(tenant_id=TENANT, session_id=sid, through_seq=1, recap=NUL)
        ),
        "recap",
    ),
    "checkpoint label": (
        lambda stub, sid: stub.CreateCheckpoint(
            CreateCheckpointRequest(
                tenant_id=TENANT, session_id=sid, checkpoint=Checkpoint(label=NUL)
            )
        ),
        "checkpoint.label",
    ),
    "checkpoint description": (
        lambda stub, sid: stub.CreateCheckpoint(
            CreateCheckpointRequest(
                tenant_id=TENANT, session_id=sid, checkpoint=Checkpoint(description=NUL)
            )
        ),
        "checkpoint.description",
    ),
    "checkpoint tag": (
        lambda stub, sid: stub.CreateCheckpoint(
            CreateCheckpointRequest(
                tenant_id=TENANT, session_id=sid, checkpoint=Checkpoint(tags=["ok", NUL])
            )
        ),
        "checkpoint.tags[1]",
    ),
    "fork title": (
        lambda stub, sid: stub.ForkSession(
            ForkSessionRequest(tenant_id=TENANT, session_id=sid, message_seq=1, title=NUL)
        ),
        "title",
    ),
    "session key part": (
        lambda stub, _: stub.GetOrCreateSession(
            GetOrCreateSessionRequest(tenant_id=TENANT, key=_key(peer_id=NUL))
        ),
        "key.peer_id",
    ),
    "list filter": (
        lambda stub, _: stub.ListSessions(ListSessionsRequest(tenant_id=TENANT, agent_id=NUL)),
        "agent_id",
    ),
    "tenant": (
        lambda stub, _: stub.CreateSession(CreateSessionRequest(tenant_id=NUL)),
        "tenant_id",
    ),
}


def _violations(error: grpc.aio.AioRpcError) -> list[str]:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    return [v.field for v in bad.field_violations]
    return []


def _reason(error: grpc.aio.AioRpcError) -> str:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return str(info.reason)
    return ""


@pytest.fixture
async def session_id(client: AsyncChatStoreClient) -> str:
    """A session with one message, so that every request above has something to act on."""
    session = await client.create_session(title="existing")
    await client.append_messages(session.id, [Message(role=USER, content="hi")])
    return session.id


@pytest.mark.parametrize("case", list(NUL_CASES))
async def test_a_nul_in_any_string_is_invalid_argument_naming_the_field(
    stub: Stub, session_id: str, database_url: str, case: str
) -> None:
    send, field = NUL_CASES[case]
    before = await snapshot(database_url)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await send(stub, session_id)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert field in _violations(caught.value)
    assert "NUL" in (caught.value.details() or "")
    assert await snapshot(database_url) == before


ETAG_RPCS: dict[str, Callable[[Stub, str, str], Awaitable[Any]]] = {
    "UpdateSession": lambda stub, sid, etag: stub.UpdateSession(
        UpdateSessionRequest(
            tenant_id=TENANT,
            session=Session(id=sid, title="t"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            etag=etag,
        )
    ),
    "DeleteSession": lambda stub, sid, etag: stub.DeleteSession(
        DeleteSessionRequest(tenant_id=TENANT, session_id=sid, etag=etag)
    ),
    "UndeleteSession": lambda stub, sid, etag: stub.UndeleteSession(
        UndeleteSessionRequest(tenant_id=TENANT, session_id=sid, etag=etag)
    ),
    "PinSession": lambda stub, sid, etag: stub.PinSession(
        PinSessionRequest(tenant_id=TENANT, session_id=sid, etag=etag)
    ),
    "UnpinSession": lambda stub, sid, etag: stub.UnpinSession(
        UnpinSessionRequest(tenant_id=TENANT, session_id=sid, etag=etag)
    ),
    "ArchiveSession": lambda stub, sid, etag: stub.ArchiveSession(
        ArchiveSessionRequest(tenant_id=TENANT, session_id=sid, etag=etag)
    ),
    "UnarchiveSession": lambda stub, sid, etag: stub.UnarchiveSession(
        UnarchiveSessionRequest(tenant_id=TENANT, session_id=sid, etag=etag)
    ),
    "AppendMessages": lambda stub, sid, etag: stub.AppendMessages(
        AppendMessagesRequest(
            tenant_id=TENANT, session_id=sid, messages=[MessageProto(role=USER)], etag=etag
        )
    ),
    "CompactSession": lambda stub, sid, etag: stub.CompactSession(
        CompactSessionRequest(tenant_id=TENANT, session_id=sid, through_seq=1, recap="r", etag=etag)
    ),
}


@pytest.mark.parametrize("etag", ["¹", "²3", "٣", "12a", "-1", " 1"])
@pytest.mark.parametrize("rpc", list(ETAG_RPCS))
async def test_an_etag_the_server_never_issued_is_invalid_argument(
    stub: Stub, session_id: str, database_url: str, rpc: str, etag: str
) -> None:
    before = await snapshot(database_url)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ETAG_RPCS[rpc](stub, session_id, etag)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert _violations(caught.value) == ["etag"]
    assert await snapshot(database_url) == before


def _length_delimited(field: int, payload: bytes) -> bytes:
    """One length-delimited field in protobuf wire format."""
    size, length = len(payload), b""
    while True:
        low, size = size & 0x7F, size >> 7
        length += bytes([low | (0x80 if size else 0)])
        if not size:
            return bytes([field << 3 | 2]) + length + payload


def _deep_metadata(levels: int) -> bytes:
    """A CreateSessionRequest whose session metadata nests `levels` Structs deep, written
    by hand: the protobuf library will not build one deeper than it parses."""
    struct = b""
    for _ in range(levels):
        value = _length_delimited(5, struct)  # Value.struct_value
        entry = _length_delimited(1, b"a") + _length_delimited(2, value)  # fields["a"]
        struct = _length_delimited(1, entry)
    session = _length_delimited(5, struct)  # Session.metadata
    return _length_delimited(1, TENANT.encode()) + _length_delimited(2, session)


UNPARSABLE = {
    # CreateSessionRequest.tenant_id (field 1) holding bytes that are not UTF-8.
    "invalid UTF-8": b"\x0a\x02\xff\xfe",
    # Struct and Value alternate: 45 Structs are 90 messages deep, past protobuf's 100.
    "a Struct nested 45 deep": _deep_metadata(45),
    "a truncated message": CreateSessionRequest(tenant_id=TENANT).SerializeToString()[:-1],
}


@pytest.mark.parametrize("case", list(UNPARSABLE))
async def test_an_unparsable_request_is_invalid_argument_without_exception_text(
    target: str, database_url: str, case: str
) -> None:
    before = await snapshot(database_url)
    async with grpc.aio.insecure_channel(target) as channel:
        create = channel.unary_unary(
            "/chatstore.v1.SessionService/CreateSession",
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create(UNPARSABLE[case])

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _reason(caught.value) == "MALFORMED_REQUEST"
    details = caught.value.details() or ""
    for leak in ("Error", "Exception", "<class"):
        assert leak not in details
    assert await snapshot(database_url) == before


async def test_a_request_nested_within_the_limit_is_served(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        created = await session_service_pb2_grpc.SessionServiceStub(channel).CreateSession(
            CreateSessionRequest.FromString(_deep_metadata(30))
        )
        got = await session_service_pb2_grpc.SessionServiceStub(channel).GetSession(
            GetSessionRequest(tenant_id=TENANT, session_id=created.id)
        )
    assert got.metadata == created.metadata
    assert got.metadata.ByteSize() > 0
