"""SessionService methods on a session's messages."""

from __future__ import annotations

from typing import Any

import grpc

from chatstore.v1 import message_pb2, session_service_pb2
from chatstore_server.api import convert, pagination
from chatstore_server.api.limits import Limits
from chatstore_server.api.validation import Checker
from chatstore_server.store import MessageRepository, NewMessage, Role

Context = grpc.aio.ServicerContext[Any, Any]

_TOOL_CALL_FIELD_MAX_CHARS = 256
_ROLE_NAMES = ", ".join(message_pb2.Role.Name(r) for r in convert.ROLE_FROM_PROTO)


def _check_message(
    check: Checker, message: message_pb2.Message, field: str, limits: Limits
) -> NewMessage:
    """Validate one message of a batch; `field` is its path, like `messages[3]`."""
    message_id = check.optional_uuid(message.id, f"{field}.id")
    if message.role not in convert.ROLE_FROM_PROTO:
        check.fail(f"{field}.role", f"must be one of {_ROLE_NAMES}")
    check.text(message.content, f"{field}.content", max_chars=limits.max_content_chars)
    if message.HasField("token_count") and message.token_count < 0:
        check.fail(f"{field}.token_count", "must not be negative")
    if len(message.tool_calls) > limits.max_tool_calls:
        check.fail(f"{field}.tool_calls", f"at most {limits.max_tool_calls} tool calls")
    for index, call in enumerate(message.tool_calls):
        where = f"{field}.tool_calls[{index}]"
        check.text(call.id, f"{where}.id", max_chars=_TOOL_CALL_FIELD_MAX_CHARS, required=True)
        check.text(call.name, f"{where}.name", max_chars=_TOOL_CALL_FIELD_MAX_CHARS, required=True)
    create_time = (
        check.timestamp(message.create_time, f"{field}.create_time")
        if message.HasField("create_time")
        else None
    )
    if message.role not in convert.ROLE_FROM_PROTO:
        return NewMessage(role=Role.USER)  # never stored: done() raises first
    return convert.new_message(message, id=message_id, create_time=create_time)


def _batch_bytes(messages: Any) -> int:
    return sum(
        len(m.content.encode())
        + sum(
            len(c.id.encode()) + len(c.name.encode()) + len(c.arguments.encode())
            for c in m.tool_calls
        )
        for m in messages
    )


class MessageMethods:
    """AppendMessages, ListMessages."""

    _messages: MessageRepository
    _limits: Limits

    async def AppendMessages(  # noqa: N802 (gRPC method name)
        self, request: session_service_pb2.AppendMessagesRequest, context: Context
    ) -> session_service_pb2.AppendMessagesResponse:
        limits = self._limits
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.uuid(request.session_id, "session_id")
        count = len(request.messages)
        if count == 0:
            check.fail("messages", "at least one message is required")
        elif count > limits.max_batch_messages:
            check.fail("messages", f"at most {limits.max_batch_messages:,} messages per call")
        elif _batch_bytes(request.messages) > limits.max_batch_bytes:
            check.fail("messages", f"at most {limits.max_batch_bytes:,} bytes of text per call")
        batch = [
            _check_message(check, message, f"messages[{index}]", limits)
            for index, message in enumerate(request.messages)
        ]
        ids = [m.id for m in batch if m.id is not None]
        if len(ids) != len(set(ids)):
            check.fail("messages", "message ids must be unique within the batch")
        check.done()
        session, stored = await self._messages.append(tenant_id, session_id, batch)
        return session_service_pb2.AppendMessagesResponse(
            messages=[convert.message_to_proto(m) for m in stored],
            session=convert.session_to_proto(session),
        )

    async def ListMessages(  # noqa: N802
        self, request: session_service_pb2.ListMessagesRequest, context: Context
    ) -> session_service_pb2.ListMessagesResponse:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.uuid(request.session_id, "session_id")
        limit = check.page_size(
            request.page_size,
            default=self._limits.default_message_page_size,
            maximum=self._limits.max_page_size,
        )
        check.done()
        binding = ("ListMessages", tenant_id, str(session_id))
        after_seq = 0
        if request.page_token:
            position = pagination.decode(request.page_token, binding)
            if len(position) != 1 or not isinstance(position[0], int) or position[0] < 0:
                raise pagination.bad_position()
            after_seq = position[0]
        page = await self._messages.list(tenant_id, session_id, limit=limit, after_seq=after_seq)
        return session_service_pb2.ListMessagesResponse(
            messages=[convert.message_to_proto(m) for m in page.items],
            next_page_token=pagination.encode(binding, [page.next_cursor])
            if page.next_cursor is not None
            else "",
        )
