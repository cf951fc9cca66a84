"""Tenant scoping: every lookup of a session goes through here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, bindparam, select

from chatstore_server.store.connection import StoreConnection
from chatstore_server.store.errors import NotFoundError
from chatstore_server.store.prepared import Prepared
from chatstore_server.store.records import SessionRecord
from chatstore_server.store.rows import session_from_columns
from chatstore_server.store.schema import sessions


def in_tenant(tenant_id: str, session_id: str) -> list[ColumnElement[bool]]:
    """The conditions that pick the session, only within its tenant."""
    return [sessions.c.id == session_id, sessions.c.tenant_id == tenant_id]


# SELECT every column of the session, only within its tenant; built once (building a
# statement costs more than running it), its parameters from `session_params`.
_SELECT_SESSION = select(sessions).where(
    sessions.c.id == bindparam("session_id"), sessions.c.tenant_id == bindparam("tenant_id")
)
SESSION_BY_ID = Prepared(_SELECT_SESSION)
# The same, locking the row until the transaction ends (PostgreSQL; SQLite's writer
# already holds the database's write lock).
SESSION_BY_ID_FOR_UPDATE = _SELECT_SESSION.with_for_update()
_SESSION_EXISTS = _SELECT_SESSION.with_only_columns(sessions.c.id)


def session_columns(*columns: ColumnElement[Any]) -> Prepared:
    """SELECT these columns of the session, only within its tenant (parameters from
    `session_params`): for a read that needs a few of the row's columns, not all."""
    return Prepared(_SELECT_SESSION.with_only_columns(*columns))


SESSION_VERSION = session_columns(sessions.c.revision, sessions.c.create_time)
"""The session's revision and create time: which version of which row it is (every
write to the row bumps the revision; a session purged and made again under the same id
starts again at revision 1, with a new create time)."""


def session_params(tenant_id: str, session_id: str) -> dict[str, Any]:
    """The parameters of `SESSION_BY_ID`."""
    return {"session_id": session_id, "tenant_id": tenant_id}


async def read_session(
    conn: StoreConnection, tenant_id: str, session_id: str
) -> SessionRecord | None:
    """The session (soft-deleted ones too), or None when the tenant has no such session."""
    rows = await conn.fetch_into(
        SESSION_BY_ID, session_params(tenant_id, session_id), session_from_columns
    )
    return rows[0] if rows else None


async def require_session(conn: StoreConnection, tenant_id: str, session_id: str) -> None:
    """Raise NotFoundError unless the session exists in the tenant.

    Used after a child query (messages, events, checkpoints) came back empty, to tell
    "none yet" from "no such session" with one more statement only in that case.
    """
    found = await conn.scalar(_SESSION_EXISTS, session_params(tenant_id, session_id))
    if found is None:
        raise NotFoundError("session", session_id)
