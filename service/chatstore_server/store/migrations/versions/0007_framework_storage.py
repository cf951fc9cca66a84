"""What agent frameworks store: checkpoints with payloads, in namespaces, under the
caller's ids, with their tasks' writes; state shared across sessions; and the answers
of calls that remove rows, for their retries.

- `checkpoints`: `id` becomes text (caller-chosen ids such as LangGraph's; existing
  UUIDs become their canonical text), and gains `namespace` (part of the primary key),
  `parent_id`, `payload`, `payload_type` and `metadata`. `sessions.fork_checkpoint_id`
  becomes text with it.
- `checkpoint_writes` (LangGraph's pending writes, which may be stored before their
  checkpoint, so they refer to the session) and `shared_states` (Google ADK's
  `app:` and `user:` state) are new, keyed by tenant like every table, and distributed
  with the others on Citus.
- `append_requests.result`: a rewind's answer (its removed messages), which a retry
  under its request id returns although the rows are gone.

On SQLite the checkpoints table is rebuilt (nothing references it yet) and the
session's column is replaced in place (no rebuild of `sessions`, whose children would
go with it); on PostgreSQL and Citus the columns change in place.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from chatstore_server.store.citus import distribute_tables, is_citus
from chatstore_server.store.types import UTCDateTime, json_type

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHECKPOINT_COLUMNS = (
    "tenant_id, session_id, id, message_seq, event_seq, label, description, tags, create_time"
)
_UUID_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


def _canonical(column: str) -> str:
    """SQLite: a UUID stored as 32 hex digits, as its canonical text."""
    parts = [f"substr({column}, {start}, {length})" for start, length in _UUID_GROUPS]
    return "lower(" + " || '-' || ".join(parts) + ")"


def _with_sessions() -> sa.MetaData:
    """A MetaData that knows `sessions`' key (what checkpoints refer to), not created."""
    meta = sa.MetaData()
    sa.Table(
        "sessions",
        meta,
        sa.Column("tenant_id", sa.String(128), primary_key=True),
        sa.Column("id", sa.String(128), primary_key=True),
    )
    return meta


