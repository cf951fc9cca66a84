"""The SessionService servicer: the resource method groups, composed."""

from __future__ import annotations

from chatstore.v1 import session_service_pb2_grpc
from chatstore_server.api.checkpoints import CheckpointMethods
from chatstore_server.api.compaction import CompactionMethods
from chatstore_server.api.events import EventMethods
from chatstore_server.api.limits import Limits
from chatstore_server.api.messages import MessageMethods
from chatstore_server.api.session_cache import RenderedSessions
from chatstore_server.api.session_lifecycle import SessionLifecycleMethods
from chatstore_server.api.session_list import SessionListMethods
from chatstore_server.api.sessions import SessionMethods
from chatstore_server.api.shared_states import SharedStateMethods
from chatstore_server.api.watch import WatchMethods
from chatstore_server.store import (
    ChangeFeed,
    CheckpointRepository,
    Database,
    EventRepository,
    MessageRepository,
    SessionPolicy,
    SessionRepository,
    SharedStateRepository,
)


# ListMessages answers with its response already encoded (`api.wire`), where the
# generated base class declares the message: the one conflict mypy reports here.
class SessionServicer(  # type: ignore[misc]
    SessionMethods,
    SessionListMethods,
    SessionLifecycleMethods,
    MessageMethods,
    CompactionMethods,
    EventMethods,
    CheckpointMethods,
    SharedStateMethods,
    WatchMethods,
    session_service_pb2_grpc.SessionServiceServicer,
):
    """`chatstore.v1.SessionService` over the store's repositories.

    Args:
        database: The store.
        policy: Session lifecycle periods.
        limits: Request limits.
        feed: Where committed changes are published for watchers.
    """

    def __init__(
        self, database: Database, policy: SessionPolicy, limits: Limits, feed: ChangeFeed
    ) -> None:
        self._database = database
        self._policy = policy
        self._limits = limits
        self._feed = feed
        self._sessions = SessionRepository(database, policy, feed=feed)
        self._rendered = RenderedSessions()
        metadata_bytes = limits.max_metadata_bytes
        self._messages = MessageRepository(
            database, policy, feed=feed, max_metadata_bytes=metadata_bytes
        )
        self._events = EventRepository(
            database, policy=policy, feed=feed, max_metadata_bytes=metadata_bytes
        )
        self._checkpoints = CheckpointRepository(database)
        self._shared_states = SharedStateRepository(database, max_bytes=metadata_bytes)
