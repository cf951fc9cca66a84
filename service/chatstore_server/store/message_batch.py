"""SQLite message appends written together: the appends that arrive while the writer is
busy are written by one write block, with a few statements for all of them.

An append alone costs three statements in its own savepoint: the session row's
`UPDATE ... RETURNING` (which reserves its seqs and moves every counter), the request
id's record and the messages' INSERT; SQLite's share of that was about 60 us per append
on the benchmark machine. Appends that queue up meanwhile are written as one block
instead: one `UPDATE ... RETURNING` per session (reserving the seqs of all of that
session's appends at once, in arrival order), one INSERT of every request id and one of
every message: about 12 us per append for 13 appends to one session. They commit
together, in one transaction, as the blocks of a group commit always did, and each
caller is answered after that commit.

What each caller sees is what it would see alone, but for one thing: the session in its
answer is the session as committed, which also counts the appends that were written
with it (nothing ever saw the states between them: they were never committed apart).

The fast path only takes what it can write without a doubt: appends without a
precondition, to writable sessions, with request ids and message ids that are free.
Anything else (a session that is not there or not writable, a request id used before, a
message id taken, any error in the block) sends the appends concerned back to their
callers to be written alone, the way that decides each case (`MessageRepository`): a
refused session's appends are sent back without the rest of the block being undone;
any other surprise rolls the whole block back (its savepoint) and sends every append of
it back. A caller cancelled before its append was taken is left out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chatstore_server.store.appends import (
    RECORD_REQUESTS,
    Precondition,
    changed_by_reserve,
    request_values,
    reserve_params,
    reserve_statement,
)
from chatstore_server.store.changes import Change, ChangeFeed
from chatstore_server.store.connection import StoreConnection
from chatstore_server.store.database import Database
from chatstore_server.store.prepared import Prepared
from chatstore_server.store.records import MessageRecord, NewMessage, SessionRecord
from chatstore_server.store.rows import message_values, session_after, session_from_columns
from chatstore_server.store.schema import messages
from chatstore_server.store.scope import read_session

MESSAGE_INSERT = Prepared(messages.insert(), column_keys=[c.name for c in messages.c])
"""The INSERT of messages, one parameter set per message (`message_values`)."""
Appended = tuple[SessionRecord, list[MessageRecord]]
HELD_SESSIONS = 4_096
"""Sessions whose last committed record a batcher keeps, at most (oldest out first)."""
_RESERVE = reserve_statement("message", False, False, False)
_CHANGED = changed_by_reserve("message")
_RESERVE_CHANGED = reserve_statement("message", False, False, False, _CHANGED)


@dataclass(slots=True, eq=False)
class PendingAppend:
    """One append, with everything made before the write (ids, bodies, estimates,
    sizes, the session's counter changes): what the write needs besides the seqs."""

    tenant_id: str
    session_id: str
    batch: Sequence[NewMessage]
    now: datetime
    created: list[datetime]
    ids: list[uuid.UUID]
    encoded: list[bytes]
    estimates: list[int]
    sizes: list[int]
    counter_params: dict[str, Any]
    """`reserve`'s counter parameters: preview, added bytes and tokens, ephemeral expiry."""
    request_id: str | None
    fingerprint: str
    supplied: str
    """The caller-supplied message ids, for a clash's error message."""

    def records(self, first_seq: int) -> list[MessageRecord]:
        """The messages as stored, numbered from `first_seq`."""
        session_id = self.session_id
        return [
            MessageRecord(
                str(self.ids[offset]),
                session_id,
                first_seq + offset,
                message.role,
                self.encoded[offset],
                self.estimates[offset],
                self.sizes[offset],
            )
            for offset, message in enumerate(self.batch)
        ]

    def rows(self, stored: Sequence[MessageRecord]) -> list[dict[str, Any]]:
        """`MESSAGE_INSERT`'s parameter sets for the stored messages."""
        tenant_id = self.tenant_id
        return [
            message_values(tenant_id, record, id, message.token_count, at, message.tool_call_id)
            for record, id, message, at in zip(
                stored, self.ids, self.batch, self.created, strict=True
            )
        ]


class _Redo(Exception):
    """The block met something the fast path does not decide: undo it, send each append
    back to be written alone."""


@dataclass(slots=True, eq=False)
class _Queued:
    pending: PendingAppend
    answer: asyncio.Future[Appended | None]


class MessageBatcher:
    """Writes the SQLite appends queued while the writer is busy as one block.

    Owned by one event loop. `feed` hears of each append written here, in seq order,
    once committed.
    """

    def __init__(self, database: Database, feed: ChangeFeed) -> None:
        self._db = database
        self._feed = feed
        self._queue: list[_Queued] = []
        self._writing: asyncio.Task[None] | None = None
        # By (tenant, session id): its record as this batcher's last committed block left it.
        self._held: dict[tuple[str, str], SessionRecord] = {}

    async def append(self, pending: PendingAppend) -> Appended | None:
        """Write `pending` with the other appends waiting; what it stored, or None when
        it must be written alone (see the module's docstring).

        Raises:
            UnavailableError: The block's transaction did not commit, or the writer
                could not be had.
        """
        answer: asyncio.Future[Appended | None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(pending, answer))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_queued(), name="chatstore-appends")
        return await answer

    async def _write_queued(self) -> None:
        try:
            while self._queue:
                taken = [q for q in self._queue if not q.answer.done()]  # not cancelled
                self._queue = []
                if taken:
                    await self._write(taken)
        finally:
            self._writing = None
            for left in self._queue:  # only if this task itself was cancelled
                left.answer.cancel()

    async def _write(self, taken: list[_Queued]) -> None:
        held = self._held
        try:
            async with self._db.write() as conn:
                try:
                    written, alone = await _write_together(conn, taken, held)
                except Exception as error:
                    raise _Redo from error
        except _Redo:
            written, alone = {}, taken
        except Exception as error:  # noqa: BLE001 - the commit failed or no writer: each caller gets it
            held.clear()  # what was kept may be what did not commit
            for queued in taken:
                _settle(queued.answer, error=error)
            return
        except BaseException:
            held.clear()
            for queued in taken:
                queued.answer.cancel()
            raise
        for session, _ in written.values():  # committed: the rows as they now are
            key = (session.tenant_id, session.id)
            held.pop(key, None)
            if len(held) >= HELD_SESSIONS:
                del held[next(iter(held))]
            held[key] = session
        for queued in alone:
            _settle(queued.answer, None)
        for queued, appended in written.items():
            pending = queued.pending
            self._feed.publish(
                Change(pending.tenant_id, pending.session_id, messages=tuple(appended[1]))
            )
            _settle(queued.answer, appended)


