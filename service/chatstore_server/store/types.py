"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, String, Uuid
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine


def _uuid_from_hex(value: str) -> uuid.UUID:
    """`uuid.UUID(hex=value)` for the 32 lowercase hex digits SQLite stores, in a third
    of the time: what `UUID.__init__` ends with, without its parsing of other forms.

    Raises:
        ValueError: `value` is not 32 hex digits.
    """
    try:
        number = int(value, 16) if len(value) == 32 else -1
    except ValueError:
        number = -1
    if number < 0:  # also a negative number, which int() would take
        raise ValueError(f"not a stored UUID: {value!r}")
    result = _new_uuid(uuid.UUID)
    _set(result, "int", number)
    _set(result, "is_safe", uuid.SafeUUID.unknown)
    return result


_new_uuid = object.__new__
_set = object.__setattr__


class UUIDType(TypeDecorator[uuid.UUID]):
    """A UUID: PostgreSQL's `uuid`, 32 hex digits on SQLite (SQLAlchemy's `Uuid`).

    Only the reading differs from `Uuid`: on SQLite the hex text is turned into a
    `uuid.UUID` without `UUID.__init__`'s general parsing (a page of 50 messages holds
    100 of them). PostgreSQL's driver hands over UUIDs as they are.
    """

    impl = Uuid()
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        # The last value read, as (text, UUID): every row of a page of messages repeats
        # its session's id. One tuple, so that threads never see half an update.
        last: list[tuple[str, uuid.UUID]] = [("", uuid.UUID(int=0))]

        def process(value: str | None) -> uuid.UUID | None:
            if value is None:
                return None
            seen = last[0]
            if seen[0] == value:
                return seen[1]
            found = _uuid_from_hex(value)
            last[0] = (value, found)
            return found

        return process


class UUIDText(TypeDecorator[str]):
    """A UUID column read as its canonical text (`8-4-4-4-12` lowercase hex digits),
    for reads that only pass an id on: no `uuid.UUID` is made and turned back into text
    (two thirds of the cost of a message's columns on a page). For results only:
    `type_coerce(column, UUIDText())` in a SELECT.

    PostgreSQL writes the text itself (`CAST(id AS TEXT)`), so its rows need no Python
    per value; SQLite's 32 hex digits get their dashes in Python, which costs less than
    SQLite's `substr` and `||` (1,000 rows: 0.6 against 1.8 ms).
    """

    impl = Uuid(as_uuid=False)
    cache_ok = True

    def column_expression(self, colexpr: Any) -> Any:
        text = UUIDAsText(colexpr)
        text.type = self  # read through `result_processor` (SQLite's dashes)
        return text

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return None  # already text

        def process(value: str | None) -> str | None:  # the 32 hex digits SQLite stores
            if value is None:
                return None
            return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"

        return process


class UUIDAsText(FunctionElement[str]):
    """A UUID column read as the database's text: `CAST(column AS TEXT)` (canonical
    text) on PostgreSQL, the column itself (the 32 hex digits stored) on SQLite; read
    as it is, with no Python per row (`UUIDText` gives it its own type, to read it
    through its processor)."""

    type: TypeEngine[str] = String()
    inherit_cache = True


@compiles(UUIDAsText, "sqlite")
def _uuid_column(element: UUIDAsText, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(UUIDAsText)
def _uuid_as_text(element: UUIDAsText, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS TEXT)"


class EnumText(TypeDecorator[enum.StrEnum]):
    """A text column holding `StrEnum` values, read as members: for result columns
    (`type_coerce(column, EnumText(Role))` in a SELECT). The member is found by a dict
    lookup, in C: calling the enum class costs about ten times as much."""

    impl = String()
    cache_ok = True

    def __init__(self, members: type[enum.StrEnum]) -> None:
        super().__init__()
        self.members = members  # the cache key (cache_ok): named as the argument
        self._by_value = {member.value: member for member in members}

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        return self._by_value.__getitem__


# Bound datetimes whose stored text `UTCDateTime` keeps for reuse (per statement column).
_BIND_TEXTS_HELD = 64
# The longest naive value SQLite stores: "2026-11-22 08:07:26.630053".
_NAIVE_MAX_CHARS = 26


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp, microsecond precision.

    PostgreSQL stores `timestamptz`. SQLite has no timestamp type: values are stored as
    naive UTC in SQLAlchemy's fixed-width ISO format, which sorts as text in time order,
    so range and keyset comparisons work the same on both.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

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

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, one step from an aware datetime to the stored text (naive UTC,
        `2026-11-22 08:07:26.630053`, the text SQLAlchemy's SQLite DATETIME writes)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        # Texts of the values written lately, by value: a batch of appends binds each
        # append's `now` twice (its request id's row and its message's), interleaved
        # with the others', and formatting is the costly part. Equal aware datetimes
        # are one instant, so one text. Emptied when full; a dict's single operations
        # are atomic, so threads sharing it see a text or none.
        texts: dict[datetime, str] = {}

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            text = texts.get(value)
            if text is not None:
                return text
            if value.tzinfo is None:
                raise ValueError("UTCDateTime needs a timezone-aware datetime")
            text = (value.astimezone(UTC) if value.utcoffset() else value).isoformat(
                " ", "microseconds"
            )[:_NAIVE_MAX_CHARS]
            if len(texts) >= _BIND_TEXTS_HELD:
                texts.clear()
            texts[value] = text
            return text

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """On SQLite, one step from the stored text to an aware datetime:
        `datetime.fromisoformat` (C) on the text with its UTC offset appended, instead of
        SQLAlchemy's regular expression followed by `replace(tzinfo=UTC)` (about six
        times the cost; every listed message carries a timestamp). Text that already
        carries an offset (written untyped by earlier versions: an ephemeral session's
        sliding expiry) is read as the instant it names."""
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        parse = datetime.fromisoformat

        def process(value: str | None) -> datetime | None:
            if value is None:
                return None
            if len(value) <= _NAIVE_MAX_CHARS:
                return parse(value + "+00:00")
            found = parse(value)
            return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)

        return process


def json_type() -> TypeEngine[Any]:
    """JSON: `jsonb` on PostgreSQL, JSON text on SQLite; Python None is SQL NULL."""
    return JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
