"""The column types read back exactly what was written, on both backends (their
SQLite readers take shortcuts past SQLAlchemy's general parsing)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select

from chatstore_server.store import Database
from chatstore_server.store.types import UTCDateTime, UUIDType, _uuid_from_hex

_scratch = Table(
    "type_scratch",
    MetaData(),
    Column("n", Integer, primary_key=True),
    Column("id", UUIDType(), nullable=True),
    Column("time", UTCDateTime(), nullable=True),
)
_UUIDS = [uuid.uuid4(), uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.uuid1()]
_TIMES = [
    datetime(2026, 11, 22, 8, 7, 26, 630053, tzinfo=UTC),
    datetime(2026, 1, 1, tzinfo=UTC),  # no fraction of a second
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2026, 6, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=-7))),  # other offset
]


async def test_uuids_and_times_read_back_as_written(database_url: str) -> None:
    database = Database.from_url(database_url)
    try:
        async with database.write(offload=True) as conn:
            await conn.run_sync(lambda c: _scratch.create(c))
        rows = [
            {"n": n, "id": u, "time": t}
            for n, (u, t) in enumerate(zip(_UUIDS, _TIMES, strict=True))
        ]
        rows.append({"n": len(rows), "id": None, "time": None})
        async with database.write() as conn:
            await conn.execute(insert(_scratch), rows)
        async with database.read() as conn:
            read = (await conn.execute(select(_scratch).order_by(_scratch.c.n))).all()
    finally:
        await database.dispose()
    for row, written in zip(read, rows, strict=True):
        assert row.id == written["id"]
        assert row.time == written["time"]
        if row.id is not None:
            assert isinstance(row.id, uuid.UUID)
            assert str(row.id) == str(written["id"])
            assert hash(row.id) == hash(written["id"])
            assert row.time.utcoffset() == timedelta(0)  # always UTC, whatever was written


@pytest.mark.parametrize("value", ["", "abc", "0" * 31, "0" * 33, "g" * 32, "-" + "f" * 31])
def test_a_stored_uuid_that_is_not_32_hex_digits_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="not a stored UUID"):
        _uuid_from_hex(value)
