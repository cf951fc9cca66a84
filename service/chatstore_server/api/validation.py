"""Request validation: every wrong field is collected, then reported at once.

A request that fails validation is rejected before the store is touched, so bad
input never writes anything.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from google.protobuf import timestamp_pb2

from chatstore_server.api.errors import FieldViolation, invalid_argument
from chatstore_server.api.limits import Limits
from chatstore_server.store import TimeRange
from chatstore_server.store.schema import (
    LABEL_VALUE_MAX_CHARS,
    SESSION_ID_MAX_CHARS,
    TENANT_ID_MAX_CHARS,
)

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# The range google.protobuf.Timestamp allows: 0001-01-01 to 9999-12-31 UTC.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799


class Checker:
    """Collects field violations; `done()` raises them all as one INVALID_ARGUMENT."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def fail(self, field: str, description: str) -> None:
        """Record that `field` is wrong."""
        self.violations.append(FieldViolation(field, description))

    def done(self) -> None:
        """Raise `ApiError` (INVALID_ARGUMENT) if any field was wrong."""
        if self.violations:
            raise invalid_argument(self.violations)

    def tenant_id(self, value: str, field: str = "tenant_id") -> str:
        """A tenant id: 1 to 128 printable characters."""
        if not value:
            self.fail(field, "required")
        elif len(value) > TENANT_ID_MAX_CHARS:
            self.fail(field, f"at most {TENANT_ID_MAX_CHARS} characters")
        elif not value.isprintable():
            self.fail(field, "must not contain control characters")
        return value

    def session_id(self, value: str, field: str = "session_id") -> str:
        """A required session id (`session_id`'s rules); "" if wrong."""
        if not value:
            self.fail(field, "required")
            return ""
        return self.optional_session_id(value, field) or ""

    def optional_session_id(self, value: str, field: str = "session_id") -> str | None:
        """A session id, or None when `value` is empty: 1 to 128 printable characters,
        not starting or ending with whitespace (AIP-122: the caller's own ids, such as a
        framework's "user-123" or thread id, are welcome). An id in UUID form is taken
        in its canonical lowercase form, as the server writes them."""
        found = self.own_id(value, field)
        if found is not None and len(found) == 36 and _UUID.fullmatch(found) is not None:
            return found.lower()
        return found

    def own_id(self, value: str, field: str) -> str | None:
        """A caller's own id (of a session, a checkpoint), or None when `value` is empty
        or wrong: 1 to 128 printable characters, not starting or ending with whitespace
        (AIP-122)."""
        if not value:
            return None
        if len(value) > SESSION_ID_MAX_CHARS:
            self.fail(field, f"at most {SESSION_ID_MAX_CHARS} characters (got {len(value):,})")
        elif not value.isprintable():
            self.fail(field, "must be printable: no control or line-separator characters")
        elif value != value.strip():
            self.fail(field, "must not start or end with whitespace")
        else:
            return value
        return None

    def uuid(self, value: str, field: str) -> UUID:
        """A required UUID in 8-4-4-4-12 hex form (any case); returns the nil UUID if wrong."""
        if not value:
            self.fail(field, "required")
        return self.optional_uuid(value, field) or UUID(int=0)

    def optional_uuid(self, value: str, field: str) -> UUID | None:
        """A UUID in 8-4-4-4-12 hex form, or None when `value` is empty."""
        if not value:
            return None
        if _UUID.fullmatch(value) is None:
            self.fail(field, "must be a UUID such as 123e4567-e89b-42d3-a456-426614174000")
            return None
        return UUID(value)

    def text(self, value: str, field: str, *, max_chars: int, required: bool = False) -> str:
        """A string of at most `max_chars` characters (non-empty if `required`)."""
        if required and not value:
            self.fail(field, "required")
        elif len(value) > max_chars:
            self.fail(field, f"at most {max_chars:,} characters (got {len(value):,})")
        return value

    def json_text(self, value: str, field: str, *, object_only: bool = False) -> Any:
        """JSON text (RFC 8259: no NaN or Infinity), parsed: integers exact, other
        numbers as doubles. `NOT_JSON` when it is not (or, with `object_only`, not an
        object); the violation is recorded."""
        try:
            parsed = json.loads(value, parse_constant=_no_constants)
        except (ValueError, RecursionError):
            self.fail(field, "must be JSON text")
            return NOT_JSON
        if object_only and not isinstance(parsed, dict):
            self.fail(field, "must be a JSON object")
            return NOT_JSON
        return parsed

    def page_size(self, value: int, *, default: int, maximum: int) -> int:
        """AIP-158: 0 means `default`, above `maximum` is lowered, negative is wrong."""
        if value < 0:
            self.fail("page_size", "must not be negative")
            return default
        return min(value or default, maximum)

    def timestamp(self, value: timestamp_pb2.Timestamp, field: str) -> datetime:
        """A Timestamp within 0001-01-01..9999-12-31, as an aware UTC datetime."""
        if not _MIN_SECONDS <= value.seconds <= _MAX_SECONDS or not 0 <= value.nanos < 10**9:
            self.fail(field, "must be between 0001-01-01 and 9999-12-31 UTC")
            return datetime.now(UTC)
        return value.ToDatetime(tzinfo=UTC)


