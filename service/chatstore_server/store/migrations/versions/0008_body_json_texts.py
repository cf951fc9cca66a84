"""Every message body holds its JSON texts: bodies written before messages kept
`structured_content_json` and `metadata_json` (revisions 0004-0007 of the code) get
them, as the reads computed them (`bodies.with_json_texts`). Reads then pass bodies on
as they are (`store.encoded`) instead of checking each one. (The messages a rewind kept
for its retries, `append_requests.result`, are checked when a retry reads them:
`bodies.unpack`.)

No schema change. Every message is read once, in keyset order by batches of 1,000; only
bodies that lack a text are written (none in a database made after 0007). 200,000
messages of one session (2-core machine): 0.6 s on SQLite and 0.8 s on PostgreSQL when
nothing is written, 4.5 s and 10.8 s when every body is rewritten. The downgrade
has nothing to undo: older code reads the texts, or keeps them as unknown fields.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chatstore_server.store import bodies

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1_000

_messages = sa.table(
    "messages",
    sa.column("tenant_id", sa.String()),
    sa.column("session_id", sa.String()),
    sa.column("seq", sa.BigInteger()),
    sa.column("body", sa.LargeBinary()),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Without statistics (a database just loaded, say) PostgreSQL may look a row up
        # by (tenant_id, session_id) on the id index and filter by seq: each update then
        # scans its whole session (200,000 messages of one session took over 10 minutes).
        op.execute("ANALYZE messages")
    key = (_messages.c.tenant_id, _messages.c.session_id, _messages.c.seq)
    write = (
        _messages.update()
        .where(*(c == sa.bindparam(f"k_{c.name}") for c in key))
        .values(body=sa.bindparam("b_body"))
    )
    last: tuple[object, ...] | None = None
    while True:
        query = sa.select(*key, _messages.c.body).order_by(*key).limit(_BATCH)
        if last is not None:
            query = query.where(sa.tuple_(*key) > sa.tuple_(*(sa.literal(v) for v in last)))
        rows = bind.execute(query).all()
        if not rows:
            return
        changed = []
        for tenant_id, session_id, seq, body in rows:
            rewritten = bodies.with_json_texts(body)
            if rewritten is not None:
                changed.append(
                    {"k_tenant_id": tenant_id, "k_session_id": session_id, "k_seq": seq,
                     "b_body": rewritten}
                )  # fmt: skip
        if changed:
            bind.execute(write, changed)
        last = tuple(rows[-1][:3])


def downgrade() -> None:
    pass
