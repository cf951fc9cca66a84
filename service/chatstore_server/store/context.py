"""The context window: what an agent sends its model next.

The session's recap, then the newest uncompacted messages that fit the budget, oldest
first. Messages are read newest first in short batches, so the work is bounded by the
budget, not by the history's length.
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple

from sqlalchemy import bindparam, select

from chatstore_server.store.database import Database
from chatstore_server.store.errors import NotFoundError
from chatstore_server.store.prepared import Prepared
from chatstore_server.store.records import (
    ABSENT,
    ContextWindowRecord,
    NewMessage,
    Role,
    WindowMessage,
)
from chatstore_server.store.rows import window_columns
from chatstore_server.store.schema import messages, sessions
from chatstore_server.store.scope import session_columns, session_params

MAX_MESSAGES = 1_000
_BATCH = 200
# A session's messages above `floor` and below `before`, newest first, at most `limit`;
# those up to `compacted_through_seq` marked compacted.
NEWEST_FIRST = Prepared(
    select(*window_columns(bindparam("compacted_through_seq")))
    .where(
        messages.c.tenant_id == bindparam("tenant_id"),
        messages.c.session_id == bindparam("session_id"),
        messages.c.seq > bindparam("floor"),
        messages.c.seq < bindparam("before"),
    )
    .order_by(messages.c.seq.desc())
    .limit(bindparam("limit"))
)


class _Window(NamedTuple):
    """What choosing a window reads of the session row (not the whole row)."""

    compacted_through_seq: int
    recap: str
    last_seq: int


_WINDOW_OF_SESSION = session_columns(
    sessions.c.compacted_through_seq, sessions.c.recap, sessions.c.last_seq
)
_CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    """The token estimate of a text: one token per 4 characters, rounded up."""
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def message_tokens(message: NewMessage) -> int:
    """A message's tokens: its `token_count` if known, else an estimate over its
    content, structured content (as JSON) and tool-call text, plus 4 for framing.

    Worked out once, when the message is appended, and stored as `token_estimate`.
    """
    if message.token_count is not None:
        return message.token_count
    chars = len(message.content)
    if message.structured_content is not ABSENT:
        chars += len(
            message.structured_content_json
            or json.dumps(message.structured_content, separators=(",", ":"))
        )
    chars += sum(len(c.id) + len(c.name) + len(c.arguments) for c in message.tool_calls)
    return math.ceil(chars / _CHARS_PER_TOKEN) + _MESSAGE_OVERHEAD_TOKENS


async def context_window(
    database: Database,
    tenant_id: str,
    session_id: str,
    *,
    max_messages: int,
    max_tokens: int | None,
) -> ContextWindowRecord:
    """The recap plus the newest uncompacted messages within both budgets, oldest first.

    The recap's estimate counts against `max_tokens`. A window never starts with a tool
    result: its call lies outside the window, so the result is dropped with it.

    Args:
        max_messages: At most this many messages (1 to `MAX_MESSAGES`).
        max_tokens: At most this many tokens, recap included; None for no limit.

    Raises:
        NotFoundError: No such session in the tenant.
        UnavailableError: The database cannot be reached.
    """
    async with database.read() as conn:
        found = await conn.fetch_into(
            _WINDOW_OF_SESSION, session_params(tenant_id, session_id), _Window
        )
        if not found:
            raise NotFoundError("session", session_id)
        session = found[0]
        floor = session.compacted_through_seq
        used = estimate_tokens(session.recap)
        picked: list[WindowMessage] = []
        truncated = False
        before = session.last_seq + 1
        while not truncated:
            # One row past the limit is enough to know the window is truncated.
            batch = min(_BATCH, max_messages + 1 - len(picked))
            # Every message read is above the floor: none is compacted.
            params = {
                "tenant_id": tenant_id,
                "session_id": session_id,
                "floor": floor,
                "compacted_through_seq": floor,
                "before": before,
                "limit": batch,
            }
            rows = await conn.fetch_into(NEWEST_FIRST, params, WindowMessage)
            for message in rows:
                cost = message.token_estimate
                if len(picked) == max_messages or (
                    max_tokens is not None and used + cost > max_tokens
                ):
                    truncated = True
                    break
                picked.append(message)
                used += cost
            if len(rows) < batch:
                break
            before = rows[-1].seq
    picked.reverse()
    return newest(ContextWindowRecord(session.recap, picked, floor, used, truncated), len(picked))


def newest(window: ContextWindowRecord, keep: int) -> ContextWindowRecord:
    """The window cut down to its newest `keep` messages, then past any tool result
    that no longer has its call, with the tokens recounted."""
    messages = window.messages[len(window.messages) - keep :] if keep else []
    while messages and messages[0].role is Role.TOOL:
        messages = messages[1:]
    if len(messages) == len(window.messages):
        return window
    tokens = estimate_tokens(window.recap) + sum(m.token_estimate for m in messages)
    return ContextWindowRecord(
        window.recap, messages, window.compacted_through_seq, tokens, truncated=True
    )
