"""SessionService methods for an agent's context: GetContextWindow, CompactSession."""

from __future__ import annotations

from typing import Any

import grpc

from chatstore.v1 import session_pb2, session_service_pb2
from chatstore_server.api import convert, pagination
from chatstore_server.api.limits import Limits
from chatstore_server.api.session_cache import RenderedSessions
from chatstore_server.api.validation import Checker, check_etag
from chatstore_server.store import (
    CONTEXT_MAX_MESSAGES,
    Database,
    SessionRepository,
    context_window,
    newest,
)

Context = grpc.aio.ServicerContext[Any, Any]


class CompactionMethods:
    """GetContextWindow, CompactSession."""

    _database: Database
    _sessions: SessionRepository
    _limits: Limits
    _rendered: RenderedSessions

    async def GetContextWindow(  # noqa: N802 (gRPC method name)
        self, request: session_service_pb2.GetContextWindowRequest, context: Context
    ) -> session_service_pb2.ContextWindow:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        if request.max_messages < 0:
            check.fail("max_messages", "must not be negative")
        if request.max_tokens < 0:
            check.fail("max_tokens", "must not be negative")
        if not request.max_messages and not request.max_tokens:
            check.fail("max_messages", "set max_messages, max_tokens or both")
        check.done()
        window = await context_window(
            self._database,
            tenant_id,
            session_id,
            max_messages=min(request.max_messages or CONTEXT_MAX_MESSAGES, CONTEXT_MAX_MESSAGES),
            max_tokens=request.max_tokens or None,
        )
        response = convert.context_window_to_proto(window, session_id)
        # Within the response limit, the newest messages win.
        limit = self._limits.max_response_bytes
        if pagination.fits(response, limit):
            return response
        kept = pagination.fitting(response.messages[::-1], limit)
        cut = newest(window, kept)
        if cut is not window:
            del response.messages[: len(window.messages) - len(cut.messages)]
            response.token_count = cut.token_count
            response.truncated = cut.truncated
        return response

    async def CompactSession(  # noqa: N802
        self, request: session_service_pb2.CompactSessionRequest, context: Context
    ) -> session_pb2.Session:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        if request.through_seq < 1:
            check.fail("through_seq", "must be 1 or more")
        check.text(request.recap, "recap", max_chars=self._limits.max_content_chars, required=True)
        revision = check_etag(check, request.etag)
        check.done()
        record = await self._sessions.compact(
            tenant_id,
            session_id,
            through_seq=request.through_seq,
            recap=request.recap,
            revision=revision,
        )
        return self._rendered.render(tenant_id, record)
