"""Plain, immutable records that the repositories take and return.

Field names are the proto's names (`create_time`, `seq`, `tenant_id`): one vocabulary
from the wire to the columns. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Generic, NamedTuple, TypeVar


class _Absent(enum.Enum):
    ABSENT = "ABSENT"


ABSENT: Final = _Absent.ABSENT
"""No value, where None is a value (a JSON null): `NewMessage.structured_content`."""


class Role(enum.StrEnum):
    """Who wrote a message; the stored value is the chat-completions role name."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


class SessionStatus(enum.StrEnum):
    """A session's activity state."""

    ACTIVE = "ACTIVE"
    IDLE = "IDLE"
    COMPACTED = "COMPACTED"
    ARCHIVED = "ARCHIVED"


class Retention(enum.StrEnum):
    """Whether a session expires."""

    EPHEMERAL = "EPHEMERAL"
    SAVED = "SAVED"


class AccessMode(enum.StrEnum):
    """Whether a session accepts new history."""

    READ_WRITE = "READ_WRITE"
    READ_ONLY = "READ_ONLY"


class PeerKind(enum.StrEnum):
    """Who a keyed session talks to."""

    DM = "DM"
    GROUP = "GROUP"


class SessionKey(NamedTuple):
    """A session's routing key; with the agent, unique among a tenant's live sessions.

    This and the other parts of a `SessionRecord` are named tuples, as it is: one is
    built for nearly every call.
    """

    channel: str
    account_id: str
    peer_kind: PeerKind
    peer_id: str


class TokenUsage(NamedTuple):
    """Tokens used in a session."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """Server-wide lifecycle periods."""

    ephemeral_ttl: timedelta = timedelta(hours=24)
    """An EPHEMERAL session expires this long after its last write."""
    deleted_retention: timedelta = timedelta(days=30)
    """A soft-deleted session is purged this long after its deletion."""
    idle_after: timedelta = timedelta(minutes=30)
    """An ACTIVE or COMPACTED session with no write for this long becomes IDLE."""


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """A tool call of an assistant message; `arguments` is the model's JSON text, verbatim."""

    id: str
    name: str
    arguments: str


class RowVersion(NamedTuple):
    """Which version of which session row: every write to the row bumps its
    `revision`; a session purged and made again under the same id starts again at
    revision 1 but has a new `create_time`. So a copy of the row made at one version is
    current for as long as the row's version is that one."""

    revision: int
    create_time: datetime


class SessionRecord(NamedTuple):
    """A stored session: metadata and counters, never its messages.

    A named tuple rather than a frozen dataclass, like `MessageRecord`: one is built for
    nearly every call, and a frozen dataclass's `__init__` sets its 31 fields one
    `object.__setattr__` at a time (about four times the cost).
    """

    id: str
    """Unique within the tenant: any 1 to 128 printable characters."""
    tenant_id: str
    agent_id: str
    title: str
    metadata: dict[str, Any] | None
    create_time: datetime
    update_time: datetime
    message_count: int
    last_seq: int
    key: SessionKey | None
    status: SessionStatus
    retention: Retention
    access_mode: AccessMode
    model: str
    persona_id: str
    recap: str
    labels: dict[str, str]
    pin_time: datetime | None
    archive_time: datetime | None
    delete_time: datetime | None
    expire_time: datetime | None
    last_message_time: datetime | None
    token_usage: TokenUsage
    event_count: int
    checkpoint_count: int
    size_bytes: int
    last_message_preview: str
    revision: int
    """Bumped by every write; the API's etag is derived from it."""
    last_event_seq: int = 0
    compacted_through_seq: int = 0
    fork_source: ForkSource | None = None


class ForkSource(NamedTuple):
    """Where a forked session came from."""

    session_id: str
    message_seq: int
    event_seq: int
    checkpoint_id: str | None


@dataclass(frozen=True, slots=True)
class NewSession:
    """The caller-settable fields of a session to create."""

    agent_id: str = ""
    title: str = ""
    metadata: dict[str, Any] | None = None
    key: SessionKey | None = None
    retention: Retention = Retention.SAVED
    access_mode: AccessMode = AccessMode.READ_WRITE
    model: str = ""
    persona_id: str = ""
    recap: str = ""
    labels: dict[str, str] | None = None
    token_usage: TokenUsage | None = None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append; the store assigns `seq` (and `id`, `create_time` when None)."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCallRecord, ...] = ()
    token_count: int | None = None
    id: uuid.UUID | None = None
    create_time: datetime | None = None
    structured_content: Any = ABSENT
    """Any JSON value (None is JSON's null); `ABSENT` means none."""
    structured_content_json: str | None = None
    """`structured_content` as the caller's JSON text, kept verbatim; None when the
    caller gave a value, not text."""
    tool_call_id: str = ""
    name: str = ""
    agent_id: str = ""
    model: str = ""
    metadata: dict[str, Any] | None = None
    metadata_json: str | None = None
    """`metadata` as the caller's JSON text, kept verbatim; None when given as a value."""