def _checkpoints(meta: sa.MetaData, name: str) -> sa.Table:
    """The checkpoints table as 0007 makes it."""
    return sa.Table(
        name,
        meta,
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("message_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(200), nullable=False, server_default=""),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("tags", json_type(), nullable=True),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("namespace", sa.String(128), nullable=False, server_default=""),
        sa.Column("parent_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("payload_type", sa.String(128), nullable=False, server_default=""),
        sa.Column("metadata", json_type(), nullable=True),
        sa.PrimaryKeyConstraint(
            "tenant_id", "session_id", "namespace", "id", name="pk_checkpoints"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "session_id"],
            ["sessions.tenant_id", "sessions.id"],
            name="fk_checkpoints_tenant_id_session_id_sessions",
            ondelete="CASCADE",
        ),
    )


_NEW_CHECKPOINT_COLUMNS: list[tuple[str, Any, dict[str, Any]]] = [
    ("namespace", sa.String(128), {"nullable": False, "server_default": ""}),
    ("parent_id", sa.String(128), {"nullable": False, "server_default": ""}),
    ("payload", sa.LargeBinary(), {"nullable": True}),
    ("payload_type", sa.String(128), {"nullable": False, "server_default": ""}),
    ("metadata", json_type(), {"nullable": True}),
]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE sessions ALTER COLUMN fork_checkpoint_id TYPE VARCHAR(128)"
            " USING fork_checkpoint_id::text"
        )
        op.execute("ALTER TABLE checkpoints ALTER COLUMN id TYPE VARCHAR(128) USING id::text")
        for name, type_, options in _NEW_CHECKPOINT_COLUMNS:
            op.add_column("checkpoints", sa.Column(name, type_, **options))
        op.drop_constraint("pk_checkpoints", "checkpoints", type_="primary")
        op.create_primary_key(
            "pk_checkpoints", "checkpoints", ["tenant_id", "session_id", "namespace", "id"]
        )
    else:
        # The fork source's checkpoint id, replaced in place: rebuilding `sessions`
        # would take its children's rows with it.
        op.execute("ALTER TABLE sessions ADD COLUMN fork_checkpoint_text VARCHAR(128)")
        op.execute(
            f"UPDATE sessions SET fork_checkpoint_text = {_canonical('fork_checkpoint_id')}"
            " WHERE fork_checkpoint_id IS NOT NULL"
        )
        op.execute("ALTER TABLE sessions DROP COLUMN fork_checkpoint_id")
        op.execute("ALTER TABLE sessions RENAME COLUMN fork_checkpoint_text TO fork_checkpoint_id")
        # Nothing references checkpoints yet: rebuilt in the new shape.
        op.execute("DROP INDEX ix_checkpoints_tenant_id_session_id_create_time_id")
        op.rename_table("checkpoints", "checkpoints_v6")
        _checkpoints(_with_sessions(), "checkpoints").create(bind)
        as_text = _CHECKPOINT_COLUMNS.replace(" id,", f" {_canonical('id')},")
        op.execute(
            f"INSERT INTO checkpoints ({_CHECKPOINT_COLUMNS}) SELECT {as_text} FROM checkpoints_v6"
        )
        op.execute("DROP TABLE checkpoints_v6")
        op.create_index(
            "ix_checkpoints_tenant_id_session_id_create_time_id",
            "checkpoints",
            ["tenant_id", "session_id", "create_time", "id"],
        )
    op.add_column("append_requests", sa.Column("result", sa.LargeBinary(), nullable=True))
    op.create_table(
        "checkpoint_writes",
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("checkpoint_id", sa.String(128), nullable=False),
        sa.Column("task_id", sa.String(128), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(256), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("payload_type", sa.String(128), nullable=False, server_default=""),
        sa.Column("task_path", sa.String(512), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint(
            "tenant_id",
            "session_id",
            "namespace",
            "checkpoint_id",
            "task_id",
            "idx",
            name="pk_checkpoint_writes",
        ),
        # Not to checkpoints: writes may come before their checkpoint.
        sa.ForeignKeyConstraint(
            ["tenant_id", "session_id"],
            ["sessions.tenant_id", "sessions.id"],
            name="fk_checkpoint_writes_tenant_id_session_id_sessions",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "shared_states",
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("data", json_type(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("update_time", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "name", name="pk_shared_states"),
    )
    if bind.dialect.name == "postgresql" and is_citus(bind):
        distribute_tables(bind, ("checkpoint_writes", "shared_states"), colocate_with="sessions")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and is_citus(bind):
        raise RuntimeError("0007 cannot be downgraded on Citus: the tables are distributed")
    uuid_form = (
        "id !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"
        if bind.dialect.name == "postgresql"
        else "(length(id) <> 36 OR id GLOB '*[^0-9a-f-]*')"
    )
    blocked = bind.execute(
        sa.text(f"SELECT count(*) FROM checkpoints WHERE {uuid_form} OR namespace <> ''")
    ).scalar()
    if blocked:
        raise RuntimeError(
            "cannot downgrade below 0007: some checkpoints have ids that are not UUIDs,"
            " or namespaces"
        )
    op.drop_table("shared_states")
    op.drop_table("checkpoint_writes")
    op.drop_column("append_requests", "result")
    if bind.dialect.name == "postgresql":
        op.drop_constraint("pk_checkpoints", "checkpoints", type_="primary")
        for name, _, _ in _NEW_CHECKPOINT_COLUMNS:
            op.drop_column("checkpoints", name)
        op.execute("ALTER TABLE checkpoints ALTER COLUMN id TYPE UUID USING id::uuid")
        op.create_primary_key("pk_checkpoints", "checkpoints", ["tenant_id", "session_id", "id"])
        op.execute(
            "ALTER TABLE sessions ALTER COLUMN fork_checkpoint_id TYPE UUID"
            " USING fork_checkpoint_id::uuid"
        )
        return
    op.execute("ALTER TABLE sessions ADD COLUMN fork_checkpoint_uuid CHAR(32)")
    op.execute(
        "UPDATE sessions SET fork_checkpoint_uuid = replace(fork_checkpoint_id, '-', '')"
        " WHERE fork_checkpoint_id IS NOT NULL"
    )
    op.execute("ALTER TABLE sessions DROP COLUMN fork_checkpoint_id")
    op.execute("ALTER TABLE sessions RENAME COLUMN fork_checkpoint_uuid TO fork_checkpoint_id")
    op.execute("DROP INDEX ix_checkpoints_tenant_id_session_id_create_time_id")
    op.rename_table("checkpoints", "checkpoints_v7")
    old = sa.Table(
        "checkpoints",
        _with_sessions(),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("message_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(200), nullable=False, server_default=""),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("tags", json_type(), nullable=True),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "session_id", "id", name="pk_checkpoints"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "session_id"],
            ["sessions.tenant_id", "sessions.id"],
            name="fk_checkpoints_tenant_id_session_id_sessions",
            ondelete="CASCADE",
        ),
    )
    old.create(bind)
    as_hex = _CHECKPOINT_COLUMNS.replace(" id,", " replace(id, '-', ''),")
    op.execute(
        f"INSERT INTO checkpoints ({_CHECKPOINT_COLUMNS}) SELECT {as_hex} FROM checkpoints_v7"
    )
    op.execute("DROP TABLE checkpoints_v7")
    op.create_index(
        "ix_checkpoints_tenant_id_session_id_create_time_id",
        "checkpoints",
        ["tenant_id", "session_id", "create_time", "id"],
    )