NOT_JSON = object()
"""What `Checker.json_text` returns for text that is not the JSON asked for."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
MAX_LABELS = 64


def check_labels(check: Checker, labels: dict[str, str], field: str, *, max_pairs: int) -> None:
    """Label keys: 1 to 63 of `[a-z0-9_-]`, starting with a letter; values <= 255 chars."""
    if len(labels) > max_pairs:
        check.fail(field, f"at most {max_pairs} labels")
    for key, value in labels.items():
        if _LABEL_KEY.fullmatch(key) is None:
            check.fail(
                f"{field}[{key!r}]" if key else field,
                "label keys are 1 to 63 characters of a-z, 0-9, _ and -, starting with a letter",
            )
        if len(value) > LABEL_VALUE_MAX_CHARS:
            check.fail(
                f"{field}[{key!r}]", f"label values are at most {LABEL_VALUE_MAX_CHARS} characters"
            )


def check_etag(check: Checker, etag: str, field: str = "etag") -> int | None:
    """An etag as issued by this server (a session revision), or None when empty."""
    if not etag:
        return None
    # ASCII digits only: str.isdigit() also takes "²" and "¹", which int() refuses.
    if not (etag.isascii() and etag.isdigit()) or len(etag) > 18:
        check.fail(field, "malformed etag: give back the `etag` of a Session as read")
        return None
    return int(etag)


def json_metadata(check: Checker, holder: Any, field: str, limits: Limits) -> Any:
    """The `metadata` of a message, session or checkpoint as `metadata_json` gives it
    (parsed; None when it gives none, `NOT_JSON` when wrong), checking whichever form
    it came in against the metadata limit."""
    if not holder.metadata_json:
        if holder.metadata.ByteSize() > limits.max_metadata_bytes:
            check.fail(f"{field}.metadata", f"at most {limits.max_metadata_bytes:,} bytes")
        return None
    where = f"{field}.metadata_json"
    if holder.metadata.fields:
        check.fail(where, "give metadata or metadata_json, not both")
    if len(holder.metadata_json.encode()) > limits.max_metadata_bytes:
        check.fail(where, f"at most {limits.max_metadata_bytes:,} bytes")
        return NOT_JSON
    return check.json_text(holder.metadata_json, where, object_only=True)


def time_range(check: Checker, holder: Any, field: str) -> TimeRange:
    """A `TimeRange` field of a request: start inclusive, end exclusive, start <= end."""
    if not holder.HasField(field):
        return TimeRange()
    bounds = getattr(holder, field)
    start = (
        check.timestamp(bounds.start_time, f"{field}.start_time")
        if bounds.HasField("start_time")
        else None
    )
    end = (
        check.timestamp(bounds.end_time, f"{field}.end_time")
        if bounds.HasField("end_time")
        else None
    )
    if start is not None and end is not None and start > end:
        check.fail(field, "start_time must not be after end_time")
    return TimeRange(start, end)