class MessageRecord(NamedTuple):
    """A stored message: its columns, and its `body` (`store.bodies`) for the rest.

    `store.bodies.decode(record.body)` gives the other fields (content, create time,
    token count, tool calls, structured content, metadata, ...); the API layer parses
    the body straight into its Message. A named tuple rather than a frozen dataclass: a
    page builds up to a thousand of them, and a frozen dataclass's `__init__` costs
    about four times as much.
    """

    id: str
    """The message's UUID, as canonical text (what the API sends on)."""
    session_id: str
    seq: int
    role: Role
    body: bytes
    """Every field but the session id, seq and compaction mark, as a serialized
    chatstore.v1.Message (`store.bodies`)."""
    token_estimate: int
    """What the message counts for in a context window: its `token_count` if the
    writer gave one, else an estimate (`store.context.message_tokens`)."""
    size_bytes: int = 0
    """UTF-8 bytes of its content plus the JSON text of `structured_content`."""
    compacted: bool = False
    """Whether the session's compaction covers this message (derived, not stored)."""


class StoredMessage(NamedTuple):
    """A stored message as a page of a listing passes it on: what the API's Message is
    built from (with the session's id, which the caller knows), and nothing else.

    A page reads three columns per message: its body holds the rest.
    """

    seq: int
    body: bytes
    """Every field but the session id, seq and compaction mark, as a serialized
    chatstore.v1.Message (`store.bodies`)."""
    compacted: int
    """Whether the session's compaction covers this message: true or nonzero (SQLite
    gives 0 or 1, PostgreSQL a bool)."""


@dataclass(frozen=True, slots=True)
class EncodedPage:
    """A page of a session's messages, each an encoded chatstore.v1.Message
    (`store.encoded`), with their seqs; `next_cursor` as in `Page`."""

    messages: list[bytes]
    seqs: list[int]
    next_cursor: int | None


class WindowMessage(NamedTuple):
    """A stored message as a context window (or a session's FULL view) reads it: a
    `StoredMessage`'s fields, then what choosing a window takes."""

    seq: int
    body: bytes
    """Every field but the session id, seq and compaction mark, as a serialized
    chatstore.v1.Message (`store.bodies`)."""
    compacted: bool
    """Whether the session's compaction covers this message."""
    role: Role
    token_estimate: int
    """What the message counts for in a context window (`MessageRecord.token_estimate`)."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: its payload kind and the payload's fields."""

    type: str
    payload: dict[str, Any]
    create_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A stored run-log event."""

    id: uuid.UUID
    session_id: str
    seq: int
    type: str
    payload: dict[str, Any]
    create_time: datetime


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A named point in a session's history, with the state saved there (if any)."""

    id: str
    session_id: str
    message_seq: int
    event_seq: int
    label: str
    description: str
    tags: tuple[str, ...]
    create_time: datetime
    namespace: str = ""
    parent_id: str = ""
    payload: bytes | None = None
    """None when not read (a BASIC listing) or when there is none."""
    payload_type: str = ""
    metadata: dict[str, Any] | None = None
    pending_writes: tuple[CheckpointWriteRecord, ...] = ()
    """Set when read whole (`CheckpointRepository.get`, FULL listings)."""


@dataclass(frozen=True, slots=True)
class NewCheckpoint:
    """A checkpoint to create; None seqs mean the session's newest, no id a new one."""

    id: str | None = None
    namespace: str = ""
    parent_id: str = ""
    message_seq: int | None = None
    event_seq: int | None = None
    label: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    payload: bytes | None = None
    payload_type: str = ""
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CheckpointWriteRecord:
    """One write of a task stored against a checkpoint (LangGraph's pending write)."""

    task_id: str
    index: int
    channel: str
    payload: bytes | None
    payload_type: str = ""
    task_path: str = ""


@dataclass(frozen=True, slots=True)
class SharedStateRecord:
    """A state shared by a tenant's sessions: an app's, or a user's within an app."""

    name: str
    data: dict[str, Any]
    revision: int
    """0 when never written."""
    update_time: datetime | None


@dataclass(frozen=True, slots=True)
class SharedStatePatchRecord:
    """A patch of a shared state, under an optional revision: a JSON merge patch
    (RFC 7386), or with `replace_keys` a dict update (`shared_states.patched`)."""

    name: str
    patch: dict[str, Any]
    revision: int | None = None
    replace_keys: bool = False


@dataclass(frozen=True, slots=True)
class SessionChangeRecord:
    """What an append changes besides its rows, in its transaction: session fields
    (`SessionRepository.update`'s), a merge patch of the metadata, shared states."""

    fields: dict[str, Any]
    metadata_patch: dict[str, Any] | None = None
    shared_state_patches: tuple[SharedStatePatchRecord, ...] = ()
    metadata_replace_keys: bool = False
    """Apply `metadata_patch` as a dict update, not a merge patch."""


@dataclass(frozen=True, slots=True)
class ContextWindowRecord:
    """The recap and the newest uncompacted messages that fit a budget, oldest first."""

    recap: str
    messages: list[WindowMessage]
    compacted_through_seq: int
    token_count: int
    truncated: bool


ItemT = TypeVar("ItemT")
CursorT = TypeVar("CursorT")


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT, CursorT]):
    """One page of a keyset-paginated listing.

    `next_cursor` is the position after the last item, or None when nothing follows.
    """

    items: list[ItemT]
    next_cursor: CursorT | None
