"""SessionService methods on a session's messages: append, list, get."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import grpc

from chatstore.v1 import message_pb2, session_service_pb2
from chatstore_server.api import convert, pagination, session_fields, wire
from chatstore_server.api.limits import Limits
from chatstore_server.api.session_cache import RenderedSessions
from chatstore_server.api.validation import (
    NOT_JSON,
    Checker,
    check_etag,
    json_metadata,
    time_range,
)
from chatstore_server.store import (
    ABSENT,
    MessageFilter,
    MessageRepository,
    NewMessage,
    Precondition,
    Role,
    SharedStateRecord,
)
from chatstore_server.store.bodies import ROLE_FROM_PROTO
from chatstore_server.store.schema import (
    AGENT_ID_MAX_CHARS,
    MODEL_MAX_CHARS,
    NAME_MAX_CHARS,
    REQUEST_ID_MAX_CHARS,
    TOOL_CALL_ID_MAX_CHARS,
)

Context = grpc.aio.ServicerContext[Any, Any]

_ROLE_NAMES = ", ".join(message_pb2.Role.Name(r) for r in ROLE_FROM_PROTO)


def fingerprint(messages: Sequence[Any]) -> str:
    """What identifies a request's content, to tell a retry from a reused request id."""
    digest = hashlib.sha256()
    for message in messages:
        encoded = message.SerializeToString(deterministic=True)
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    return digest.hexdigest()


def request_id(check: Checker, value: str) -> str | None:
    """An optional request id: 1 to 128 printable characters."""
    if len(value) > REQUEST_ID_MAX_CHARS or not value.isprintable():
        check.fail("request_id", f"at most {REQUEST_ID_MAX_CHARS} printable characters")
    return value or None


def _check_message(
    check: Checker, message: message_pb2.Message, field: str, limits: Limits
) -> NewMessage | None:
    """Validate one message of a batch; `field` is its path, like `messages[3]`."""
    message_id = check.optional_uuid(message.id, f"{field}.id")
    role = ROLE_FROM_PROTO.get(message.role)
    if role is None:
        check.fail(f"{field}.role", f"must be one of {_ROLE_NAMES}")
    check.text(message.content, f"{field}.content", max_chars=limits.max_content_chars)
    structured: Any = ABSENT
    if message.structured_content_json:
        where = f"{field}.structured_content_json"
        if message.HasField("structured_content"):
            check.fail(where, "give structured_content or structured_content_json, not both")
        check.text(message.structured_content_json, where, max_chars=limits.max_content_chars)
        structured = check.json_text(message.structured_content_json, where)
    elif message.HasField("structured_content"):
        encoded = json.dumps(convert.value_to_json(message.structured_content))
        if len(encoded) > limits.max_content_chars:
            check.fail(
                f"{field}.structured_content",
                f"at most {limits.max_content_chars:,} characters as JSON",
            )
    if message.HasField("token_count") and message.token_count < 0:
        check.fail(f"{field}.token_count", "must not be negative")
    if len(message.tool_calls) > limits.max_tool_calls:
        check.fail(f"{field}.tool_calls", f"at most {limits.max_tool_calls} tool calls")
    for index, call in enumerate(message.tool_calls):
        where = f"{field}.tool_calls[{index}]"
        check.text(call.id, f"{where}.id", max_chars=TOOL_CALL_ID_MAX_CHARS, required=True)
        check.text(call.name, f"{where}.name", max_chars=TOOL_CALL_ID_MAX_CHARS, required=True)
    # Optional strings are checked only when given (an empty one is always right): most
    # messages leave them all empty, and every append checks each.
    if message.tool_call_id:
        check.text(message.tool_call_id, f"{field}.tool_call_id", max_chars=TOOL_CALL_ID_MAX_CHARS)
        if role is not Role.TOOL:
            check.fail(f"{field}.tool_call_id", "only ROLE_TOOL messages answer a tool call")
    elif role is Role.TOOL:
        check.fail(f"{field}.tool_call_id", "required for ROLE_TOOL messages")
    if message.name:
        check.text(message.name, f"{field}.name", max_chars=NAME_MAX_CHARS)
    if message.agent_id:
        check.text(message.agent_id, f"{field}.agent_id", max_chars=AGENT_ID_MAX_CHARS)
    if message.model:
        check.text(message.model, f"{field}.model", max_chars=MODEL_MAX_CHARS)
    metadata = json_metadata(check, message, field, limits)
    create_time = (
        check.timestamp(message.create_time, f"{field}.create_time")
        if message.HasField("create_time")
        else None
    )
    if role is None or structured is NOT_JSON or metadata is NOT_JSON:
        return None
    return convert.new_message(
        message,
        id=message_id,
        create_time=create_time,
        structured_content=structured,
        metadata=metadata,
    )


