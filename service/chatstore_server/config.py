"""Server settings: one validated model, read from flags, `CHATSTORE_*` environment
variables, an optional TOML config file and the defaults, in that order of precedence.

A bad value stops the server at start-up with a message naming the setting.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from chatstore_server.api.limits import Limits
from chatstore_server.store import SessionPolicy
from chatstore_server.store.database import database_url

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
MiB = 1024 * 1024
_ENVELOPE_BYTES = 64 * 1024
"""Room a checkpoint's message leaves for the rest of its request or response."""


class ApiKey(BaseModel):
    """One API key: stored as its SHA-256, bound to tenants and a mode."""

    model_config = {"extra": "forbid", "frozen": True}

    name: str = Field(min_length=1, description="who holds the key, for logs")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the key")
    tenants: list[str] = Field(default=["*"], min_length=1, description='tenant ids, or "*"')
    mode: Literal["read_write", "read_only"] = "read_write"


def read_api_keys_file(path: Path) -> list[ApiKey]:
    """The keys in an API keys file: a JSON list of key objects, or one key object (the
    line `chatstore-new-api-key` prints).

    Raises:
        ValueError: The file cannot be read, is not JSON, or an entry is malformed
            (one line naming the entry and what is wrong).
    """
    try:
        loaded = json.loads(path.read_text())
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise ValueError(f"{path} is not JSON: {error}") from None
    entries = [loaded] if isinstance(loaded, dict) else loaded
    if not isinstance(entries, list):
        raise ValueError(f"{path} must hold a JSON list of keys, or one key object")
    keys = []
    for index, entry in enumerate(entries):
        try:
            keys.append(ApiKey.model_validate(entry))
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise ValueError(
                f"{path}: entry {index}{': ' + where if where else ''}: {problem['msg']}"
            ) from None
    return keys


