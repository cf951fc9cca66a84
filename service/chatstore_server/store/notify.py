"""Cross-process change notification over PostgreSQL LISTEN/NOTIFY.

A write transaction announces what it changed with `pg_notify`, which PostgreSQL
delivers only if and when the transaction commits, in commit order. Every server
process listens (`ChangeListener`) and turns the announcements of *other* processes
into resync hints on its own `ChangeFeed`: the watchers read what is new from the
store. Their own process's changes already reach them directly, with the records.

SQLite has no such channel: with SQLite, watchers see the changes of their own process
only, which is why several workers need PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from chatstore_server.store.changes import Change, ChangeFeed
from chatstore_server.store.connection import StoreConnection

logger = logging.getLogger("chatstore_server.store")

CHANNEL = "chatstore_changes"
PROCESS_TOKEN = uuid.uuid4().hex[:16]
"""Identifies this process's announcements, which its listener skips."""

What = Literal["messages", "session", "purged", "rewound"]
_CODES: dict[What, str] = {"messages": "m", "session": "s", "purged": "x", "rewound": "r"}


def payload(tenant_id: str, session_id: str, what: What, to_seq: int | None = None) -> str:
    """The notification text for a change of `what` in the tenant's session, from this
    process; for "rewound", the newest seq kept. (PostgreSQL caps a payload at 8,000
    bytes: a tenant and a session id of 128 characters each, even of 4-byte characters,
    fit.)"""
    body: dict[str, object] = {"p": PROCESS_TOKEN, "t": tenant_id, "s": session_id}
    body["k"] = _CODES[what]
    if to_seq is not None:
        body["r"] = to_seq
    return json.dumps(body)


async def announce(
    conn: StoreConnection, tenant_id: str, session_id: str, what: What, to_seq: int | None = None
) -> None:
    """Queue a notification of the change in the caller's transaction (PostgreSQL only).

    A statement the transaction runs anyway can carry it instead, in one round trip
    less: `SELECT pg_notify(CHANNEL, payload(...))` as an extra column (see
    `appends.reserve`).
    """
    if conn.dialect.name != "postgresql":
        return
    await conn.execute(
        select(func.pg_notify(CHANNEL, payload(tenant_id, session_id, what, to_seq)))
    )


class ChangeListener:
    """Listens on one dedicated connection and feeds other processes' changes to `feed`.

    Reconnects with backoff when the connection drops; after every (re)connect it asks
    every local watcher to resync from the store, since notifications sent while it
    was away are lost. `close()` ends it (at once when its task is also cancelled; in
    any case at its next step, even if a driver swallowed the cancellation).
    """

    def __init__(
        self, database_url: str, feed: ChangeFeed, *, connect_timeout_seconds: float = 5.0
    ) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._feed = feed
        self._timeout = connect_timeout_seconds
        self._closed = False
        self.connected = asyncio.Event()

    def close(self) -> None:
        """Stop listening: `run` returns instead of reconnecting."""
        self._closed = True

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            body = json.loads(payload)
            if body["p"] == PROCESS_TOKEN:
                return
            tenant_id, session_id, kind = body["t"], body["s"], body["k"]
            if not isinstance(tenant_id, str) or not isinstance(session_id, str):
                raise TypeError("ids must be strings")
            rewound = body["r"] if kind == "r" else None
            if rewound is not None and not isinstance(rewound, int):
                raise TypeError("a rewind's seq must be an integer")
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed change notification: %r", payload)
            return
        self._feed.publish(
            Change(
                tenant_id,
                session_id,
                purged=kind == "x",
                resync_messages=kind == "m",
                resync_session=kind in ("s", "r"),
                rewound_to=rewound,
            )
        )

    async def run(self) -> None:
        """Listen until cancelled or closed."""
        import asyncpg  # the listener is PostgreSQL-only; keep the import here

        delay = 0.1
        while not self._closed:
            try:
                conn = await asyncpg.connect(self._dsn, timeout=self._timeout)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _, lost=lost: lost.set())
            try:
                await conn.add_listener(CHANNEL, self._on_notification)
                delay = 0.1
                self.connected.set()
                self._feed.resync_all()
                while not lost.is_set() and not self._closed:
                    # A ping now and then also notices a connection that died silently.
                    # (asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow
                    # a cancellation that lands as the awaited event fires.)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(5.0):
                            await lost.wait()
                    if not lost.is_set() and not self._closed:
                        await conn.execute("SELECT 1", timeout=self._timeout)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pass
            finally:
                self.connected.clear()
                if lost.is_set() or self._closed:
                    conn.terminate()  # gone, or going: no goodbye to wait for
                else:
                    try:
                        async with asyncio.timeout(1.0):
                            await conn.close()
                    except Exception:  # noqa: BLE001 - closing a connection that failed
                        conn.terminate()
            if not self._closed:
                logger.warning("lost the change-notification connection; reconnecting")
