"""History: full message fields, the event log, checkpoints, compaction, forks, and
request ids for idempotent appends.

Existing messages get their `size_bytes` computed from their content.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from chatstore_server.store.types import UTCDateTime, json_type

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SESSION_COLUMNS: list[sa.Column[Any]] = [
    sa.Column("last_event_seq", sa.BigInteger(), server_default="0", nullable=False),
    sa.Column("compacted_through_seq", sa.BigInteger(), server_default="0", nullable=False),
    sa.Column("fork_session_id", sa.Uuid(), nullable=True),
    sa.Column("fork_message_seq", sa.BigInteger(), nullable=True),
    sa.Column("fork_event_seq", sa.BigInteger(), nullable=True),
    sa.Column("fork_checkpoint_id", sa.Uuid(), nullable=True),
]
_MESSAGE_COLUMNS: list[sa.Column[Any]] = [
    sa.Column("structured_content", json_type(), nullable=True),
    sa.Column("tool_call_id", sa.String(256), server_default="", nullable=False),
    sa.Column("name", sa.String(128), server_default="", nullable=False),
    sa.Column("agent_id", sa.String(128), server_default="", nullable=False),
    sa.Column("model", sa.String(128), server_default="", nullable=False),
    sa.Column("metadata", json_type(), nullable=True),
    sa.Column("size_bytes", sa.BigInteger(), server_default="0", nullable=False),
]


def _session_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["session_id"],
        ["sessions.id"],
        name=op.f(f"fk_{table}_session_id_sessions"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    for column in _SESSION_COLUMNS:
        op.add_column("sessions", column)
    for column in _MESSAGE_COLUMNS:
        op.add_column("messages", column)
    byte_length = (
        "octet_length(content)"
        if op.get_bind().dialect.name == "postgresql"
        else "length(CAST(content AS BLOB))"
    )
    op.execute(f"UPDATE messages SET size_bytes = {byte_length}")
    op.create_table(
        "events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("payload", json_type(), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        _session_fk("events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("session_id", "seq", name=op.f("uq_events_session_id_seq")),
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("message_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(200), server_default="", nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("tags", json_type(), nullable=True),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        _session_fk("checkpoints"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoints")),
    )
    op.create_index(
        "ix_checkpoints_session_id_create_time_id",
        "checkpoints",
        ["session_id", "create_time", "id"],
    )
    op.create_table(
        "append_requests",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        _session_fk("append_requests"),
        sa.PrimaryKeyConstraint(
            "session_id", "kind", "request_id", name=op.f("pk_append_requests")
        ),
    )


def downgrade() -> None:
    op.drop_table("append_requests")
    op.drop_table("checkpoints")
    op.drop_table("events")
    with op.batch_alter_table("messages") as batch:
        for column in _MESSAGE_COLUMNS:
            batch.drop_column(column.name)
    with op.batch_alter_table("sessions") as batch:
        for column in _SESSION_COLUMNS:
            batch.drop_column(column.name)
