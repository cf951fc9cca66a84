"""Messages in the OpenAI chat-messages format (one JSON object per JSONL line).

    {"role": "assistant", "content": null,
     "tool_calls": [{"id": "c1", "type": "function",
                     "function": {"name": "search", "arguments": "{\\"q\\": 1}"}}]}

`role`, `content` (a string; null for a tool-calling turn without text; a list of
content parts goes to `structured_content`), `tool_calls`, `tool_call_id` and `name`
map to Message fields. Any other key is kept in the message's metadata under "openai",
so an import exported again gives back the same objects. chatstore has no developer
role: `"developer"` (OpenAI's name for system instructions to reasoning models) is
stored as ROLE_SYSTEM with `{"role": "developer"}` kept under "openai", and comes back
as `"developer"`.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

from chatstore.v1 import Message, Role, ToolCall

_ROLES = {
    "user": Role.ROLE_USER,
    "assistant": Role.ROLE_ASSISTANT,
    "system": Role.ROLE_SYSTEM,
    "developer": Role.ROLE_SYSTEM,
    "tool": Role.ROLE_TOOL,
}
_NAMES = {
    Role.ROLE_USER: "user",
    Role.ROLE_ASSISTANT: "assistant",
    Role.ROLE_SYSTEM: "system",
    Role.ROLE_TOOL: "tool",
}
_KNOWN = {"role", "content", "tool_calls", "tool_call_id", "name"}
_EXTRA = "openai"


def to_message(entry: dict[str, Any]) -> Message:
    """An OpenAI chat message as a Message.

    Raises:
        ValueError: An unknown role, or a tool call that is not a function call.
    """
    role = _ROLES.get(entry.get("role", ""))
    if role is None:
        raise ValueError(f"unknown role {entry.get('role')!r}")
    message = Message(
        role=role, tool_call_id=entry.get("tool_call_id", ""), name=entry.get("name", "")
    )
    content = entry.get("content")
    if isinstance(content, str):
        message.content = content
    elif content is not None:
        json_format.ParseDict(content, message.structured_content)
    for call in entry.get("tool_calls") or ():
        if call.get("type", "function") != "function":
            raise ValueError(f"unsupported tool call type {call.get('type')!r}")
        function = call.get("function", {})
        message.tool_calls.append(
            ToolCall(id=call["id"], name=function["name"], arguments=function.get("arguments", ""))
        )
    extra = {k: v for k, v in entry.items() if k not in _KNOWN}
    if entry["role"] not in _NAMES.values():  # an alias ("developer"): keep the name
        extra["role"] = entry["role"]
    if extra:
        message.metadata.update({_EXTRA: extra})
    return message


def from_message(message: Message) -> dict[str, Any]:
    """A Message as an OpenAI chat message (the inverse of `to_message`)."""
    entry: dict[str, Any] = {"role": _NAMES[message.role]}
    if message.HasField("structured_content"):
        entry["content"] = json_format.MessageToDict(message.structured_content)
    elif message.content or not message.tool_calls:
        entry["content"] = message.content
    else:
        entry["content"] = None
    if message.tool_calls:
        entry["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id:
        entry["tool_call_id"] = message.tool_call_id
    if message.name:
        entry["name"] = message.name
    if _EXTRA in message.metadata:
        extra = message.metadata[_EXTRA]
        if isinstance(extra, struct_pb2.Struct):
            entry |= json_format.MessageToDict(extra)
    return entry
