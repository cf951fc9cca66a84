"""Alembic environment for chatstore.

Run by `chatstore_server.store.migrate.upgrade` at server start-up, which hands over an
open connection in `config.attributes["connection"]`. Also runs from the alembic
command line (`alembic -c service/chatstore_server/store/alembic.ini ...`), which
connects to `CHATSTORE_DATABASE_URL`.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from chatstore_server.store.schema import metadata

DEFAULT_URL = "sqlite+aiosqlite:///chatstore.db"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_from_url(os.environ.get("CHATSTORE_DATABASE_URL", DEFAULT_URL)))
