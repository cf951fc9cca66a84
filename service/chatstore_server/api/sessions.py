"""SessionService methods that create and read sessions, and UpdateSession
(AIP-131, 133, 134)."""

from __future__ import annotations

import dataclasses
from typing import Any

import grpc

from chatstore.v1 import session_pb2, session_service_pb2
from chatstore_server.api import convert, pagination, session_fields
from chatstore_server.api.limits import Limits
from chatstore_server.api.session_cache import RenderedSessions
from chatstore_server.api.validation import Checker, check_etag
from chatstore_server.store import SessionRepository
from chatstore_server.store.schema import AGENT_ID_MAX_CHARS

Context = grpc.aio.ServicerContext[Any, Any]

FULL_VIEW_MESSAGES = 100
_VIEWS = frozenset(session_service_pb2.SessionView.values())
"""How many of the newest messages `GetSession` with view FULL embeds."""


class SessionMethods:
    """CreateSession, GetOrCreateSession, GetSession, UpdateSession."""

    _sessions: SessionRepository
    _limits: Limits
    _rendered: RenderedSessions

    async def CreateSession(  # noqa: N802 (gRPC method name)
        self, request: session_service_pb2.CreateSessionRequest, context: Context
    ) -> session_pb2.Session:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.optional_session_id(request.session_id)
        new = session_fields.new_session(check, request.session, self._limits)
        check.done()
        record = await self._sessions.create(tenant_id, new, session_id=session_id)
        return self._rendered.render(tenant_id, record)

    async def GetOrCreateSession(  # noqa: N802
        self, request: session_service_pb2.GetOrCreateSessionRequest, context: Context
    ) -> session_service_pb2.GetOrCreateSessionResponse:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        agent_id = check.text(request.agent_id, "agent_id", max_chars=AGENT_ID_MAX_CHARS)
        if not request.HasField("key"):
            check.fail("key", "required")
        key = session_fields.key(check, request.key, "key")
        new = session_fields.new_session(check, request.defaults, self._limits, with_key=False)
        check.done()
        record, created = await self._sessions.get_or_create(
            tenant_id, dataclasses.replace(new, agent_id=agent_id, key=key)
        )
        return session_service_pb2.GetOrCreateSessionResponse(
            session=self._rendered.render(tenant_id, record), created=created
        )

    async def GetSession(  # noqa: N802
        self, request: session_service_pb2.GetSessionRequest, context: Context
    ) -> session_pb2.Session:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        if request.view not in _VIEWS:
            check.fail("view", "unknown view")
        check.done()
        if request.view == session_service_pb2.SESSION_VIEW_FULL:
            record, recent = await self._sessions.get_with_recent(
                tenant_id, session_id, FULL_VIEW_MESSAGES
            )
            session = convert.session_to_proto(record, recent)
            # Within the response limit, the newest messages win.
            limit = self._limits.max_response_bytes
            if not pagination.fits(session, limit):
                kept = pagination.fitting(session.recent_messages[::-1], limit)
                del session.recent_messages[: len(recent) - kept]
            return session
        return await self._basic_session(tenant_id, session_id)

    async def _basic_session(self, tenant_id: str, session_id: str) -> session_pb2.Session:
        """The session's BASIC view: from `_rendered` when the row's version is still
        the one it was built from (two columns read), else read and built anew."""
        held = self._rendered.version(tenant_id, session_id)
        if held is not None and await self._sessions.version(tenant_id, session_id) == held:
            session = self._rendered.get(tenant_id, session_id, held)
            if session is not None:
                return session
        return self._rendered.render(tenant_id, await self._sessions.get(tenant_id, session_id))

    async def UpdateSession(  # noqa: N802
        self, request: session_service_pb2.UpdateSessionRequest, context: Context
    ) -> session_pb2.Session:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session.id, "session.id")
        revision = check_etag(check, request.etag)
        fields = session_fields.mask_fields(check, request)
        values = session_fields.session_values(check, request.session, fields, self._limits)
        check.done()
        if not values:
            return await self._basic_session(tenant_id, session_id)
        record = await self._sessions.update(tenant_id, session_id, values, revision=revision)
        return self._rendered.render(tenant_id, record)
