"""Message bodies: a message's fields that SQL does not filter on move from six columns
into one `body` (a serialized chatstore.v1.Message, `store.bodies`), and each message
gets its context-window `token_estimate`.

Existing messages are converted in batches of 1,000 (in id order), in the migration's
transaction: 200,000 messages took 7.6 s on SQLite and 8.3 s on PostgreSQL (2-core
machine), so about 40 s per million, during which the server does not yet serve. The
downgrade restores the six columns from the bodies. It encodes with the store's own
`bodies.encode` and `message_tokens`: a later change to the body format or the estimate
needs a migration of its own (which would keep a copy of this version's code here).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from alembic import op

from chatstore_server.store import bodies
from chatstore_server.store.context import message_tokens
from chatstore_server.store.records import ABSENT, NewMessage, Role, ToolCallRecord
from chatstore_server.store.types import UTCDateTime, json_type

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1_000


def _moved() -> list[sa.Column[Any]]:
    """The columns that move into the body, as 0001 and 0003 made them (new objects
    each time: a Column belongs to one table)."""
    return [
        sa.Column("tool_calls", json_type(), nullable=True),
        sa.Column("structured_content", json_type(), nullable=True),
        sa.Column("name", sa.String(128), server_default="", nullable=False),
        sa.Column("agent_id", sa.String(128), server_default="", nullable=False),
        sa.Column("model", sa.String(128), server_default="", nullable=False),
        sa.Column("metadata", json_type(), nullable=True),
    ]


def _messages(*extra: sa.Column[Any]) -> sa.TableClause:
    return sa.table(
        "messages",
        sa.column("id", sa.Uuid()),
        sa.column("seq", sa.BigInteger()),
        sa.column("role", sa.String()),
        sa.column("content", sa.Text()),
        sa.column("token_count", sa.Integer()),
        sa.column("create_time", UTCDateTime()),
        sa.column("tool_call_id", sa.String()),
        *(sa.column(c.name, c.type) for c in extra),
    )


def _batches(table: sa.TableClause) -> Any:
    """Every row, a batch at a time, in id order (keyset on the primary key, so each
    batch is one index range however large the table)."""
    bind = op.get_bind()
    query = sa.select(table).order_by(table.c.id).limit(_BATCH)
    rows = bind.execute(query).all()
    while rows:
        yield bind, rows
        rows = bind.execute(query.where(table.c.id > rows[-1].id)).all()


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("body", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("token_estimate", sa.BigInteger(), nullable=True))
    table = _messages(
        *_moved(), sa.Column("body", sa.LargeBinary()), sa.Column("token_estimate", sa.BigInteger())
    )
    converted = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"))
        .values(body=sa.bindparam("b_body"), token_estimate=sa.bindparam("b_tokens"))
    )
    for bind, rows in _batches(table):
        values = []
        for row in rows:
            message = NewMessage(
                role=Role(row.role),
                content=row.content,
                tool_calls=tuple(
                    ToolCallRecord(c["id"], c["name"], c["arguments"]) for c in row.tool_calls or ()
                ),
                token_count=row.token_count,
                # The old column held SQL NULL for "none" (and for a JSON null).
                structured_content=ABSENT
                if row.structured_content is None
                else row.structured_content,
                tool_call_id=row.tool_call_id,
                name=row.name,
                agent_id=row.agent_id,
                model=row.model,
                metadata=row.metadata,
            )
            values.append(
                {
                    "b_id": row.id,
                    # The body as 0004 wrote it: without the id and the content,
                    # which stayed columns until 0009 (no id, no content: neither
                    # field is written when empty).
                    "b_body": bodies.encode(replace(message, content=""), "", row.create_time),
                    "b_tokens": message_tokens(message),
                }
            )
        bind.execute(converted, values)
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("body", existing_type=sa.LargeBinary(), nullable=False)
        batch.alter_column("token_estimate", existing_type=sa.BigInteger(), nullable=False)
        for column in _moved():
            batch.drop_column(column.name)


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        for column in _moved():
            batch.add_column(column)
    table = _messages(*_moved(), sa.Column("body", sa.LargeBinary()))
    restored = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"))
        .values(**{c.name: sa.bindparam(f"b_{c.name}") for c in _moved()})
    )
    for bind, rows in _batches(table):
        values = []
        for row in rows:
            body = bodies.decode(row.body)
            values.append(
                {
                    "b_id": row.id,
                    "b_tool_calls": [
                        {"id": c.id, "name": c.name, "arguments": c.arguments}
                        for c in body.tool_calls
                    ]
                    or None,
                    "b_structured_content": None
                    if body.structured_content is ABSENT
                    else body.structured_content,
                    "b_name": body.name,
                    "b_agent_id": body.agent_id,
                    "b_model": body.model,
                    "b_metadata": body.metadata,
                }
            )
        bind.execute(restored, values)
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("token_estimate")
        batch.drop_column("body")
