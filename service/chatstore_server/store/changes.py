"""In-process change feed: what committed, for the watchers of a session.

Repositories publish a `Change` after their transaction commits; `WatchSession`
subscribes per session. A subscription buffers a bounded number of changes: one that
falls further behind is marked overflowed rather than growing without bound, and its
reader gets `SubscriptionOverflow`.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

from chatstore_server.store.records import MessageRecord, SessionRecord


@dataclass(frozen=True, slots=True)
class Change:
    """One committed write to a session: new messages, a new session state, or its end.

    Changes made by another server process arrive without records, as hints: read new
    messages (`resync_messages`) or the session (`resync_session`) from the store.
    A session is known by its tenant and id together (ids are unique per tenant only).
    """

    tenant_id: str
    session_id: str
    messages: tuple[MessageRecord, ...] = ()
    session: SessionRecord | None = None
    purged: bool = False
    resync_messages: bool = False
    resync_session: bool = False
    rewound_to: int | None = None
    """Set when messages were removed (a rewind): every message after this seq."""


class SubscriptionOverflow(Exception):
    """The subscriber fell more than its buffer behind; it must resume from the store."""


class SubscriptionClosed(Exception):
    """The feed shut down (the server is stopping)."""


class Subscription:
    """The changes of one session, from when it was opened, buffered up to `limit`."""

    def __init__(self, feed: ChangeFeed, key: tuple[str, str], limit: int) -> None:
        self._feed = feed
        self.key = key
        """The session's (tenant_id, id)."""
        self._limit = limit
        self._buffer: collections.deque[Change] = collections.deque()
        self._ready = asyncio.Event()
        self._overflowed = False
        self._closed = False

    def _offer(self, change: Change) -> None:
        if len(self._buffer) >= self._limit:
            self._overflowed = True
        else:
            self._buffer.append(change)
        self._ready.set()

    def _close(self) -> None:
        self._closed = True
        self._ready.set()

    async def get(self) -> Change:
        """The next change, waiting for one.

        Raises:
            SubscriptionOverflow: The buffer overflowed; changes were dropped.
            SubscriptionClosed: The feed closed.
        """
        while not self._buffer:
            if self._overflowed:
                raise SubscriptionOverflow
            if self._closed:
                raise SubscriptionClosed
            self._ready.clear()
            await self._ready.wait()
        if self._overflowed:
            raise SubscriptionOverflow
        return self._buffer.popleft()

    def close(self) -> None:
        """Stop receiving changes."""
        self._feed._unsubscribe(self)


class ChangeFeed:
    """Routes each published change to the subscriptions of its session."""

    def __init__(self, buffer_limit: int = 1024) -> None:
        self._buffer_limit = buffer_limit
        self._subscriptions: dict[tuple[str, str], set[Subscription]] = collections.defaultdict(set)
        self._closed = False

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        return sum(len(s) for s in self._subscriptions.values())

    def subscribe(self, tenant_id: str, session_id: str) -> Subscription:
        """Open a subscription to the tenant's session's changes from now on."""
        subscription = Subscription(self, (tenant_id, session_id), self._buffer_limit)
        if self._closed:
            subscription._close()
        else:
            self._subscriptions[subscription.key].add(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscriptions.get(subscription.key)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscriptions[subscription.key]

    def publish(self, change: Change) -> None:
        """Deliver a committed change to the session's subscribers (never blocks)."""
        for subscription in self._subscriptions.get((change.tenant_id, change.session_id), ()):
            subscription._offer(change)

    def resync_all(self) -> None:
        """Tell every subscriber to catch up from the store (changes may have been missed)."""
        for (tenant_id, session_id), subscribers in self._subscriptions.items():
            for subscription in subscribers:
                subscription._offer(Change(tenant_id, session_id, resync_messages=True))

    def close(self) -> None:
        """End every subscription (they drain, then get `SubscriptionClosed`)."""
        self._closed = True
        for subscribers in self._subscriptions.values():
            for subscription in subscribers:
                subscription._close()
