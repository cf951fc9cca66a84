"""SessionService lifecycle methods: delete, undelete and purge (AIP-164), pin and
archive (AIP-136 custom methods)."""

from __future__ import annotations

from typing import Any, Protocol

import grpc

from chatstore.v1 import session_pb2, session_service_pb2
from chatstore_server.api import convert
from chatstore_server.api.session_cache import RenderedSessions
from chatstore_server.api.validation import Checker, check_etag
from chatstore_server.store import SessionRepository

Context = grpc.aio.ServicerContext[Any, Any]


class _Targeted(Protocol):
    """The fields every lifecycle request has."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def etag(self) -> str: ...


def _target(request: _Targeted) -> tuple[str, str, int | None]:
    check = Checker()
    tenant_id = check.tenant_id(request.tenant_id)
    session_id = check.session_id(request.session_id)
    revision = check_etag(check, request.etag)
    check.done()
    return tenant_id, session_id, revision


class SessionLifecycleMethods:
    """DeleteSession, UndeleteSession, Pin/UnpinSession, Archive/UnarchiveSession."""

    _sessions: SessionRepository
    _rendered: RenderedSessions

    async def DeleteSession(  # noqa: N802 (gRPC method name)
        self, request: session_service_pb2.DeleteSessionRequest, context: Context
    ) -> session_pb2.Session:
        tenant_id, session_id, revision = _target(request)
        if request.purge:  # nothing will ask for it again: not held
            record = await self._sessions.purge(tenant_id, session_id, revision=revision)
            return convert.session_to_proto(record)
        record = await self._sessions.soft_delete(tenant_id, session_id, revision=revision)
        return self._rendered.render(tenant_id, record)

    async def UndeleteSession(  # noqa: N802
        self, request: session_service_pb2.UndeleteSessionRequest, context: Context
    ) -> session_pb2.Session:
        tenant_id, session_id, revision = _target(request)
        return self._rendered.render(
            tenant_id, await self._sessions.undelete(tenant_id, session_id, revision=revision)
        )

    async def _pin(self, request: _Targeted, *, pinned: bool) -> session_pb2.Session:
        tenant_id, session_id, revision = _target(request)
        return self._rendered.render(
            tenant_id,
            await self._sessions.pin(tenant_id, session_id, pinned=pinned, revision=revision),
        )

    async def _archive(self, request: _Targeted, *, archived: bool) -> session_pb2.Session:
        tenant_id, session_id, revision = _target(request)
        return self._rendered.render(
            tenant_id,
            await self._sessions.archive(
                tenant_id, session_id, archived=archived, revision=revision
            ),
        )

    async def PinSession(  # noqa: N802
        self, request: session_service_pb2.PinSessionRequest, context: Context
    ) -> session_pb2.Session:
        return await self._pin(request, pinned=True)

    async def UnpinSession(  # noqa: N802
        self, request: session_service_pb2.UnpinSessionRequest, context: Context
    ) -> session_pb2.Session:
        return await self._pin(request, pinned=False)

    async def ArchiveSession(  # noqa: N802
        self, request: session_service_pb2.ArchiveSessionRequest, context: Context
    ) -> session_pb2.Session:
        return await self._archive(request, archived=True)

    async def UnarchiveSession(  # noqa: N802
        self, request: session_service_pb2.UnarchiveSessionRequest, context: Context
    ) -> session_pb2.Session:
        return await self._archive(request, archived=False)
