"""The Alembic migrations are the schema: they build exactly what the code declares."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from chatstore_server.store import Database, upgrade
from chatstore_server.store.schema import metadata


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrations_match_the_declared_schema(database_url: str) -> None:
    database = Database.from_url(database_url)
    try:
        await upgrade(database)
        async with database.engine.connect() as conn:
            differences = await conn.run_sync(_differences)
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await database.dispose()

    assert differences == []
    assert {"sessions", "messages", "alembic_version"} <= tables


async def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    database = Database.from_url(database_url)
    try:
        await upgrade(database)
        await upgrade(database)
    finally:
        await database.dispose()
