"""Datetimes into protobuf Timestamps, for the API layer and the store's message bodies."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def set_timestamp(target: timestamp_pb2.Timestamp, value: datetime) -> None:
    """Set a message's Timestamp field in place to `value` (aware, or naive meaning UTC).

    Integer arithmetic on the timedelta: exact to the microsecond, and several times
    faster than `Timestamp.FromDatetime`. In place, because assigning a new Timestamp
    makes the parent copy it (a page of 50 messages spent more on its timestamps than
    on the rest of each message).
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    target.seconds = delta.days * 86_400 + delta.seconds
    target.nanos = delta.microseconds * 1000
