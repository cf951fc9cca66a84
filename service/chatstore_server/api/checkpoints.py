"""SessionService methods on checkpoints, and ForkSession."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import grpc

from chatstore.v1 import checkpoint_pb2, session_pb2, session_service_pb2
from chatstore_server.api import convert, pagination
from chatstore_server.api.limits import Limits
from chatstore_server.api.session_cache import RenderedSessions
from chatstore_server.api.validation import Checker
from chatstore_server.store import (
    CheckpointCursor,
    CheckpointRepository,
    Database,
    SessionPolicy,
    fork_session,
)
from chatstore_server.store.schema import CHECKPOINT_LABEL_MAX_CHARS, TITLE_MAX_CHARS

Context = grpc.aio.ServicerContext[Any, Any]

_DESCRIPTION_MAX_CHARS = 2_000
_MAX_TAGS = 32
_TAG_MAX_CHARS = 64


class CheckpointMethods:
    """CreateCheckpoint, ListCheckpoints, GetCheckpoint, ForkSession."""

    _database: Database
    _checkpoints: CheckpointRepository
    _policy: SessionPolicy
    _limits: Limits
    _rendered: RenderedSessions

    async def CreateCheckpoint(  # noqa: N802 (gRPC method name)
        self, request: session_service_pb2.CreateCheckpointRequest, context: Context
    ) -> checkpoint_pb2.Checkpoint:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        checkpoint = request.checkpoint
        for field in ("message_seq", "event_seq"):
            if getattr(checkpoint, field) < 0:
                check.fail(f"checkpoint.{field}", "must not be negative")
        check.text(checkpoint.label, "checkpoint.label", max_chars=CHECKPOINT_LABEL_MAX_CHARS)
        check.text(
            checkpoint.description, "checkpoint.description", max_chars=_DESCRIPTION_MAX_CHARS
        )
        if len(checkpoint.tags) > _MAX_TAGS:
            check.fail("checkpoint.tags", f"at most {_MAX_TAGS} tags")
        for index, tag in enumerate(checkpoint.tags):
            check.text(tag, f"checkpoint.tags[{index}]", max_chars=_TAG_MAX_CHARS, required=True)
        check.done()
        record = await self._checkpoints.create(
            tenant_id,
            session_id,
            message_seq=checkpoint.message_seq or None,
            event_seq=checkpoint.event_seq or None,
            label=checkpoint.label,
            description=checkpoint.description,
            tags=list(checkpoint.tags),
        )
        return convert.checkpoint_to_proto(record)

    async def ListCheckpoints(  # noqa: N802
        self, request: session_service_pb2.ListCheckpointsRequest, context: Context
    ) -> session_service_pb2.ListCheckpointsResponse:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        limit = check.page_size(
            request.page_size,
            default=self._limits.default_message_page_size,
            maximum=self._limits.max_page_size,
        )
        check.done()
        binding = ["ListCheckpoints", tenant_id, session_id]
        after = None
        if request.page_token:
            position = pagination.decode(request.page_token, binding)
            try:
                after = CheckpointCursor(
                    datetime.fromisoformat(position[0]), uuid.UUID(position[1])
                )
            except (IndexError, TypeError, ValueError) as error:
                raise pagination.bad_position() from error
        page = await self._checkpoints.list(tenant_id, session_id, limit=limit, after=after)
        cursor = page.next_cursor
        return session_service_pb2.ListCheckpointsResponse(
            checkpoints=[convert.checkpoint_to_proto(c) for c in page.items],
            next_page_token=pagination.encode(
                binding, [cursor.create_time.isoformat(), str(cursor.id)]
            )
            if cursor
            else "",
        )

    async def GetCheckpoint(  # noqa: N802
        self, request: session_service_pb2.GetCheckpointRequest, context: Context
    ) -> checkpoint_pb2.Checkpoint:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        checkpoint_id = check.uuid(request.checkpoint_id, "checkpoint_id")
        check.done()
        return convert.checkpoint_to_proto(
            await self._checkpoints.get(tenant_id, session_id, checkpoint_id)
        )

    async def ForkSession(  # noqa: N802
        self, request: session_service_pb2.ForkSessionRequest, context: Context
    ) -> session_pb2.Session:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        point = request.WhichOneof("point")
        checkpoint_id = None
        if point == "checkpoint_id":
            checkpoint_id = check.uuid(request.checkpoint_id, "checkpoint_id")
        elif point is None:
            check.fail("point", "give checkpoint_id or message_seq")
        for field in ("message_seq", "event_seq"):
            if getattr(request, field) < 0:
                check.fail(field, "must not be negative")
        new_session_id = check.optional_session_id(request.new_session_id, "new_session_id")
        check.text(request.title, "title", max_chars=TITLE_MAX_CHARS)
        check.done()
        record = await fork_session(
            self._database,
            tenant_id,
            session_id,
            message_seq=request.message_seq if point == "message_seq" else None,
            event_seq=request.event_seq,
            checkpoint_id=checkpoint_id,
            new_session_id=new_session_id,
            title=request.title or None,
            policy=self._policy,
        )
        return self._rendered.render(tenant_id, record)
