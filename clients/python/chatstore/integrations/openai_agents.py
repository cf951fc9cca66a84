"""chatstore as an OpenAI Agents SDK session: the conversation history that
`Runner.run(agent, input, session=...)` reads before a turn and extends after it.

    from chatstore.integrations.openai_agents import ChatStoreSession

    session = ChatStoreSession("user-123", "127.0.0.1:50051", tenant_id="acme")
    result = await Runner.run(agent, "Hello", session=session)

Each item is one chatstore message of the session whose id is the SDK's session id
(created on the first `add_items`). The item's JSON is kept exactly as given
(`Message.structured_content_json`) and is what `get_items` returns; the message also
carries what other readers need: a role (user, assistant, system for system and
developer items, tool for tool outputs), the text as `content`, and function calls as
`tool_calls`. Messages that another writer appended without item JSON (a chat UI in
another language) come back as easy input messages (`{"role": ..., "content": ...}`)
or function call outputs.

`pop_item` is `RewindSession` (one atomic removal, so concurrent pops each get a
different item); `clear_session` purges the session.

Needs `pip install 'chatstore[openai-agents]'` (openai-agents 0.24).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

from agents.items import TResponseInputItem
from agents.memory.session import SessionABC
from agents.memory.session_settings import SessionSettings, resolve_session_limit

from chatstore._async.client import AsyncChatStoreClient
from chatstore._errors import NotFound
from chatstore.integrations._common import Clients, compact, ensure_session
from chatstore.v1 import Message, Role, ToolCall

__all__ = ["ChatStoreSession", "item_to_message", "message_to_item", "messages_to_items"]

_PAGE = 1_000  # the server's largest page: fewer round trips for a whole history

_ROLES = {
    "user": Role.ROLE_USER,
    "assistant": Role.ROLE_ASSISTANT,
    "system": Role.ROLE_SYSTEM,
    "developer": Role.ROLE_SYSTEM,
}
_ROLE_NAMES = {
    Role.ROLE_USER: "user",
    Role.ROLE_ASSISTANT: "assistant",
    Role.ROLE_SYSTEM: "system",
}


def _text(content: Any) -> str:
    """The text of a message item's content: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = [
        part.get("text") or part.get("refusal") or ""
        for part in content
        if isinstance(part, Mapping)
    ]
    return "".join(p for p in parts if isinstance(p, str))


def item_to_message(item: Mapping[str, Any]) -> Message:
    """An SDK item as the chatstore message that keeps it: its JSON verbatim, and a
    role, content and tool calls that readers without the SDK understand."""
    kind = item.get("type", "message")
    message = Message(structured_content_json=compact(item))
    call_id = item.get("call_id")
    if kind == "message" or ("role" in item and "type" not in item):
        message.role = _ROLES.get(item.get("role", "user"), Role.ROLE_USER)
        message.content = _text(item.get("content"))
    elif isinstance(kind, str) and kind.endswith("_output") and isinstance(call_id, str):
        message.role = Role.ROLE_TOOL
        message.tool_call_id = call_id
        output = item.get("output")
        message.content = output if isinstance(output, str) else _text(output)
    else:
        message.role = Role.ROLE_ASSISTANT
        if kind == "function_call" and isinstance(call_id, str):
            message.tool_calls.append(
                ToolCall(
                    id=call_id,
                    name=str(item.get("name", "")),
                    arguments=str(item.get("arguments", "")),
                )
            )
    return message


def message_to_item(message: Message) -> TResponseInputItem:
    """A stored message as the SDK item it keeps (or, for a message written without
    one, the item that says the same)."""
    if message.structured_content_json:
        return cast(TResponseInputItem, json.loads(message.structured_content_json))
    if message.role == Role.ROLE_TOOL:
        return cast(
            TResponseInputItem,
            {
                "type": "function_call_output",
                "call_id": message.tool_call_id,
                "output": message.content,
            },
        )
    role = _ROLE_NAMES.get(message.role, "user")
    return cast(TResponseInputItem, {"role": role, "content": message.content})


