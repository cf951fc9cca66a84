"""Citus (distributed PostgreSQL): what chatstore does differently on it.

A database with the `citus` extension is a coordinator of workers. The migrations
distribute every table by `tenant_id`, co-located with `sessions` (`distribute_tables`):
a tenant's rows live on one worker, and a statement that names one tenant is routed to
that worker whole. At run time only change notifications differ (`Database.citus`):
`pg_notify` must run on the coordinator, where the listeners are, not inside a
statement that Citus sends to a worker.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, text

DISTRIBUTION_COLUMN = "tenant_id"


def is_citus(connection: Connection) -> bool:
    """Whether the database has the `citus` extension (a Citus coordinator)."""
    found = connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'citus'"))
    return found.first() is not None


def distribute_tables(
    connection: Connection, tables: Sequence[str], *, colocate_with: str | None = None
) -> None:
    """Distribute `tables` by `tenant_id`, co-located with `colocate_with` (a table
    distributed before), or, without it, with the first of `tables` (the co-location
    group's anchor). Foreign keys between them need them co-located. Rows already in a
    table move to its shards."""
    anchor = colocate_with
    for table in tables:
        if anchor is None:
            connection.execute(
                text("SELECT create_distributed_table(:table, :column)"),
                {"table": table, "column": DISTRIBUTION_COLUMN},
            )
            anchor = table
            continue
        connection.execute(
            text("SELECT create_distributed_table(:table, :column, colocate_with => :anchor)"),
            {"table": table, "column": DISTRIBUTION_COLUMN, "anchor": anchor},
        )
