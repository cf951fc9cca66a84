"""The store's errors, and the one place where driver errors become them.

    StoreError
    ├── NotFoundError        the row does not exist (in the caller's tenant)
    ├── AlreadyExistsError   a unique key is taken (same on SQLite and PostgreSQL)
    ├── ConflictError        a precondition (etag, expected seq) no longer holds
    ├── SessionStateError    the session's state forbids the write (deleted, ...)
    ├── RequestReusedError   a request id came back with a different request
    ├── CounterOverflowError a write would take a counter past its largest value
    ├── InvalidReferenceError a seq or id in the request does not fit the session
    └── UnavailableError     the database cannot be reached or is busy; worth a retry

Every other driver error propagates unchanged: it is a bug, not a condition the caller
can act on.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

# SQLSTATE class 08 (connection exception), 53 (insufficient resources), 57P (operator
# intervention, e.g. shutdown), 40001/40P01 (serialization failure, deadlock).
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57P", "40001", "40P01")
_UNIQUE_VIOLATION_SQLSTATE = "23505"
_SQLITE_UNIQUE_ERRORS = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}
# SQLite result codes that a retry may outlast: busy or locked past busy_timeout, a file
# that cannot be opened or written now. Others (SQLITE_ERROR: a statement SQLite
# refuses) are faults, not outages.
_SQLITE_UNAVAILABLE_ERRORS = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_READONLY",
    "SQLITE_PROTOCOL",
)


class StoreError(Exception):
    """Root of the store's errors."""


class _KeyedError(StoreError):
    def __init__(self, resource: str, key: str, message: str) -> None:
        super().__init__(message)
        self.resource = resource  # "session", "message", "session_key"
        self.key = key  # the id that was looked for or taken


class NotFoundError(_KeyedError):
    """The row does not exist, or not in the caller's tenant."""

    def __init__(self, resource: str, key: object) -> None:
        super().__init__(resource, str(key), f"{resource} {key} not found")


class AlreadyExistsError(_KeyedError):
    """A unique key (an id) is already taken."""

    def __init__(self, resource: str, key: object) -> None:
        super().__init__(resource, str(key), f"{resource} {key} already exists")


class ConflictError(_KeyedError):
    """A write's precondition (the session's etag) no longer holds; nothing changed."""

    def __init__(self, resource: str, key: object, detail: str) -> None:
        super().__init__(resource, str(key), f"{resource} {key}: {detail}")


class SessionStateError(StoreError):
    """The session's state forbids the write; nothing changed.

    `state` is one of `DELETED`, `ARCHIVED`, `READ_ONLY`, `LIVE` (for an undelete),
    `COMPACTED_BEYOND` (a compaction that would move back), `COMPACTED_HISTORY` (a
    rewind into the compacted history).
    """

    def __init__(self, session_id: object, state: str, message: str) -> None:
        super().__init__(message)
        self.session_id = str(session_id)
        self.state = state


class RequestReusedError(StoreError):
    """A request id was used before, for this session, with a different request."""

    def __init__(self, session_id: object, request_id: str) -> None:
        super().__init__(f"request_id {request_id!r} was used before with a different request")
        self.session_id = str(session_id)
        self.request_id = request_id


class CounterOverflowError(StoreError):
    """A write would take one of the session's counters (`counter`, as the API names
    it: `token_usage.total_tokens`) past the largest 64-bit integer; nothing changed."""

    def __init__(self, session_id: object, counter: str) -> None:
        super().__init__(f"session {session_id}: {counter} would exceed 2^63-1")
        self.session_id = str(session_id)
        self.counter = counter


class InvalidReferenceError(StoreError):
    """A value of the request does not fit the session's state (a seq beyond its newest).

    `field` names the request field, as the API spells it.
    """

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


class UnavailableError(StoreError):
    """The database cannot be reached, or is too busy to answer now."""


def _sqlstate(error: BaseException | None) -> str | None:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return state if isinstance(state, str) else None


def _is_unique_violation(error: sa_exc.IntegrityError) -> bool:
    if _sqlstate(error.orig) == _UNIQUE_VIOLATION_SQLSTATE:
        return True
    if isinstance(error.orig, sqlite3.IntegrityError):
        return getattr(error.orig, "sqlite_errorname", "") in _SQLITE_UNIQUE_ERRORS
    return False


def _is_unavailable(error: sa_exc.DBAPIError) -> bool:
    if error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.InterfaceError):
        return True
    state = _sqlstate(error.orig)
    if state is not None:
        return state.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)
    if not isinstance(error, sa_exc.OperationalError):
        return False
    # SQLite: by its result code; one without (not from the sqlite3 module) is
    # taken as an outage, as before result codes were read.
    name = getattr(error.orig, "sqlite_errorname", None)
    return name is None or name.startswith(_SQLITE_UNAVAILABLE_ERRORS)


def translated(error: BaseException, resource: str = "row", key: object = "") -> StoreError | None:
    """The `StoreError` that a driver error stands for, or None for an error that
    propagates unchanged (see `translate_errors`, which raises it)."""
    if isinstance(error, sa_exc.IntegrityError):
        return AlreadyExistsError(resource, key) if _is_unique_violation(error) else None
    if isinstance(error, sa_exc.DBAPIError):
        if _is_unavailable(error):
            return UnavailableError("the database is unavailable")
        return None
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return UnavailableError("the database is busy: no connection came free")
    if isinstance(error, (OSError, TimeoutError, sqlite3.Error)):
        return UnavailableError("the database is unavailable")
    return None


def raise_translated(error: BaseException, resource: str = "row", key: object = "") -> None:
    """Raise `translated(error)` (from `error`) if it is a `StoreError`; else return,
    for the caller to let `error` propagate as it is."""
    store_error = translated(error, resource, key)
    if store_error is not None:
        raise store_error from error


@contextlib.contextmanager
def translate_errors(resource: str = "row", key: object = "") -> Iterator[None]:
    """Turn driver errors raised inside the block into `StoreError`s.

    Args:
        resource: What a unique violation would be about ("session", "message").
        key: Its key, for the message.

    Raises:
        AlreadyExistsError: A unique constraint was violated.
        UnavailableError: The database is unreachable, shutting down or busy.
    """
    try:
        yield
    except (sa_exc.SQLAlchemyError, OSError, TimeoutError, sqlite3.Error) as error:
        raise_translated(error, resource, key)
        raise
