"""The SessionService servicer: the resource method groups, composed."""

from __future__ import annotations

from chatstore.v1 import session_service_pb2_grpc
from chatstore_server.api.limits import Limits
from chatstore_server.api.messages import MessageMethods
from chatstore_server.api.session_lifecycle import SessionLifecycleMethods
from chatstore_server.api.session_list import SessionListMethods
from chatstore_server.api.sessions import SessionMethods
from chatstore_server.store import MessageRepository, SessionRepository


class SessionServicer(
    SessionMethods,
    SessionListMethods,
    SessionLifecycleMethods,
    MessageMethods,
    session_service_pb2_grpc.SessionServiceServicer,
):
    """`chatstore.v1.SessionService` over the store's repositories."""

    def __init__(
        self, sessions: SessionRepository, messages: MessageRepository, limits: Limits
    ) -> None:
        self._sessions = sessions
        self._messages = messages
        self._limits = limits
