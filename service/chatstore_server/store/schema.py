"""The tables, as SQLAlchemy Core: the latest shape that the Alembic migrations build.

The migrations in `migrations/versions` are the only way the schema is created or
changed; a test checks that they and this module describe the same schema. Column names
are the proto's field names.

Every table carries `tenant_id`, and every primary key, unique constraint and foreign
key starts with it: a tenant's rows are found (and, on Citus, co-located and routed to
one worker) by it, and ids are unique within a tenant, never across tenants.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from chatstore_server.store.types import UTCDateTime, UUIDType, json_type

# Deterministic constraint names, so migrations diff the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TENANT_ID_MAX_CHARS = 128
SESSION_ID_MAX_CHARS = 128
AGENT_ID_MAX_CHARS = 128
TITLE_MAX_CHARS = 200
MODEL_MAX_CHARS = 128
PERSONA_ID_MAX_CHARS = 128
CHANNEL_MAX_CHARS = 64
ACCOUNT_ID_MAX_CHARS = 128
PEER_ID_MAX_CHARS = 128
LABEL_KEY_MAX_CHARS = 63
LABEL_VALUE_MAX_CHARS = 255
PREVIEW_CHARS = 200
TOOL_CALL_ID_MAX_CHARS = 256
NAME_MAX_CHARS = 128
CHECKPOINT_LABEL_MAX_CHARS = 200
CHECKPOINT_ID_MAX_CHARS = 128
NAMESPACE_MAX_CHARS = 128
PAYLOAD_TYPE_MAX_CHARS = 128
TASK_ID_MAX_CHARS = 128
TASK_PATH_MAX_CHARS = 512
CHANNEL_NAME_MAX_CHARS = 256
SHARED_STATE_NAME_MAX_CHARS = 300
REQUEST_ID_MAX_CHARS = 128

# The key of a live keyed session is unique per (tenant, agent): GetOrCreateSession
# relies on it. Soft-deleted sessions give their key up.
_LIVE_KEYED = "delete_time IS NULL AND key_channel IS NOT NULL"

metadata = MetaData(naming_convention=NAMING_CONVENTION)

HAS_AGENT = "agent_id <> ''"
"""The rows of the agent filter's index: a query filtering on the agent must carry
this condition too (`store.session_list`) for a planner to use the index."""


def _partial_index(columns: tuple[str, ...], where: str) -> Index:
    """An index (named by the convention) that holds only the rows where `where` holds."""
    return Index(None, *columns, sqlite_where=text(where), postgresql_where=text(where))


def _session_reference() -> ForeignKeyConstraint:
    """A child table's reference to its session: by tenant and id, so that on Citus the
    two rows are co-located (same distribution column) and the reference is checked on
    one worker. Deleting a session deletes its history."""
    return ForeignKeyConstraint(
        ["tenant_id", "session_id"], ["sessions.tenant_id", "sessions.id"], ondelete="CASCADE"
    )


sessions = Table(
    "sessions",
    metadata,
    # Added by 0006: every key starts with tenant_id (the distribution column on Citus);
    # a session id is unique within its tenant only, and any string of 1 to 128 printable
    # characters (server-assigned ones are UUIDs).
    Column("id", String(SESSION_ID_MAX_CHARS), nullable=False),
    Column("tenant_id", String(TENANT_ID_MAX_CHARS), nullable=False),
    Column("agent_id", String(AGENT_ID_MAX_CHARS), nullable=False, server_default=""),
    Column("title", String(TITLE_MAX_CHARS), nullable=False, server_default=""),
    Column("metadata", json_type(), nullable=True),
    Column("create_time", UTCDateTime(), nullable=False),
    Column("update_time", UTCDateTime(), nullable=False),
    Column("message_count", BigInteger(), nullable=False, server_default="0"),
    Column("last_seq", BigInteger(), nullable=False, server_default="0"),
    # Added by 0002: the whole session lifecycle.
    Column("key_channel", String(CHANNEL_MAX_CHARS), nullable=True),
    Column("key_account_id", String(ACCOUNT_ID_MAX_CHARS), nullable=True),
    Column("key_peer_kind", String(8), nullable=True),
    Column("key_peer_id", String(PEER_ID_MAX_CHARS), nullable=True),
    Column("status", String(16), nullable=False, server_default="ACTIVE"),
    Column("retention", String(16), nullable=False, server_default="SAVED"),
    Column("access_mode", String(16), nullable=False, server_default="READ_WRITE"),
    Column("model", String(MODEL_MAX_CHARS), nullable=False, server_default=""),
    Column("persona_id", String(PERSONA_ID_MAX_CHARS), nullable=False, server_default=""),
    Column("recap", Text(), nullable=False, server_default=""),
    # A copy of session_labels, so that reads need no second query.
    Column("labels", json_type(), nullable=True),
    Column("pin_time", UTCDateTime(), nullable=True),
    Column("archive_time", UTCDateTime(), nullable=True),
    Column("delete_time", UTCDateTime(), nullable=True),
    Column("expire_time", UTCDateTime(), nullable=True),
    Column("last_message_time", UTCDateTime(), nullable=True),
    Column("input_tokens", BigInteger(), nullable=False, server_default="0"),
    Column("output_tokens", BigInteger(), nullable=False, server_default="0"),
    Column("total_tokens", BigInteger(), nullable=False, server_default="0"),
    Column("event_count", BigInteger(), nullable=False, server_default="0"),
    Column("checkpoint_count", BigInteger(), nullable=False, server_default="0"),
    Column("size_bytes", BigInteger(), nullable=False, server_default="0"),
    Column("last_message_preview", String(PREVIEW_CHARS), nullable=False, server_default=""),
    # Bumped by every write; the etag is derived from it.
    Column("revision", BigInteger(), nullable=False, server_default="1"),
    # Added by 0003: the run log, compaction and forks.
    Column("last_event_seq", BigInteger(), nullable=False, server_default="0"),
    Column("compacted_through_seq", BigInteger(), nullable=False, server_default="0"),
    Column("fork_session_id", String(SESSION_ID_MAX_CHARS), nullable=True),
    Column("fork_message_seq", BigInteger(), nullable=True),
    Column("fork_event_seq", BigInteger(), nullable=True),
    Column("fork_checkpoint_id", String(CHECKPOINT_ID_MAX_CHARS), nullable=True),
    PrimaryKeyConstraint("tenant_id", "id"),
    # ListSessions orders (keyset on (order column, id)) and filters. The filters'
    # indexes hold only the sessions that have the value (migration 0005): every append
    # moves update_time, so each index holding it is rewritten by every append.
    Index(None, "tenant_id", "update_time", "id"),
    Index(None, "tenant_id", "create_time", "id"),
    Index(None, "tenant_id", "title", "id"),
    _partial_index(("tenant_id", "agent_id", "update_time", "id"), HAS_AGENT),
    _partial_index(("tenant_id", "key_channel", "update_time", "id"), "key_channel IS NOT NULL"),
    _partial_index(("tenant_id", "key_peer_id", "update_time", "id"), "key_peer_id IS NOT NULL"),
    Index(None, "tenant_id", "status"),
    Index(
        "uq_sessions_live_key",
        "tenant_id",
        "agent_id",
        "key_channel",
        "key_account_id",
        "key_peer_kind",
        "key_peer_id",
        unique=True,
        sqlite_where=text(_LIVE_KEYED),
        postgresql_where=text(_LIVE_KEYED),
    ),
    # The sweeper: what has expired, what has gone idle.
    _partial_index(("expire_time",), "expire_time IS NOT NULL"),
    Index(None, "status", "update_time"),
)

session_labels = Table(
    "session_labels",
    metadata,
    Column("tenant_id", String(TENANT_ID_MAX_CHARS), nullable=False),
    Column("session_id", String(SESSION_ID_MAX_CHARS), nullable=False),
    Column("key", String(LABEL_KEY_MAX_CHARS), nullable=False),
    Column("value", String(LABEL_VALUE_MAX_CHARS), nullable=False),
    PrimaryKeyConstraint("tenant_id", "session_id", "key"),
    _session_reference(),
    # ListSessions' label filter: which sessions of a tenant carry key=value.
    Index(None, "tenant_id", "key", "value"),
)

messages = Table(
    "messages",
    metadata,
    Column("tenant_id", String(TENANT_ID_MAX_CHARS), nullable=False),
    Column("session_id", String(SESSION_ID_MAX_CHARS), nullable=False),
    Column("seq", BigInteger(), nullable=False),
    Column("id", UUIDType(), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_count", Integer(), nullable=True),
    Column("create_time", UTCDateTime(), nullable=False),
    # Added by 0003.
    Column("tool_call_id", String(TOOL_CALL_ID_MAX_CHARS), nullable=False, server_default=""),
    Column("size_bytes", BigInteger(), nullable=False, server_default="0"),
    # Added by 0004: the message's other fields (content since 0009, tool calls,
    # structured content, name, agent, model, metadata; id, role, token count, create
    # time and tool call id again) as a serialized chatstore.v1.Message
    # (`store.bodies`), and its context-window tokens.
    Column("body", LargeBinary(), nullable=False),
    Column("token_estimate", BigInteger(), nullable=False),
    # One message per (session, seq): the index ListMessages pages on. Message ids are
    # unique within their session.
    PrimaryKeyConstraint("tenant_id", "session_id", "seq"),
    UniqueConstraint("tenant_id", "session_id", "id"),
    _session_reference(),
)

events = Table(
    "events",
    metadata,
    Column("tenant_id", String(TENANT_ID_MAX_CHARS), nullable=False),
    Column("session_id", String(SESSION_ID_MAX_CHARS), nullable=False),
    Column("seq", BigInteger(), nullable=False),
    # Server-assigned (UUID v7) and never looked up: no index of its own.
    Column("id", UUIDType(), nullable=False),
    Column("type", String(16), nullable=False),
    Column("payload", json_type(), nullable=False),
    Column("create_time", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("tenant_id", "session_id", "seq"),
    _session_reference(),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("tenant_id", String(TENANT_ID_MAX_CHARS), nullable=False),
    Column("session_id", String(SESSION_ID_MAX_CHARS), nullable=False),
    # Added by 0007: caller-chosen ids (LangGraph's), in namespaces.
    Column("id", String(CHECKPOINT_ID_MAX_CHARS), nullable=False),
    Column("message_seq", BigInteger(), nullable=False),
    Column("event_seq", BigInteger(), nullable=False),
    Column("label", String(CHECKPOINT_LABEL_MAX_CHARS), nullable=False, server_default=""),
    Column("description", Text(), nullable=False, server_default=""),
    Column("tags", json_type(), nullable=True),
    Column("create_time", UTCDateTime(), nullable=False),
    # Added by 0007: the saved state (opaque), what it is, and the caller's metadata.
    Column("namespace", String(NAMESPACE_MAX_CHARS), nullable=False, server_default=""),
    Column("parent_id", String(CHECKPOINT_ID_MAX_CHARS), nullable=False, server_default=""),
    Column("payload", LargeBinary(), nullable=True),
    Column("payload_type", String(PAYLOAD_TYPE_MAX_CHARS), nullable=False, server_default=""),
    Column("metadata", json_type(), nullable=True),
    PrimaryKeyConstraint("tenant_id", "session_id", "namespace", "id"),
    _session_reference(),
    # ListCheckpoints: by age, keyset on (create_time, id).
    Index(None, "tenant_id", "session_id", "create_time", "id"),
)

# Added by 0007: writes of tasks stored against a checkpoint (LangGraph's pending
# writes); they go with their checkpoint.
checkpoint_writes = Table(
    "checkpoint_writes",
    metadata,
    Column("tenant_id", String(TENANT_ID_MAX_CHARS), nullable=False),
    Column("session_id", String(SESSION_ID_MAX_CHARS), nullable=False),
    Column("namespace", String(NAMESPACE_MAX_CHARS), nullable=False),
    Column("checkpoint_id", String(CHECKPOINT_ID_MAX_CHARS), nullable=False),
    Column("task_id", String(TASK_ID_MAX_CHARS), nullable=False),
    Column("idx", Integer(), nullable=False),
    Column("channel", String(CHANNEL_NAME_MAX_CHARS), nullable=False),
    Column("payload", LargeBinary(), nullable=True),
    Column("payload_type", String(PAYLOAD_TYPE_MAX_CHARS), nullable=False, server_default=""),
    Column("task_path", String(TASK_PATH_MAX_CHARS), nullable=False, server_default=""),
    PrimaryKeyConstraint("tenant_id", "session_id", "namespace", "checkpoint_id", "task_id", "idx"),
    # Writes may come before their checkpoint (LangGraph stores both at once), so
    # they refer to the session only; the store deletes them with their checkpoint.
    ForeignKeyConstraint(
        ["tenant_id", "session_id"], ["sessions.tenant_id", "sessions.id"], ondelete="CASCADE"
    ),
)

# Added by 0007: state shared by a tenant's sessions (an app's, a user's in an app).
shared_states = Table(
    "shared_states",
    metadata,
    Column("tenant_id", String(TENANT_ID_MAX_CHARS), nullable=False),
    Column("name", String(SHARED_STATE_NAME_MAX_CHARS), nullable=False),
    Column("data", json_type(), nullable=False),
    Column("revision", BigInteger(), nullable=False),
    Column("create_time", UTCDateTime(), nullable=False),
    Column("update_time", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("tenant_id", "name"),
)

# What an append with a request_id did, so that a retry returns the same result.
append_requests = Table(
    "append_requests",
    metadata,
    Column("tenant_id", String(TENANT_ID_MAX_CHARS), nullable=False),
    Column("session_id", String(SESSION_ID_MAX_CHARS), nullable=False),
    Column("kind", String(8), nullable=False),  # "message" or "event"
    Column("request_id", String(REQUEST_ID_MAX_CHARS), nullable=False),
    Column("first_seq", BigInteger(), nullable=False),
    Column("last_seq", BigInteger(), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("create_time", UTCDateTime(), nullable=False),
    # Added by 0007: what a call that removed rows answered, for its retries (the
    # rows themselves are gone): a serialized response.
    Column("result", LargeBinary(), nullable=True),
    PrimaryKeyConstraint("tenant_id", "session_id", "kind", "request_id"),
    _session_reference(),
)

DISTRIBUTED_TABLES = (
    "sessions",
    "session_labels",
    "messages",
    "events",
    "checkpoints",
    "append_requests",
    "checkpoint_writes",
    "shared_states",
)
"""Every table, in the order Citus distributes them by `tenant_id`: `sessions` first,
the others co-located with it (`store.citus`)."""
