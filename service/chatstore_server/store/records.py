"""Plain, frozen records that the repositories take and return.

Field names are the proto's names (`create_time`, `seq`, `tenant_id`): one vocabulary
from the wire to the columns. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar


class Role(enum.StrEnum):
    """Who wrote a message; the stored value is the chat-completions role name."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """A tool call of an assistant message; `arguments` is the model's JSON text, verbatim."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A stored session: metadata and counters, never its messages."""

    id: uuid.UUID
    tenant_id: str
    agent_id: str
    title: str
    metadata: dict[str, Any] | None
    create_time: datetime
    update_time: datetime
    message_count: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append; the store assigns `seq` (and `id`, `create_time` when None)."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCallRecord, ...] = ()
    token_count: int | None = None
    id: uuid.UUID | None = None
    create_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A stored message."""

    id: uuid.UUID
    session_id: uuid.UUID
    seq: int
    role: Role
    content: str
    tool_calls: tuple[ToolCallRecord, ...]
    token_count: int | None
    create_time: datetime


ItemT = TypeVar("ItemT")
CursorT = TypeVar("CursorT")


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT, CursorT]):
    """One page of a keyset-paginated listing.

    `next_cursor` is the position after the last item, or None when nothing follows.
    """

    items: list[ItemT]
    next_cursor: CursorT | None
