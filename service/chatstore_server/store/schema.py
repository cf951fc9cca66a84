"""The tables, as SQLAlchemy Core: the latest shape that the Alembic migrations build.

The migrations in `migrations/versions` are the only way the schema is created or
changed; a test checks that they and this module describe the same schema. Column names
are the proto's field names.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from chatstore_server.store.types import UTCDateTime, json_type

# Deterministic constraint names, so migrations diff the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TENANT_ID_MAX_CHARS = 128
AGENT_ID_MAX_CHARS = 128
TITLE_MAX_CHARS = 200

metadata = MetaData(naming_convention=NAMING_CONVENTION)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("tenant_id", String(TENANT_ID_MAX_CHARS), nullable=False),
    Column("agent_id", String(AGENT_ID_MAX_CHARS), nullable=False, server_default=""),
    Column("title", String(TITLE_MAX_CHARS), nullable=False, server_default=""),
    Column("metadata", json_type(), nullable=True),
    Column("create_time", UTCDateTime(), nullable=False),
    Column("update_time", UTCDateTime(), nullable=False),
    Column("message_count", BigInteger(), nullable=False, server_default="0"),
    Column("last_seq", BigInteger(), nullable=False, server_default="0"),
    # ListSessions: a tenant's sessions, newest first, keyset on (update_time, id).
    Index(None, "tenant_id", "update_time", "id"),
    Index(None, "tenant_id", "agent_id", "update_time", "id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column(
        "session_id",
        Uuid(),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("seq", BigInteger(), nullable=False),
    Column("role", String(16), nullable=False),
    Column("content", Text(), nullable=False, server_default=""),
    Column("tool_calls", json_type(), nullable=True),
    Column("token_count", Integer(), nullable=True),
    Column("create_time", UTCDateTime(), nullable=False),
    # One message per (session, seq); also the index that ListMessages pages on.
    UniqueConstraint("session_id", "seq"),
)
