"""Tenant-scoped keys: every table carries `tenant_id`, and every primary key, unique
constraint and foreign key starts with it; session ids become text.

- A session id is unique within its tenant, not across tenants: a tenant can no longer
  learn another's session ids from ALREADY_EXISTS, and may use any id of 1 to 128
  printable characters (a framework's own "user-123" or thread id). Ids made by earlier
  versions (UUIDs) become their canonical text.
- `messages`, `events`, `checkpoints` and `append_requests` gain `tenant_id` (copied from
  their session), and reference their session by (tenant_id, session_id). Messages are
  keyed by (tenant_id, session_id, seq), their ids unique within the session; events
  by (tenant_id, session_id, seq).
- That is what Citus (distributed PostgreSQL) needs to distribute the tables by
  `tenant_id`, co-located; on a database with the `citus` extension the tables are
  distributed here (`store.citus`).

Every table is rebuilt: its rows are copied into a table of the new shape, on SQLite and
PostgreSQL alike (changing a primary key and a column's type rewrites each table on
PostgreSQL too). About 20 s per million messages on a 2-core machine. The downgrade
rebuilds the old shape, and refuses if a session id is not a UUID or is used by two
tenants.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from chatstore_server.store.citus import distribute_tables, is_citus
from chatstore_server.store.types import UTCDateTime, json_type

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("sessions", "session_labels", "messages", "events", "checkpoints", "append_requests")
_CHILDREN = _TABLES[1:]
_OLD = "_v5"
_NEW = "_v6"

_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
_LIVE_KEYED = "delete_time IS NULL AND key_channel IS NOT NULL"


def _session_columns(id_type: Callable[[], Any]) -> list[sa.Column[Any]]:
    """The sessions table's columns, as of 0005, with ids of `id_type`."""
    return [
        sa.Column("id", id_type(), nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("title", sa.String(200), nullable=False, server_default=""),
        sa.Column("metadata", json_type(), nullable=True),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("update_time", UTCDateTime(), nullable=False),
        sa.Column("message_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("key_channel", sa.String(64), nullable=True),
        sa.Column("key_account_id", sa.String(128), nullable=True),
        sa.Column("key_peer_kind", sa.String(8), nullable=True),
        sa.Column("key_peer_id", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="ACTIVE"),
        sa.Column("retention", sa.String(16), nullable=False, server_default="SAVED"),
        sa.Column("access_mode", sa.String(16), nullable=False, server_default="READ_WRITE"),
        sa.Column("model", sa.String(128), nullable=False, server_default=""),
        sa.Column("persona_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("recap", sa.Text(), nullable=False, server_default=""),
        sa.Column("labels", json_type(), nullable=True),
        sa.Column("pin_time", UTCDateTime(), nullable=True),
        sa.Column("archive_time", UTCDateTime(), nullable=True),
        sa.Column("delete_time", UTCDateTime(), nullable=True),
        sa.Column("expire_time", UTCDateTime(), nullable=True),
        sa.Column("last_message_time", UTCDateTime(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("event_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("checkpoint_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_message_preview", sa.String(200), nullable=False, server_default=""),
        sa.Column("revision", sa.BigInteger(), nullable=False, server_default="1"),
        sa.Column("last_event_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("compacted_through_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("fork_session_id", id_type(), nullable=True),
        sa.Column("fork_message_seq", sa.BigInteger(), nullable=True),
        sa.Column("fork_event_seq", sa.BigInteger(), nullable=True),
        sa.Column("fork_checkpoint_id", sa.Uuid(), nullable=True),
    ]


def _partial(table: str, columns: list[str], where: str, *, unique: bool = False) -> sa.Index:
    name = f"ix_{table}_{'_'.join(columns)}" if not unique else "uq_sessions_live_key"
    return sa.Index(
        name,
        *columns,
        unique=unique,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def _session_indexes() -> list[sa.Index]:
    """The sessions table's indexes (the same in both shapes)."""
    return [
        sa.Index(None, "tenant_id", "update_time", "id"),
        sa.Index(None, "tenant_id", "create_time", "id"),
        sa.Index(None, "tenant_id", "title", "id"),
        _partial("sessions", ["tenant_id", "agent_id", "update_time", "id"], "agent_id <> ''"),
        _partial(
            "sessions",
            ["tenant_id", "key_channel", "update_time", "id"],
            "key_channel IS NOT NULL",
        ),
        _partial(
            "sessions",
            ["tenant_id", "key_peer_id", "update_time", "id"],
            "key_peer_id IS NOT NULL",
        ),
        sa.Index(None, "tenant_id", "status"),
        _partial(
            "sessions",
            [
                "tenant_id",
                "agent_id",
                "key_channel",
                "key_account_id",
                "key_peer_kind",
                "key_peer_id",
            ],
            _LIVE_KEYED,
            unique=True,
        ),
        _partial("sessions", ["expire_time"], "expire_time IS NOT NULL"),
        sa.Index(None, "status", "update_time"),
    ]


def _message_columns(id_type: Callable[[], Any]) -> list[sa.Column[Any]]:
    return [
        sa.Column("session_id", id_type(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False, server_default=""),
        sa.Column("token_count", sa.Integer(), nullable=True),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("tool_call_id", sa.String(256), nullable=False, server_default=""),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("token_estimate", sa.BigInteger(), nullable=False),
    ]


def _event_columns(id_type: Callable[[], Any]) -> list[sa.Column[Any]]:
    return [
        sa.Column("session_id", id_type(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("payload", json_type(), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
    ]


def _checkpoint_columns(id_type: Callable[[], Any]) -> list[sa.Column[Any]]:
    return [
        sa.Column("session_id", id_type(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("message_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(200), nullable=False, server_default=""),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("tags", json_type(), nullable=True),
        sa.Column("create_time", UTCDateTime(), nullable=False),
    ]


def _request_columns(id_type: Callable[[], Any]) -> list[sa.Column[Any]]:
    return [
        sa.Column("session_id", id_type(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
    ]


def _text_id() -> sa.String:
    return sa.String(128)


def _tenant() -> sa.Column[Any]:
    return sa.Column("tenant_id", sa.String(128), nullable=False)


def _v6(meta: sa.MetaData) -> list[sa.Table]:
    """The tables as 0006 makes them (what `store.schema` declared at 0006)."""

    def reference() -> sa.ForeignKeyConstraint:
        return sa.ForeignKeyConstraint(
            ["tenant_id", "session_id"],
            ["sessions.tenant_id", "sessions.id"],
            ondelete="CASCADE",
        )

    return [
        sa.Table(
            "sessions",
            meta,
            *_session_columns(_text_id),
            sa.PrimaryKeyConstraint("tenant_id", "id"),
            *_session_indexes(),
        ),
        sa.Table(
            "session_labels",
            meta,
            _tenant(),
            sa.Column("session_id", _text_id(), nullable=False),
            sa.Column("key", sa.String(63), nullable=False),
            sa.Column("value", sa.String(255), nullable=False),
            sa.PrimaryKeyConstraint("tenant_id", "session_id", "key"),
            reference(),
            sa.Index(None, "tenant_id", "key", "value"),
        ),
        sa.Table(
            "messages",
            meta,
            _tenant(),
            *_message_columns(_text_id),
            sa.PrimaryKeyConstraint("tenant_id", "session_id", "seq"),
            sa.UniqueConstraint("tenant_id", "session_id", "id"),
            reference(),
        ),
        sa.Table(
            "events",
            meta,
            _tenant(),
            *_event_columns(_text_id),
            sa.PrimaryKeyConstraint("tenant_id", "session_id", "seq"),
            reference(),
        ),
        sa.Table(
            "checkpoints",
            meta,
            _tenant(),
            *_checkpoint_columns(_text_id),
            sa.PrimaryKeyConstraint("tenant_id", "session_id", "id"),
            reference(),
            sa.Index(None, "tenant_id", "session_id", "create_time", "id"),
        ),
        sa.Table(
            "append_requests",
            meta,
            _tenant(),
            *_request_columns(_text_id),
            sa.PrimaryKeyConstraint("tenant_id", "session_id", "kind", "request_id"),
            reference(),
        ),
    ]


def _v5(meta: sa.MetaData) -> list[sa.Table]:
    """The tables as 0005 left them (for the downgrade)."""

    def reference() -> sa.ForeignKeyConstraint:
        return sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE")

    return [
        sa.Table(
            "sessions",
            meta,
            *_session_columns(sa.Uuid),
            sa.PrimaryKeyConstraint("id"),
            *_session_indexes(),
        ),
        sa.Table(
            "session_labels",
            meta,
            sa.Column("session_id", sa.Uuid(), nullable=False),
            _tenant(),
            sa.Column("key", sa.String(63), nullable=False),
            sa.Column("value", sa.String(255), nullable=False),
            sa.PrimaryKeyConstraint("session_id", "key"),
            reference(),
            sa.Index(None, "tenant_id", "key", "value"),
        ),
        sa.Table(
            "messages",
            meta,
            *_message_columns(sa.Uuid),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("session_id", "seq"),
            reference(),
        ),
        sa.Table(
            "events",
            meta,
            *_event_columns(sa.Uuid),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("session_id", "seq"),
            reference(),
        ),
        sa.Table(
            "checkpoints",
            meta,
            *_checkpoint_columns(sa.Uuid),
            sa.PrimaryKeyConstraint("id"),
            reference(),
            sa.Index(None, "session_id", "create_time", "id"),
        ),
        sa.Table(
            "append_requests",
            meta,
            *_request_columns(sa.Uuid),
            sa.PrimaryKeyConstraint("session_id", "kind", "request_id"),
            reference(),
        ),
    ]


def _uuid_as_text(column: str, dialect: str) -> str:
    """SQL for a 0005 UUID column as 0006's text: PostgreSQL's `uuid` prints itself;
    SQLite holds 32 hex digits."""
    if dialect == "postgresql":
        return f"{column}::text"
    parts = [f"substr({column}, {start}, {length})" for start, length in _UUID_GROUPS]
    return "lower(" + " || '-' || ".join(parts) + ")"


_UUID_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


def _text_as_uuid(column: str, dialect: str) -> str:
    """SQL for a 0006 text id (a canonical UUID) as 0005's UUID column."""
    if dialect == "postgresql":
        return f"{column}::uuid"
    return f"replace({column}, '-', '')"


def _rebuild(
    shape: Callable[[sa.MetaData], list[sa.Table]],
    copy: Callable[[str, list[str]], str],
) -> None:
    """Rebuild every table in `shape`: the old tables are renamed aside (with their
    indexes, on PostgreSQL, whose index names are global), the new ones created, each
    filled by `copy(table, its columns)` (an INSERT's SELECT from the `_v5`/`_v6` tables),
    the old dropped (children first: dropping a parent first would cascade), and the
    indexes made last (SQLite's index names are global too, and the old go with their
    tables)."""
    bind = op.get_bind()
    dialect = bind.dialect.name
    aside = _OLD if shape is _v6 else _NEW
    if dialect == "sqlite":
        # Checked at COMMIT, when every reference points at its new table.
        op.execute("PRAGMA defer_foreign_keys = ON")
    for name in _TABLES:
        if dialect == "postgresql":
            found = bind.execute(
                sa.text("SELECT indexname FROM pg_indexes WHERE tablename = :t"), {"t": name}
            )
            for index_name in list(found.scalars()):
                op.execute(f'ALTER INDEX "{index_name}" RENAME TO "{index_name}{aside}"')
        op.rename_table(name, f"{name}{aside}")
    meta = sa.MetaData(naming_convention=_CONVENTION)
    tables = shape(meta)
    indexes: list[sa.Index] = []
    for table in tables:
        indexes += list(table.indexes)
        table.indexes.clear()
        table.create(bind)
    for table in tables:
        columns = [c.name for c in table.columns]
        listed = ", ".join(columns)
        op.execute(f"INSERT INTO {table.name} ({listed}) {copy(table.name, columns)}")
    for name in reversed(_TABLES):
        op.execute(f"DROP TABLE {name}{aside}")
    for index in indexes:
        index.create(bind)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name

    def copy(table: str, columns: list[str]) -> str:
        if table == "sessions":
            picked = [
                _uuid_as_text(c, dialect) if c in ("id", "fork_session_id") else c for c in columns
            ]
            return f"SELECT {', '.join(picked)} FROM sessions{_OLD}"
        # Every child row takes its tenant from its session.
        picked = [
            "s.tenant_id"
            if c == "tenant_id"
            else _uuid_as_text("t.session_id", dialect)
            if c == "session_id"
            else f"t.{c}"
            for c in columns
        ]
        return (
            f"SELECT {', '.join(picked)} FROM {table}{_OLD} t"
            f" JOIN sessions{_OLD} s ON s.id = t.session_id"
        )

    _rebuild(_v6, copy)
    if dialect == "postgresql" and is_citus(op.get_bind()):
        distribute_tables(op.get_bind(), _TABLES)


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect == "postgresql" and is_citus(bind):
        raise RuntimeError("0006 cannot be downgraded on Citus: the tables are distributed")
    uuid_pattern = (
        "id !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"
        if dialect == "postgresql"
        else "(length(id) <> 36 OR id GLOB '*[^0-9a-f-]*')"
    )
    not_uuid = bind.execute(sa.text(f"SELECT count(*) FROM sessions WHERE {uuid_pattern}"))
    shared = bind.execute(
        sa.text("SELECT count(*) FROM (SELECT id FROM sessions GROUP BY id HAVING count(*) > 1) d")
    )
    if not_uuid.scalar() or shared.scalar():
        raise RuntimeError(
            "cannot downgrade below 0006: some session ids are not UUIDs, or are used by"
            " more than one tenant"
        )

    def copy(table: str, columns: list[str]) -> str:
        # Message, event and checkpoint ids were UUIDs all along; session ids become so.
        ids = ("id", "fork_session_id") if table == "sessions" else ("session_id",)
        picked = [_text_as_uuid(c, dialect) if c in ids else c for c in columns]
        return f"SELECT {', '.join(picked)} FROM {table}{_NEW}"

    _rebuild(_v5, copy)