def _batch_bytes(messages: Sequence[message_pb2.Message]) -> int:
    """A batch's size as `max_batch_bytes` counts it: contents, structured contents,
    tool calls. (A loop: nested generators cost more than the sums, per append.)"""
    size = 0
    for m in messages:
        size += len(m.content.encode())
        if m.structured_content_json:
            size += len(m.structured_content_json.encode())
        elif m.HasField("structured_content"):
            size += m.structured_content.ByteSize()
        for c in m.tool_calls:
            size += len(c.id) + len(c.name) + len(c.arguments.encode())
    return size


def check_batch_size(check: Checker, field: str, count: int, size: int, limits: Limits) -> None:
    """A batch holds 1 to `max_batch_messages` items and at most `max_batch_bytes`."""
    if count == 0:
        check.fail(field, f"at least one of {field} is required")
    elif count > limits.max_batch_messages:
        check.fail(field, f"at most {limits.max_batch_messages:,} {field} per call")
    elif size > limits.max_batch_bytes:
        check.fail(field, f"at most {limits.max_batch_bytes:,} bytes per call")


class MessageMethods:
    """AppendMessages, RewindSession, ListMessages, GetMessage."""

    ENCODED_ANSWERS = frozenset({"ListMessages"})
    """Methods that answer with their response already encoded (`bytes`, `api.wire`)."""

    _messages: MessageRepository
    _limits: Limits
    _rendered: RenderedSessions

    async def AppendMessages(  # noqa: N802 (gRPC method name)
        self, request: session_service_pb2.AppendMessagesRequest, context: Context
    ) -> session_service_pb2.AppendMessagesResponse:
        limits = self._limits
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        check_batch_size(
            check, "messages", len(request.messages), _batch_bytes(request.messages), limits
        )
        batch = [
            _check_message(check, message, f"messages[{index}]", limits)
            for index, message in enumerate(request.messages)
        ]
        ids = [m.id for m in batch if m is not None and m.id is not None]
        if len(ids) != len(set(ids)):
            check.fail("messages", "message ids must be unique within the batch")
        if request.HasField("expected_last_seq") and request.expected_last_seq < 0:
            check.fail("expected_last_seq", "must not be negative")
        precondition = Precondition(
            expected_last_seq=request.expected_last_seq
            if request.HasField("expected_last_seq")
            else None,
            revision=check_etag(check, request.etag),
        )
        dedupe = request_id(check, request.request_id)
        changing = request.HasField("session_change")
        change = session_fields.session_change(check, request.session_change, limits)
        check.done()
        written = [m for m in batch if m is not None]
        states: list[SharedStateRecord] = []
        if changing:
            session, stored, states = await self._messages.append_changing(
                tenant_id,
                session_id,
                written,
                change,
                precondition=precondition,
                request_id=dedupe,
                fingerprint=fingerprint([*request.messages, request.session_change])
                if dedupe
                else "",
            )
        else:
            session, stored = await self._messages.append(
                tenant_id,
                session_id,
                written,
                precondition=precondition,
                request_id=dedupe,
                fingerprint=fingerprint(request.messages) if dedupe else "",
            )
        response = session_service_pb2.AppendMessagesResponse(
            session=self._rendered.render(tenant_id, session),
            shared_states=[convert.shared_state_to_proto(s) for s in states] or None,
        )
        convert.add_messages(response.messages, stored, session_id)
        return response

    async def RewindSession(  # noqa: N802
        self, request: session_service_pb2.RewindSessionRequest, context: Context
    ) -> session_service_pb2.RewindSessionResponse:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        point = request.WhichOneof("point")
        if point is None:
            check.fail("point", "give to_seq or remove_count")
        elif point == "to_seq" and request.to_seq < 0:
            check.fail("to_seq", "must not be negative")
        elif point == "remove_count" and request.remove_count < 1:
            check.fail("remove_count", "must be 1 or more")
        if request.HasField("expected_last_seq") and request.expected_last_seq < 0:
            check.fail("expected_last_seq", "must not be negative")
        precondition = Precondition(
            expected_last_seq=request.expected_last_seq
            if request.HasField("expected_last_seq")
            else None,
            revision=check_etag(check, request.etag),
        )
        dedupe = request_id(check, request.request_id)
        check.done()
        done = await self._messages.rewind(
            tenant_id,
            session_id,
            to_seq=request.to_seq if point == "to_seq" else None,
            remove_count=request.remove_count if point == "remove_count" else None,
            precondition=precondition,
            request_id=dedupe,
            fingerprint=fingerprint([request]) if dedupe else "",
        )
        response = session_service_pb2.RewindSessionResponse(
            removed_count=done.removed_count,
            session=self._rendered.render(tenant_id, done.session),
        )
        convert.add_messages(response.removed_messages, done.removed or (), session_id)
        return response

    async def ListMessages(  # noqa: N802
        self, request: session_service_pb2.ListMessagesRequest, context: Context
    ) -> bytes:
        """A page of messages, as an encoded ListMessagesResponse (`api.wire`)."""
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        limit = check.page_size(
            request.page_size,
            default=self._limits.default_message_page_size,
            maximum=self._limits.max_page_size,
        )
        order = request.order_by.split()
        if order not in ([], ["seq"], ["seq", "asc"], ["seq", "desc"]):
            check.fail("order_by", 'must be "seq" or "seq desc"')
        descending = order[-1:] == ["desc"]
        for field in ("after_seq", "before_seq"):
            if getattr(request, field) < 0:
                check.fail(field, "must not be negative")
        roles = set()
        for index, role in enumerate(request.roles):
            if role not in ROLE_FROM_PROTO:
                check.fail(f"roles[{index}]", f"must be one of {_ROLE_NAMES}")
            else:
                roles.add(ROLE_FROM_PROTO[role])
        where = MessageFilter(
            after_seq=request.after_seq,
            before_seq=request.before_seq or None,
            roles=frozenset(roles),
            create_time=time_range(check, request, "create_time_range"),
            exclude_compacted=request.exclude_compacted,
        )
        check.done()
        binding = [
            "ListMessages",
            tenant_id,
            session_id,
            descending,
            where.after_seq,
            where.before_seq,
            sorted(where.roles),
            [where.create_time.start, where.create_time.end],
            where.exclude_compacted,
        ]
        after = pagination.decode_seq(request.page_token, binding)
        page = await self._messages.list_encoded(
            tenant_id, session_id, limit=limit, where=where, descending=descending, after=after
        )
        # The messages come encoded (`store.encoded`): the answer is written around them.
        token = pagination.encoded_seq_page(
            page.messages, page.seqs, page.next_cursor, binding, self._limits.max_response_bytes
        )
        return wire.list_messages_response(page.messages, token)

    async def GetMessage(  # noqa: N802
        self, request: session_service_pb2.GetMessageRequest, context: Context
    ) -> message_pb2.Message:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        selector = request.WhichOneof("selector")
        message_id = None
        if selector == "message_id":
            message_id = check.uuid(request.message_id, "message_id")
        elif selector == "seq":
            if request.seq < 1:
                check.fail("seq", "must be 1 or more")
        else:
            check.fail("selector", "give message_id or seq")
        check.done()
        record = await self._messages.get(
            tenant_id, session_id, message_id=message_id, seq=request.seq
        )
        return convert.message_to_proto(record, session_id)
