"""Server settings: one validated model, read from flags, `CHATSTORE_*` environment
variables and defaults, in that order of precedence."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from chatstore_server.api.limits import Limits
from chatstore_server.store import SessionPolicy

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class Settings(BaseSettings):
    """Everything the server can be told. Each field is also `CHATSTORE_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="CHATSTORE_", extra="forbid", frozen=True)

    listen: str = Field(
        "127.0.0.1:50051", description="host:port to serve gRPC on; port 0 picks a free one"
    )
    database_url: str = Field(
        "sqlite+aiosqlite:///chatstore.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///FILE or postgresql+asyncpg://...",
    )
    log_level: LogLevel = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    shutdown_grace_seconds: float = Field(
        10.0, ge=0, description="how long in-flight calls may take to finish at shutdown"
    )
    max_content_chars: int = Field(
        100_000, ge=1, description="longest message content, in characters"
    )
    db_pool_size: int = Field(10, ge=1, description="database connections kept open")
    db_max_overflow: int = Field(
        10, ge=0, description="extra connections opened under load, closed when idle"
    )
    db_pool_timeout_seconds: float = Field(
        5.0, gt=0, description="how long a call waits for a free database connection"
    )
    db_connect_timeout_seconds: float = Field(
        3.0, gt=0, description="how long opening a PostgreSQL connection may take"
    )
    db_command_timeout_seconds: float = Field(
        30.0, gt=0, description="how long one PostgreSQL statement may take"
    )
    health_check_interval_seconds: float = Field(
        2.0,
        gt=0,
        description="how often the database is pinged; health is NOT_SERVING while it fails",
    )
    workers: int = Field(
        1,
        ge=1,
        description="server processes sharing the listen port (more than 1 needs PostgreSQL)",
    )

    ephemeral_ttl_seconds: float = Field(
        86_400, gt=0, description="an EPHEMERAL session expires this long after its last write"
    )
    deleted_retention_seconds: float = Field(
        30 * 86_400, ge=0, description="a soft-deleted session is purged this long after deletion"
    )
    idle_after_seconds: float = Field(
        1_800, gt=0, description="a session with no write for this long becomes IDLE"
    )
    sweep_interval_seconds: float = Field(
        60, gt=0, description="how often the sweeper purges expired sessions and marks idle ones"
    )

    watch_buffer_changes: int = Field(
        1024,
        ge=1,
        description="changes a WatchSession stream may fall behind before it is ended"
        " with RESOURCE_EXHAUSTED",
    )

    def policy(self) -> SessionPolicy:
        """The session lifecycle periods."""
        return SessionPolicy(
            ephemeral_ttl=timedelta(seconds=self.ephemeral_ttl_seconds),
            deleted_retention=timedelta(seconds=self.deleted_retention_seconds),
            idle_after=timedelta(seconds=self.idle_after_seconds),
        )

    def limits(self) -> Limits:
        """The request limits the API enforces."""
        return Limits(max_content_chars=self.max_content_chars)