def messages_to_items(messages: Sequence[Message]) -> list[TResponseInputItem]:
    """`message_to_item` for each message: item texts parsed in one go (one
    `json.loads` of their array costs a third of a call per item)."""
    texts = [m.structured_content_json for m in messages]
    if all(texts):
        return cast(list[TResponseInputItem], json.loads("[" + ",".join(texts) + "]"))
    return [message_to_item(m) for m in messages]


class ChatStoreSession(SessionABC):
    """An OpenAI Agents SDK session kept in chatstore.

    Args:
        session_id: The SDK's session id, used as the chatstore session id: 1 to 128
            printable characters, unique in the tenant.
        target: The server, `host:port` (default `CHATSTORE_TARGET`, else
            127.0.0.1:50051); ignored with `client`.
        tenant_id: The tenant; defaults to the client's.
        client: An `AsyncChatStoreClient` to use (left open by `close`).
        session_settings: The SDK's settings: `limit` is the default of `get_items`.
        agent_id: Recorded on the session when this creates it (at most 128
            characters).
        **client_options: Passed to `AsyncChatStoreClient` (`api_key`, `tls`,
            `timeout`, ...).

    Items are limited as messages are: each at most the server's
    `max_content_chars` (100,000 by default) as JSON, 1,000 per `add_items`.
    """

    def __init__(
        self,
        session_id: str,
        target: str | None = None,
        *,
        tenant_id: str | None = None,
        client: AsyncChatStoreClient | None = None,
        session_settings: SessionSettings | None = None,
        agent_id: str = "",
        **client_options: Any,
    ) -> None:
        self.session_id = session_id
        self.session_settings = session_settings or SessionSettings()
        self._clients = Clients(target, tenant_id, client, None, client_options)
        self._tenant_id = tenant_id
        self._agent_id = agent_id

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The history, oldest first: the newest `limit` items (default
        `session_settings.limit`; None means all, 0 none). Empty for a session never
        written."""
        limit = resolve_session_limit(limit, self.session_settings)
        if limit == 0:
            return []
        client = self._clients.aio
        try:
            if limit is None or limit < 0:
                pager = client.list_messages(
                    self.session_id, page_size=_PAGE, tenant_id=self._tenant_id
                )
                messages = []
                async for page in pager.pages():  # by page: no await per message
                    messages += page.items
            else:
                pages = client.list_messages(
                    self.session_id,
                    newest_first=True,
                    page_size=min(limit, _PAGE),
                    tenant_id=self._tenant_id,
                )
                messages = []
                async for message in pages:
                    messages.append(message)
                    if len(messages) == limit:
                        break
                messages.reverse()
        except NotFound:
            return []
        return messages_to_items(messages)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append `items` in one atomic, idempotent call (creating the session on
        first use)."""
        if not items:
            return
        messages = [item_to_message(cast(Mapping[str, Any], item)) for item in items]
        client = self._clients.aio
        # One request id for both tries: a retry after the session is created is
        # the same append.
        request_id = str(uuid.uuid4())
        try:
            await client.append_messages(
                self.session_id, messages, request_id=request_id, tenant_id=self._tenant_id
            )
        except NotFound:
            await ensure_session(
                client, self.session_id, agent_id=self._agent_id, tenant_id=self._tenant_id
            )
            await client.append_messages(
                self.session_id, messages, request_id=request_id, tenant_id=self._tenant_id
            )

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item; None when there is none."""
        try:
            response = await self._clients.aio.rewind_session(
                self.session_id, remove_count=1, tenant_id=self._tenant_id
            )
        except NotFound:
            return None
        if not response.removed_messages:
            return None
        return message_to_item(response.removed_messages[0])

    async def clear_session(self) -> None:
        """Remove the session and everything in it."""
        with contextlib.suppress(NotFound):
            await self._clients.aio.delete_session(
                self.session_id, purge=True, tenant_id=self._tenant_id
            )

    async def close(self) -> None:
        """Close the client if this session made it."""
        await self._clients.aclose()
