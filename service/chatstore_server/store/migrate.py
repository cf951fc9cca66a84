"""Apply the Alembic migrations: the only way the schema is created or changed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from chatstore_server.store.database import Database

_SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"
# Any fixed key: server processes starting together on one PostgreSQL database take
# turns, so each migration runs once.
_MIGRATION_LOCK_KEY = 0x6368617473746F72  # "chatstor"


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    command.upgrade(_config(connection), revision)


async def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema up to `revision` (default: the newest), in one transaction.

    Safe to run from several processes at once: on SQLite the write transaction's
    `BEGIN IMMEDIATE`, on PostgreSQL an advisory lock, makes them take turns.

    Raises:
        UnavailableError: The database cannot be reached.
    """
    async with database.write(offload=True) as connection:
        await connection.run_sync(_upgrade, revision)
