"""SessionService methods on the Session resource (AIP-131..135)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import grpc

from chatstore.v1 import session_pb2, session_service_pb2
from chatstore_server.api import convert, pagination
from chatstore_server.api.limits import Limits
from chatstore_server.api.validation import Checker
from chatstore_server.store import SessionCursor, SessionRepository
from chatstore_server.store.schema import AGENT_ID_MAX_CHARS, TITLE_MAX_CHARS
from chatstore_server.store.sessions import MUTABLE_FIELDS

Context = grpc.aio.ServicerContext[Any, Any]

# Every field of Session; those not in MUTABLE_FIELDS are output only.
_SESSION_FIELDS = frozenset(session_pb2.Session.DESCRIPTOR.fields_by_name)


def _session_values(
    check: Checker, session: session_pb2.Session, fields: frozenset[str], limits: Limits
) -> dict[str, Any]:
    """Validate and extract the named mutable fields of `session` as store values."""
    values: dict[str, Any] = {}
    if "agent_id" in fields:
        values["agent_id"] = check.text(
            session.agent_id, "session.agent_id", max_chars=AGENT_ID_MAX_CHARS
        )
    if "title" in fields:
        values["title"] = check.text(session.title, "session.title", max_chars=TITLE_MAX_CHARS)
    if "metadata" in fields:
        size = session.metadata.ByteSize()
        if size > limits.max_metadata_bytes:
            check.fail("session.metadata", f"at most {limits.max_metadata_bytes:,} bytes")
        values["metadata"] = convert.struct_to_dict(session.metadata) or None
    return values


def _populated_fields(session: session_pb2.Session) -> frozenset[str]:
    """The mutable fields that have a non-empty value: AIP-134's implied update mask."""
    populated = {name for name in ("agent_id", "title") if getattr(session, name)}
    if session.HasField("metadata"):
        populated.add("metadata")
    return frozenset(populated)


def _mask_fields(
    check: Checker, request: session_service_pb2.UpdateSessionRequest
) -> frozenset[str]:
    paths = list(request.update_mask.paths)
    if not paths:
        return _populated_fields(request.session)
    if "*" in paths:
        if len(paths) > 1:
            check.fail("update_mask", '"*" must be the only path')
        return MUTABLE_FIELDS
    for index, path in enumerate(paths):
        if path not in _SESSION_FIELDS:
            check.fail(f"update_mask.paths[{index}]", f'"{path}" is not a field of Session')
        elif path not in MUTABLE_FIELDS:
            check.fail(f"update_mask.paths[{index}]", f'"{path}" is output only')
    return frozenset(paths) & MUTABLE_FIELDS


class SessionMethods:
    """CreateSession, GetSession, ListSessions, UpdateSession, DeleteSession."""

    _sessions: SessionRepository
    _limits: Limits

    async def CreateSession(  # noqa: N802 (gRPC method name)
        self, request: session_service_pb2.CreateSessionRequest, context: Context
    ) -> session_pb2.Session:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.optional_uuid(request.session_id, "session_id")
        values = _session_values(check, request.session, MUTABLE_FIELDS, self._limits)
        check.done()
        record = await self._sessions.create(tenant_id, session_id=session_id, **values)
        return convert.session_to_proto(record)

    async def GetSession(  # noqa: N802
        self, request: session_service_pb2.GetSessionRequest, context: Context
    ) -> session_pb2.Session:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.uuid(request.session_id, "session_id")
        check.done()
        return convert.session_to_proto(await self._sessions.get(tenant_id, session_id))

    async def ListSessions(  # noqa: N802
        self, request: session_service_pb2.ListSessionsRequest, context: Context
    ) -> session_service_pb2.ListSessionsResponse:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        agent_id = check.text(request.agent_id, "agent_id", max_chars=AGENT_ID_MAX_CHARS)
        limit = check.page_size(
            request.page_size,
            default=self._limits.default_session_page_size,
            maximum=self._limits.max_page_size,
        )
        check.done()
        binding = ("ListSessions", tenant_id, agent_id)
        after = None
        if request.page_token:
            position = pagination.decode(request.page_token, binding)
            try:
                after = SessionCursor(datetime.fromisoformat(position[0]), uuid.UUID(position[1]))
            except (IndexError, TypeError, ValueError) as error:
                raise pagination.bad_position() from error
        page = await self._sessions.list(
            tenant_id, limit=limit, agent_id=agent_id or None, after=after
        )
        cursor = page.next_cursor
        return session_service_pb2.ListSessionsResponse(
            sessions=[convert.session_to_proto(r) for r in page.items],
            next_page_token=pagination.encode(
                binding, [cursor.update_time.isoformat(), str(cursor.id)]
            )
            if cursor
            else "",
        )

    async def UpdateSession(  # noqa: N802
        self, request: session_service_pb2.UpdateSessionRequest, context: Context
    ) -> session_pb2.Session:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.uuid(request.session.id, "session.id")
        fields = _mask_fields(check, request)
        values = _session_values(check, request.session, fields, self._limits)
        check.done()
        if not values:
            return convert.session_to_proto(await self._sessions.get(tenant_id, session_id))
        record = await self._sessions.update(tenant_id, session_id, values)
        return convert.session_to_proto(record)

    async def DeleteSession(  # noqa: N802
        self, request: session_service_pb2.DeleteSessionRequest, context: Context
    ) -> session_pb2.Session:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.uuid(request.session_id, "session_id")
        check.done()
        return convert.session_to_proto(await self._sessions.delete(tenant_id, session_id))
