"""A message's content and id move into its body, and the content column goes: a page of
messages is then read as one column per message (its body, with the seq and the
compaction mark) and written to the wire as it is (`store.encoded`), where reading the
id, the content and the body apart and putting the id's dashes in on SQLite took about
as long again (`bench/analysis.md`, 2026-12-05).

Every body gets the Message's `id` (canonical text) and `content` fields in front of
its other fields (a parser reads a Message's fields in any order); the id also stays a
column (the key lookups use it). Every message is rewritten, in keyset order by batches
of 1,000, in the migration's transaction; then the column is dropped (SQLite 3.35's
ALTER TABLE ... DROP COLUMN; PostgreSQL and Citus drop it from the catalogue). 200,000
messages of one session (2-core machine): 3.7 s on SQLite, 10.2 s on PostgreSQL.

The downgrade adds the column back, fills it from the bodies and takes the two fields
out of them again (the bytes 0009 found, for the bodies it rewrote).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from chatstore.v1 import message_pb2
from chatstore_server.store import bodies

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1_000

_messages = sa.table(
    "messages",
    sa.column("tenant_id", sa.String()),
    sa.column("session_id", sa.String()),
    sa.column("seq", sa.BigInteger()),
    sa.column("id", sa.Uuid()),
    sa.column("content", sa.Text()),
    sa.column("body", sa.LargeBinary()),
)
_KEY = (_messages.c.tenant_id, _messages.c.session_id, _messages.c.seq)


def _batches(*columns: sa.ColumnClause[Any]) -> Iterator[Sequence[Sequence[Any]]]:
    """Every message's key and `columns`, a batch at a time in key order (each batch
    one range of the primary key)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Without statistics (a database just loaded, say) PostgreSQL may look a row up
        # by (tenant_id, session_id) on the id index and filter by seq (0008).
        op.execute("ANALYZE messages")
    last: tuple[object, ...] | None = None
    while True:
        query = sa.select(*_KEY, *columns).order_by(*_KEY).limit(_BATCH)
        if last is not None:
            query = query.where(sa.tuple_(*_KEY) > sa.tuple_(*(sa.literal(v) for v in last)))
        rows = bind.execute(query).all()
        if not rows:
            return
        yield rows
        last = tuple(rows[-1][:3])


def _write(**values: sa.BindParameter[Any]) -> sa.Update:
    return (
        _messages.update().where(*(c == sa.bindparam(f"k_{c.name}") for c in _KEY)).values(**values)
    )


def upgrade() -> None:
    bind = op.get_bind()
    write = _write(body=sa.bindparam("b_body"))
    for rows in _batches(_messages.c.id, _messages.c.content, _messages.c.body):
        changed = []
        for tenant_id, session_id, seq, id, content, body in rows:
            changed.append(
                {"k_tenant_id": tenant_id, "k_session_id": session_id, "k_seq": seq,
                 "b_body": bodies.with_id_and_content(body, str(id), content)}
            )  # fmt: skip
        bind.execute(write, changed)
    op.drop_column("messages", "content")


def downgrade() -> None:
    bind = op.get_bind()
    op.add_column("messages", sa.Column("content", sa.Text(), nullable=False, server_default=""))
    write = _write(content=sa.bindparam("b_content"), body=sa.bindparam("b_body"))
    for rows in _batches(_messages.c.body):
        changed = []
        for tenant_id, session_id, seq, body in rows:
            content, old = _without_id_and_content(body)
            changed.append(
                {"k_tenant_id": tenant_id, "k_session_id": session_id, "k_seq": seq,
                 "b_content": content, "b_body": old}
            )  # fmt: skip
        bind.execute(write, changed)


def _without_id_and_content(body: bytes) -> tuple[str, bytes]:
    """A body's content, and the body as the code before 0009 wrote it: what `upgrade`
    put in front taken off again (the same bytes back), or for a body written since,
    the Message without the two fields."""
    parsed = message_pb2.Message.FromString(body)
    head = message_pb2.Message(id=parsed.id, content=parsed.content)
    prefix = head.SerializeToString(deterministic=True)
    if body.startswith(prefix):
        return parsed.content, body[len(prefix) :]
    content = parsed.content
    parsed.ClearField("id")
    parsed.ClearField("content")
    return content, parsed.SerializeToString(deterministic=True)
