"""The session lifecycle: routing key, status, retention, access mode, pin, archive, soft
delete, labels, token usage, size, preview, revision (etag).

Existing sessions get their derived counters (last message time and preview, size,
token usage) computed from their messages.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chatstore_server.store.types import UTCDateTime, json_type

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE_KEYED = "delete_time IS NULL AND key_channel IS NOT NULL"

_COLUMNS = [
    sa.Column("key_channel", sa.String(64), nullable=True),
    sa.Column("key_account_id", sa.String(128), nullable=True),
    sa.Column("key_peer_kind", sa.String(8), nullable=True),
    sa.Column("key_peer_id", sa.String(128), nullable=True),
    sa.Column("status", sa.String(16), server_default="ACTIVE", nullable=False),
    sa.Column("retention", sa.String(16), server_default="SAVED", nullable=False),
    sa.Column("access_mode", sa.String(16), server_default="READ_WRITE", nullable=False),
    sa.Column("model", sa.String(128), server_default="", nullable=False),
    sa.Column("persona_id", sa.String(128), server_default="", nullable=False),
    sa.Column("recap", sa.Text(), server_default="", nullable=False),
    sa.Column("labels", json_type(), nullable=True),
    sa.Column("pin_time", UTCDateTime(), nullable=True),
    sa.Column("archive_time", UTCDateTime(), nullable=True),
    sa.Column("delete_time", UTCDateTime(), nullable=True),
    sa.Column("expire_time", UTCDateTime(), nullable=True),
    sa.Column("last_message_time", UTCDateTime(), nullable=True),
    sa.Column("input_tokens", sa.BigInteger(), server_default="0", nullable=False),
    sa.Column("output_tokens", sa.BigInteger(), server_default="0", nullable=False),
    sa.Column("total_tokens", sa.BigInteger(), server_default="0", nullable=False),
    sa.Column("event_count", sa.BigInteger(), server_default="0", nullable=False),
    sa.Column("checkpoint_count", sa.BigInteger(), server_default="0", nullable=False),
    sa.Column("size_bytes", sa.BigInteger(), server_default="0", nullable=False),
    sa.Column("last_message_preview", sa.String(200), server_default="", nullable=False),
    sa.Column("revision", sa.BigInteger(), server_default="1", nullable=False),
]

_INDEXES = [
    ("ix_sessions_tenant_id_create_time_id", ["tenant_id", "create_time", "id"]),
    ("ix_sessions_tenant_id_title_id", ["tenant_id", "title", "id"]),
    (
        "ix_sessions_tenant_id_key_channel_update_time_id",
        ["tenant_id", "key_channel", "update_time", "id"],
    ),
    (
        "ix_sessions_tenant_id_key_peer_id_update_time_id",
        ["tenant_id", "key_peer_id", "update_time", "id"],
    ),
    ("ix_sessions_tenant_id_status", ["tenant_id", "status"]),
    ("ix_sessions_expire_time", ["expire_time"]),
    ("ix_sessions_status_update_time", ["status", "update_time"]),
]


def _backfill() -> None:
    byte_length = (
        "octet_length(m.content)"
        if op.get_bind().dialect.name == "postgresql"
        else "length(CAST(m.content AS BLOB))"
    )
    newest = "FROM messages m WHERE m.session_id = sessions.id AND m.seq = sessions.last_seq"
    every = "FROM messages m WHERE m.session_id = sessions.id"
    op.execute(
        f"""
        UPDATE sessions SET
          last_message_time = (SELECT m.create_time {newest}),
          last_message_preview = COALESCE((SELECT substr(m.content, 1, 200) {newest}), ''),
          size_bytes = COALESCE((SELECT SUM({byte_length}) {every}), 0),
          input_tokens = COALESCE(
            (SELECT SUM(m.token_count) {every} AND m.role <> 'assistant'), 0),
          output_tokens = COALESCE(
            (SELECT SUM(m.token_count) {every} AND m.role = 'assistant'), 0)
        WHERE last_seq > 0
        """
    )
    op.execute("UPDATE sessions SET total_tokens = input_tokens + output_tokens")


def upgrade() -> None:
    for column in _COLUMNS:
        op.add_column("sessions", column)
    for name, columns in _INDEXES:
        op.create_index(name, "sessions", columns)
    op.create_index(
        "uq_sessions_live_key",
        "sessions",
        ["tenant_id", "agent_id", "key_channel", "key_account_id", "key_peer_kind", "key_peer_id"],
        unique=True,
        sqlite_where=sa.text(_LIVE_KEYED),
        postgresql_where=sa.text(_LIVE_KEYED),
    )
    op.create_table(
        "session_labels",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("key", sa.String(63), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_session_labels_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "key", name=op.f("pk_session_labels")),
    )
    op.create_index(
        "ix_session_labels_tenant_id_key_value", "session_labels", ["tenant_id", "key", "value"]
    )
    _backfill()


def downgrade() -> None:
    op.drop_table("session_labels")
    op.drop_index("uq_sessions_live_key", "sessions")
    for name, _ in _INDEXES:
        op.drop_index(name, "sessions")
    with op.batch_alter_table("sessions") as batch:
        for column in _COLUMNS:
            batch.drop_column(column.name)