def is_loopback(listen: str) -> bool:
    """Whether a host:port address listens on loopback only."""
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Everything the server can be told. Each field is also `CHATSTORE_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="CHATSTORE_", extra="forbid", frozen=True)

    # Serving
    listen: str = Field(
        "127.0.0.1:50051", description="host:port to serve gRPC on; port 0 picks a free one"
    )
    workers: int = Field(
        1,
        ge=1,
        description="server processes sharing the listen port (more than 1 needs PostgreSQL)",
    )
    shutdown_grace_seconds: float = Field(
        10.0, ge=0, description="how long in-flight calls may take to finish at shutdown"
    )
    log_level: LogLevel = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_format: Literal["json", "text"] = Field(
        "json", description="json (one object per line) or text (for people)"
    )
    log_requests: bool = Field(True, description="log one line per call (method, status, time)")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="serve Prometheus metrics on this HTTP port; unset: off"
    )
    metrics_address: str = Field("127.0.0.1", description="address of the metrics endpoint")

    # Database
    database_url: str = Field(
        "sqlite:///chatstore.db",
        description="database URL: sqlite:///FILE or postgresql://USER@HOST:PORT/DB"
        " (the drivers are chatstore's: aiosqlite and asyncpg)",
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

    # Credentials
    allow_unauthenticated: bool = Field(
        False, description="serve a non-loopback address with no credentials configured"
    )
    api_keys: list[ApiKey] = Field(
        default_factory=list,
        description="API keys, as a JSON list of {name, sha256, tenants, mode}",
    )
    api_keys_file: Path | None = Field(
        None,
        description="a JSON file holding such a list, or one such object as"
        " chatstore-new-api-key prints it (merged with api_keys)",
    )
    jwt_key: str | None = Field(
        None, description="key that verifies bearer JWTs: a PEM public key or an HMAC secret"
    )
    jwt_key_file: Path | None = Field(None, description="a file holding jwt_key")
    jwt_algorithms: list[str] = Field(
        default=["RS256", "ES256"], description="JWT algorithms accepted"
    )
    jwt_audience: str | None = Field(None, description="required JWT audience (aud)")
    jwt_issuer: str | None = Field(None, description="required JWT issuer (iss)")
    jwt_tenants_claim: str = Field(
        "tenants", description='JWT claim listing the tenants (or "*") the token covers'
    )
    jwt_mode_claim: str = Field(
        "chatstore_mode",
        description='JWT claim "read_write" or "read_only" (absent: read_only)',
    )

    # TLS
    tls_cert_file: Path | None = Field(None, description="PEM certificate chain to serve TLS")
    tls_key_file: Path | None = Field(None, description="PEM private key of that certificate")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle; set it to require client certificates (mTLS)"
    )

    # Limits
    max_receive_message_bytes: int = Field(
        8 * MiB, ge=1024, description="largest request accepted (RESOURCE_EXHAUSTED beyond)"
    )
    max_send_message_bytes: int = Field(
        8 * MiB, ge=1024, description="largest response sent; list pages stop short of it"
    )
    max_content_chars: int = Field(
        100_000,
        ge=1,
        description="longest message content (and structured content, recap), in"
        " characters; each append's batch is also capped by max_batch_bytes",
    )
    max_page_size: int = Field(1_000, ge=1, description="page sizes above this are lowered")
    max_batch_messages: int = Field(
        1_000, ge=1, description="most messages or events in one append"
    )
    max_batch_bytes: int = Field(4 * MiB, ge=1, description="most bytes of text in one append")
    max_metadata_bytes: int = Field(
        65_536,
        ge=1,
        description="largest metadata (session, message, checkpoint) and shared state, in"
        " bytes: kept in the session row, so read with every GetSession and rewritten by"
        " every update",
    )
    max_checkpoint_payload_bytes: int | None = Field(
        None,
        ge=1,
        description="largest checkpoint payload (a saved agent state), in bytes; unset:"
        " 4 MiB, or less where the message size limits leave less room (a payload must fit"
        " in a request and a response)",
    )
    max_concurrent_streams: int = Field(
        1_000, ge=1, description="concurrent calls (streams) on one client connection"
    )
    keepalive_time_seconds: float = Field(
        60.0, gt=0, description="ping a client connection idle this long"
    )
    keepalive_timeout_seconds: float = Field(
        20.0, gt=0, description="close a connection whose ping is unanswered this long"
    )
    min_client_ping_interval_seconds: float = Field(
        10.0, gt=0, description="clients pinging more often than this are disconnected"
    )

    # Sessions
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
        description="changes the server holds for a WatchSession stream beyond what its"
        " connection has taken (the client's flow-control window) before it ends the"
        " stream with RESOURCE_EXHAUSTED",
    )

    @field_validator(
        "api_keys_file", "jwt_key_file", "tls_cert_file", "tls_key_file", "tls_client_ca_file"
    )
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"no such file: {path}")
        return path

    @field_validator("api_keys_file")
    @classmethod
    def _keys_file_parses(cls, path: Path | None) -> Path | None:
        if path is not None:
            read_api_keys_file(path)
        return path

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        return database_url(url).render_as_string(hide_password=False)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file")
        if self.jwt_key is not None and self.jwt_key_file is not None:
            raise ValueError("give jwt_key or jwt_key_file, not both")
        if self.max_batch_bytes > self.max_receive_message_bytes:
            raise ValueError("max_batch_bytes must not exceed max_receive_message_bytes")
        for name in ("max_receive_message_bytes", "max_send_message_bytes"):
            payload = self.max_checkpoint_payload_bytes
            if payload is not None and payload > getattr(self, name):
                raise ValueError(f"max_checkpoint_payload_bytes must not exceed {name}")
        open_to_all = not self.has_credentials and not self.allow_unauthenticated
        if open_to_all and not is_loopback(self.listen):
            raise ValueError(
                f"listen {self.listen} is not a loopback address and no credentials are"
                " configured: set api_keys, api_keys_file or jwt_key, or pass"
                " --allow-unauthenticated to serve it open"
            )
        return self

    @property
    def has_credentials(self) -> bool:
        """Whether any API key or JWT key is configured."""
        return bool(self.api_keys or self.api_keys_file or self.jwt_key or self.jwt_key_file)

    def all_api_keys(self) -> list[ApiKey]:
        """`api_keys` plus those of `api_keys_file`."""
        keys = list(self.api_keys)
        if self.api_keys_file is not None:
            keys += read_api_keys_file(self.api_keys_file)
        return keys

    def jwt_verification_key(self) -> str | None:
        """The JWT key, from `jwt_key` or `jwt_key_file`."""
        if self.jwt_key_file is not None:
            return self.jwt_key_file.read_text()
        return self.jwt_key

    def policy(self) -> SessionPolicy:
        """The session lifecycle periods."""
        return SessionPolicy(
            ephemeral_ttl=timedelta(seconds=self.ephemeral_ttl_seconds),
            deleted_retention=timedelta(seconds=self.deleted_retention_seconds),
            idle_after=timedelta(seconds=self.idle_after_seconds),
        )

    def limits(self) -> Limits:
        """The request limits the API enforces."""
        return Limits(
            max_content_chars=self.max_content_chars,
            max_batch_messages=self.max_batch_messages,
            max_batch_bytes=self.max_batch_bytes,
            max_metadata_bytes=self.max_metadata_bytes,
            max_checkpoint_payload_bytes=self.max_checkpoint_payload_bytes
            or min(
                4 * MiB,
                self.max_receive_message_bytes - _ENVELOPE_BYTES,
                self.max_send_message_bytes - _ENVELOPE_BYTES,
            ),
            max_page_size=self.max_page_size,
            max_response_bytes=self.max_send_message_bytes,
        )

    def grpc_options(self) -> list[tuple[str, Any]]:
        """The gRPC server channel options these settings call for."""
        return [
            # Workers share the port on purpose; otherwise a second server must fail to
            # bind a port in use rather than silently share it.
            ("grpc.so_reuseport", 1 if self.workers > 1 else 0),
            ("grpc.max_receive_message_length", self.max_receive_message_bytes),
            ("grpc.max_send_message_length", self.max_send_message_bytes),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.keepalive_time_ms", int(self.keepalive_time_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_seconds * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            (
                "grpc.http2.min_recv_ping_interval_without_data_ms",
                int(self.min_client_ping_interval_seconds * 1000),
            ),
            ("grpc.http2.max_ping_strikes", 2),
        ]


def load(overrides: dict[str, Any], config_file: Path | None = None) -> Settings:
    """Settings from `overrides` (flags), the environment, then `config_file` (TOML).

    Raises:
        pydantic.ValidationError: A value is missing, malformed or inconsistent.
    """
    if config_file is None:
        return Settings(**overrides)

    class FileSettings(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": config_file})

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    return FileSettings(**overrides)
