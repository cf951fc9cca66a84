"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeDecorator, TypeEngine


class _SQLiteDateTime(sqlite.DATETIME):
    """SQLite's DATETIME, read back with `datetime.fromisoformat` (C) instead of
    SQLAlchemy's regular expression: the same values, a fraction of the time."""

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        parse = datetime.fromisoformat

        def process(value: str | None) -> datetime | None:
            return None if value is None else parse(value)

        return process


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp, microsecond precision.

    PostgreSQL stores `timestamptz`. SQLite has no timestamp type: values are stored as
    naive UTC in SQLAlchemy's fixed-width ISO format, which sorts as text in time order,
    so range and keyset comparisons work the same on both.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLiteDateTime())  # type: ignore[no-untyped-call]
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime needs a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_type() -> TypeEngine[Any]:
    """JSON: `jsonb` on PostgreSQL, JSON text on SQLite; Python None is SQL NULL."""
    return JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