def _settle(
    answer: asyncio.Future[Appended | None],
    result: Appended | None = None,
    *,
    error: Exception | None = None,
) -> None:
    if answer.done():  # its caller was cancelled meanwhile (what it asked for is written)
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(result)


async def _write_together(
    conn: StoreConnection, taken: list[_Queued], held: dict[tuple[str, str], SessionRecord]
) -> tuple[dict[_Queued, Appended], list[_Queued]]:
    """The appends in one block: what each stored, and those to be written alone (their
    sessions refused the append: nothing of theirs was written). `held`: sessions'
    committed records, by id (`_reserve`).

    Raises:
        _Redo: A request id was used before, or twice here.
        Whatever a statement raised (a message id taken).
    """
    by_session: dict[tuple[str, str], list[_Queued]] = {}
    for queued in taken:
        key = (queued.pending.tenant_id, queued.pending.session_id)
        by_session.setdefault(key, []).append(queued)
    written: dict[_Queued, Appended] = {}
    alone: list[_Queued] = []
    for (tenant_id, session_id), appends in by_session.items():
        session = await _reserve(
            conn,
            tenant_id,
            session_id,
            [q.pending for q in appends],
            held.get((tenant_id, session_id)),
        )
        if session is None:
            alone.extend(appends)
            continue
        first_seq = session.last_seq - sum(len(q.pending.batch) for q in appends) + 1
        for queued in appends:
            stored = queued.pending.records(first_seq)
            first_seq += len(stored)
            written[queued] = (session, stored)
    requests = []
    for queued, (_, stored) in written.items():
        pending = queued.pending
        if pending.request_id:
            requests.append(
                request_values(
                    pending.tenant_id,
                    pending.session_id,
                    "message",
                    pending.request_id,
                    len(stored),
                    stored[-1].seq,
                    pending.fingerprint,
                    pending.now,
                )
            )
    if requests and await conn.execute_many(RECORD_REQUESTS, requests) != len(requests):
        raise _Redo("a request id was used before")
    rows = [row for queued, (_, stored) in written.items() for row in queued.pending.rows(stored)]
    if rows:
        await conn.execute_many(MESSAGE_INSERT, rows)
    return written, alone


async def _reserve(
    conn: StoreConnection,
    tenant_id: str,
    session_id: str,
    appends: list[PendingAppend],
    before: SessionRecord | None,
) -> SessionRecord | None:
    """The seqs of every one of `appends` (one session's, in order) reserved at once
    and the session's counters moved for all of them; the session after, or None if it
    refused (not there, deleted, archived or read-only).

    `before` is the session as the last committed append here left it, if known: then
    the UPDATE returns only the columns it changes, and when the row was still at that
    version (the revision before the new one, the same create time) the session after
    is `before` with those columns; otherwise the row is read whole. Every write to a
    session row bumps its revision, so nothing else of the row can have changed.
    (Returning and converting the whole row, JSON columns included, cost about as much
    as SQLite's UPDATE itself.)
    """
    last = appends[-1]
    counters = {
        "preview": last.counter_params["preview"],
        "added_bytes": sum(p.counter_params["added_bytes"] for p in appends),
        "added_input_tokens": sum(p.counter_params["added_input_tokens"] for p in appends),
        "added_output_tokens": sum(p.counter_params["added_output_tokens"] for p in appends),
        "ephemeral_expire_time": max(p.counter_params["ephemeral_expire_time"] for p in appends),
    }
    params = reserve_params(
        tenant_id,
        session_id,
        sum(len(p.batch) for p in appends),
        max(p.now for p in appends),
        Precondition(),
        None,
        counters,
    )
    if before is None:
        returned = await conn.fetch_into(_RESERVE, params, session_from_columns)
        return returned[0] if returned else None
    rows = await conn.fetch(_RESERVE_CHANGED, params)
    if not rows:
        return None
    changed = rows[0]
    if changed["revision"] == before.revision + 1 and changed["create_time"] == before.create_time:
        return session_after(before, changed)
    return await read_session(conn, tenant_id, session_id)  # written meanwhile: read it whole
