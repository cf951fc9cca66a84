"""chatstore as a LangChain chat message history (`BaseChatMessageHistory`), blocking
and async, for `RunnableWithMessageHistory` and anything else that keeps a history.

    from chatstore.integrations.langchain import ChatStoreChatMessageHistory

    history = ChatStoreChatMessageHistory("user-123", "127.0.0.1:50051", tenant_id="acme")
    history.add_messages([HumanMessage("Hi"), AIMessage("Hello!")])

Each LangChain message is one chatstore message of the session whose id is the
history's `session_id` (created on the first write): the message exactly as LangChain
serializes it (`message_to_dict`, in `Message.structured_content_json`), which is what
comes back, plus a role, text and tool calls for readers without LangChain. Messages
that another writer appended without that JSON come back as the LangChain message of
their role (`HumanMessage`, `AIMessage`, `SystemMessage`, `ToolMessage`).

Needs `pip install 'chatstore[langchain]'` (langchain-core 1.x).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
    messages_from_dict,
)

from chatstore._async.client import AsyncChatStoreClient
from chatstore._errors import NotFound
from chatstore._sync.client import ChatStoreClient
from chatstore.integrations._common import (
    Clients,
    compact,
    ensure_session,
    ensure_session_sync,
)
from chatstore.v1 import Message, Role, ToolCall

__all__ = ["ChatStoreChatMessageHistory", "from_message", "to_message"]

_PAGE = 1_000  # the server's largest page: fewer round trips for a whole history

_ROLES = {
    "human": Role.ROLE_USER,
    "HumanMessageChunk": Role.ROLE_USER,
    "system": Role.ROLE_SYSTEM,
    "SystemMessageChunk": Role.ROLE_SYSTEM,
}
_CHAT_ROLES = {"user": Role.ROLE_USER, "system": Role.ROLE_SYSTEM}


def to_message(message: BaseMessage) -> Message:
    """A LangChain message as the chatstore message that keeps it."""
    stored = Message(
        structured_content_json=compact(message_to_dict(message)), content=message.text
    )
    if isinstance(message, ToolMessage):
        stored.role = Role.ROLE_TOOL
        stored.tool_call_id = message.tool_call_id
    elif message.type in _ROLES:
        stored.role = _ROLES[message.type]
    elif message.type == "chat":
        stored.role = _CHAT_ROLES.get(getattr(message, "role", ""), Role.ROLE_ASSISTANT)
    else:
        stored.role = Role.ROLE_ASSISTANT
    if isinstance(message, AIMessage):
        for call in message.tool_calls:
            stored.tool_calls.append(
                ToolCall(id=call["id"] or "", name=call["name"], arguments=compact(call["args"]))
            )
    return stored


def from_message(message: Message) -> BaseMessage:
    """A stored message as the LangChain message it keeps (or, for a message written
    without one, the LangChain message of its role)."""
    if message.structured_content_json:
        return messages_from_dict([json.loads(message.structured_content_json)])[0]
    if message.role == Role.ROLE_USER:
        return HumanMessage(message.content)
    if message.role == Role.ROLE_SYSTEM:
        return SystemMessage(message.content)
    if message.role == Role.ROLE_TOOL:
        return ToolMessage(message.content, tool_call_id=message.tool_call_id)
    return AIMessage(message.content)


class ChatStoreChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat message history kept in chatstore.

    Args:
        session_id: The history's id, used as the chatstore session id: 1 to 128
            printable characters, unique in the tenant.
        target: The server, `host:port` (default `CHATSTORE_TARGET`, else
            127.0.0.1:50051); ignored for the clients given.
        tenant_id: The tenant; defaults to the clients'.
        client: An `AsyncChatStoreClient` for the async methods (left open).
        sync_client: A `ChatStoreClient` for the blocking ones (left open).
        **client_options: Passed to the clients this makes (`api_key`, `tls`, ...).

    Messages are limited as chatstore's are: each at most the server's
    `max_content_chars` (100,000 by default) as JSON, 1,000 per `add_messages`.
    """

    def __init__(
        self,
        session_id: str,
        target: str | None = None,
        *,
        tenant_id: str | None = None,
        client: AsyncChatStoreClient | None = None,
        sync_client: ChatStoreClient | None = None,
        **client_options: Any,
    ) -> None:
        self.session_id = session_id
        self._tenant_id = tenant_id
        self._clients = Clients(target, tenant_id, client, sync_client, client_options)

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """Every message of the history, oldest first."""
        try:
            return [
                from_message(m)
                for m in self._clients.sync.list_messages(
                    self.session_id, page_size=_PAGE, tenant_id=self._tenant_id
                )
            ]
        except NotFound:
            return []

    async def aget_messages(self) -> list[BaseMessage]:
        """Every message of the history, oldest first."""
        try:
            return [
                from_message(m)
                async for m in self._clients.aio.list_messages(
                    self.session_id, page_size=_PAGE, tenant_id=self._tenant_id
                )
            ]
        except NotFound:
            return []

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append `messages` in one atomic, idempotent call."""
        if not messages:
            return
        stored = [to_message(m) for m in messages]
        request_id = str(uuid.uuid4())
        client = self._clients.sync
        try:
            client.append_messages(
                self.session_id, stored, request_id=request_id, tenant_id=self._tenant_id
            )
        except NotFound:
            ensure_session_sync(client, self.session_id, tenant_id=self._tenant_id)
            client.append_messages(
                self.session_id, stored, request_id=request_id, tenant_id=self._tenant_id
            )

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append `messages` in one atomic, idempotent call."""
        if not messages:
            return
        stored = [to_message(m) for m in messages]
        request_id = str(uuid.uuid4())
        client = self._clients.aio
        try:
            await client.append_messages(
                self.session_id, stored, request_id=request_id, tenant_id=self._tenant_id
            )
        except NotFound:
            await ensure_session(client, self.session_id, tenant_id=self._tenant_id)
            await client.append_messages(
                self.session_id, stored, request_id=request_id, tenant_id=self._tenant_id
            )

    def clear(self) -> None:
        """Remove every message (the session stays, empty; seqs are not reused)."""
        with contextlib.suppress(NotFound):
            self._clients.sync.rewind_session(self.session_id, to_seq=0, tenant_id=self._tenant_id)

    async def aclear(self) -> None:
        """Remove every message (the session stays, empty; seqs are not reused)."""
        with contextlib.suppress(NotFound):
            await self._clients.aio.rewind_session(
                self.session_id, to_seq=0, tenant_id=self._tenant_id
            )

    def close(self) -> None:
        """Close the blocking client if this history made it."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close the clients this history made."""
        await self._clients.aclose()
