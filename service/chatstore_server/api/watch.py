"""WatchSession: replay, then follow, with no gap and no duplicate.

The subscription to the change feed opens *before* the replay reads the store, so a
message committed at any moment is either read by the replay or delivered by the feed
(or both: duplicates are dropped by seq). A message that arrives ahead of one still
missing (commits can finish out of order) makes the watcher read the gap from the
store. Messages therefore leave in strictly increasing seq order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from chatstore.v1 import session_service_pb2
from chatstore_server.api import convert
from chatstore_server.api.errors import ApiError
from chatstore_server.api.session_cache import RenderedSessions
from chatstore_server.api.validation import Checker
from chatstore_server.store import (
    ChangeFeed,
    InvalidReferenceError,
    MessageFilter,
    MessageRepository,
    NotFoundError,
    SessionRepository,
    StoredMessage,
    SubscriptionClosed,
    SubscriptionOverflow,
)

Context = grpc.aio.ServicerContext[Any, Any]

_REPLAY_PAGE = 500


class WatchMethods:
    """WatchSession."""

    _sessions: SessionRepository
    _messages: MessageRepository
    _feed: ChangeFeed
    _rendered: RenderedSessions

    async def _stored(
        self, tenant_id: str, session_id: str, after_seq: int, before_seq: int | None = None
    ) -> AsyncIterator[StoredMessage]:
        """Stored messages with after_seq < seq (< before_seq), oldest first, by page."""
        where = MessageFilter(after_seq=after_seq, before_seq=before_seq)
        cursor = None
        while True:
            page = await self._messages.list(
                tenant_id, session_id, limit=_REPLAY_PAGE, where=where, after=cursor
            )
            for message in page.items:
                yield message
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def WatchSession(  # noqa: N802 (gRPC method name)
        self, request: session_service_pb2.WatchSessionRequest, context: Context
    ) -> AsyncIterator[session_service_pb2.WatchSessionResponse]:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        if request.from_seq < 0:
            check.fail("from_seq", "must not be negative")
        check.done()
        Response = session_service_pb2.WatchSessionResponse  # noqa: N806
        text_id = session_id
        subscription = self._feed.subscribe(tenant_id, session_id)
        try:
            current = await self._sessions.get(tenant_id, session_id)  # NOT_FOUND first
            if request.from_seq > current.last_seq:
                # Else every message up to from_seq would be skipped as already seen.
                raise InvalidReferenceError(
                    "from_seq", f"beyond the session's newest message ({current.last_seq})"
                )
            # The stream is open from here (subscribed, session found): say so at once,
            # so that a caller waiting for the connection does not wait for a message.
            await context.send_initial_metadata(())
            last = request.from_seq
            async for stored in self._stored(tenant_id, session_id, last):
                yield Response(message=convert.message_to_proto(stored, text_id))
                last = stored.seq
            while True:
                try:
                    change = await subscription.get()
                except SubscriptionOverflow:
                    raise ApiError(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"the watcher fell too far behind; reconnect with from_seq={last}",
                        reason="WATCH_TOO_SLOW",
                        metadata={"session_id": session_id, "last_seq": str(last)},
                    ) from None
                except SubscriptionClosed:
                    raise ApiError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"the server is shutting down; reconnect with from_seq={last}",
                        reason="SERVER_SHUTTING_DOWN",
                        metadata={"session_id": session_id, "last_seq": str(last)},
                    ) from None
                if change.purged:
                    raise NotFoundError("session", session_id)
                if change.rewound_to is not None:
                    # Messages after it are gone; seqs are never reused, so `last` (the
                    # newest seq sent) stays where it is.
                    record = change.session or await self._sessions.get(tenant_id, session_id)
                    yield Response(
                        rewound=session_service_pb2.Rewound(
                            to_seq=change.rewound_to,
                            session=self._rendered.render(tenant_id, record),
                        )
                    )
                    continue
                if change.session is not None:
                    yield Response(session=self._rendered.render(tenant_id, change.session))
                elif change.resync_session:  # changed by another server process
                    record = await self._sessions.get(tenant_id, session_id)
                    yield Response(session=self._rendered.render(tenant_id, record))
                if change.resync_messages:
                    async for stored in self._stored(tenant_id, session_id, last):
                        yield Response(message=convert.message_to_proto(stored, text_id))
                        last = stored.seq
                for message in change.messages:
                    if message.seq <= last:
                        continue
                    if message.seq > last + 1:
                        async for missed in self._stored(
                            tenant_id, session_id, last, before_seq=message.seq
                        ):
                            yield Response(message=convert.message_to_proto(missed, text_id))
                            last = missed.seq
                    yield Response(message=convert.message_to_proto(message, text_id))
                    last = message.seq
        finally:
            subscription.close()
