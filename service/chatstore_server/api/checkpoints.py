"""SessionService methods on checkpoints (with payloads, namespaces and writes), and
ForkSession."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from google.protobuf import empty_pb2

from chatstore.v1 import checkpoint_pb2, session_pb2, session_service_pb2
from chatstore_server.api import convert, pagination
from chatstore_server.api.limits import Limits
from chatstore_server.api.messages import check_batch_size
from chatstore_server.api.session_cache import RenderedSessions
from chatstore_server.api.validation import NOT_JSON, Checker, json_metadata
from chatstore_server.store import (
    CheckpointCursor,
    CheckpointFilter,
    CheckpointRepository,
    CheckpointWriteRecord,
    Database,
    NewCheckpoint,
    SessionPolicy,
    fork_session,
)
from chatstore_server.store.schema import (
    CHANNEL_NAME_MAX_CHARS,
    CHECKPOINT_LABEL_MAX_CHARS,
    NAMESPACE_MAX_CHARS,
    PAYLOAD_TYPE_MAX_CHARS,
    TASK_ID_MAX_CHARS,
    TASK_PATH_MAX_CHARS,
    TITLE_MAX_CHARS,
)

Context = grpc.aio.ServicerContext[Any, Any]

_DESCRIPTION_MAX_CHARS = 2_000
_MAX_TAGS = 32
_TAG_MAX_CHARS = 64
_ORDERS = {(): False, ("create_time",): False, ("create_time", "asc"): False}
_ORDERS[("create_time", "desc")] = True


def _id(check: Checker, value: str, field: str, *, required: bool = False) -> str:
    """A checkpoint id (1 to 128 printable characters, no outer whitespace), or ""."""
    if not value:
        if required:
            check.fail(field, "required")
        return ""
    return check.own_id(value, field) or ""


def _namespace(check: Checker, value: str, field: str = "namespace") -> str:
    """A namespace: "" (the default) or up to 128 printable characters."""
    check.text(value, field, max_chars=NAMESPACE_MAX_CHARS)
    if value and not value.isprintable():
        check.fail(field, "must be printable")
    return value


class CheckpointMethods:
    """CreateCheckpoint, ListCheckpoints, GetCheckpoint, PutCheckpointWrites,
    DeleteCheckpoint, PruneCheckpoints, ForkSession."""

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
        checkpoint_id = _id(check, checkpoint.id, "checkpoint.id")
        if request.replace and not checkpoint_id:
            check.fail("replace", "give checkpoint.id to replace a checkpoint")
        namespace = _namespace(check, checkpoint.namespace, "checkpoint.namespace")
        parent_id = _id(check, checkpoint.parent_id, "checkpoint.parent_id")
        if len(checkpoint.payload) > self._limits.max_checkpoint_payload_bytes:
            check.fail(
                "checkpoint.payload",
                f"at most {self._limits.max_checkpoint_payload_bytes:,} bytes",
            )
        check.text(
            checkpoint.payload_type, "checkpoint.payload_type", max_chars=PAYLOAD_TYPE_MAX_CHARS
        )
        metadata = json_metadata(check, checkpoint, "checkpoint", self._limits)
        check.done()
        if metadata is None and checkpoint.metadata.fields:
            metadata = convert.struct_to_dict(checkpoint.metadata)
        assert metadata is not NOT_JSON
        record = await self._checkpoints.create(
            tenant_id,
            session_id,
            NewCheckpoint(
                id=checkpoint_id or None,
                namespace=namespace,
                parent_id=parent_id,
                message_seq=checkpoint.message_seq or None,
                event_seq=checkpoint.event_seq or None,
                label=checkpoint.label,
                description=checkpoint.description,
                tags=tuple(checkpoint.tags),
                payload=checkpoint.payload or None,
                payload_type=checkpoint.payload_type,
                metadata=metadata or None,
            ),
            replace=request.replace,
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
        namespace = _namespace(check, request.namespace) if request.HasField("namespace") else None
        before = _id(check, request.before_checkpoint_id, "before_checkpoint_id")
        order = tuple(request.order_by.split())
        if order not in _ORDERS:
            check.fail("order_by", 'must be "create_time" or "create_time desc"')
        if request.view not in session_service_pb2.CheckpointView.values():
            check.fail("view", "unknown view")
        wanted = convert.struct_to_dict(request.metadata_filter)
        check.done()
        descending = _ORDERS.get(order, False)
        whole = request.view == session_service_pb2.CHECKPOINT_VIEW_FULL
        binding = [
            "ListCheckpoints",
            tenant_id,
            session_id,
            namespace,
            wanted,
            before,
            descending,
            whole,
        ]
        after = None
        if request.page_token:
            position = pagination.decode(request.page_token, binding)
            try:
                moment = datetime.fromisoformat(position[0])
                if moment.tzinfo is None or not isinstance(position[1], str):
                    raise TypeError("bad position")
                after = CheckpointCursor(moment, position[1])
            except (IndexError, TypeError, ValueError) as error:
                raise pagination.bad_position() from error
        page = await self._checkpoints.list(
            tenant_id,
            session_id,
            limit=limit,
            where=CheckpointFilter(namespace=namespace, metadata=wanted, before=before or None),
            descending=descending,
            whole=whole,
            after=after,
        )
        items = [convert.checkpoint_to_proto(c) for c in page.items]
        cursor = page.next_cursor
        kept = pagination.fitting(items, self._limits.max_response_bytes)
        if kept < len(items):
            items = items[:kept]
            cursor = CheckpointCursor(page.items[kept - 1].create_time, page.items[kept - 1].id)
        return session_service_pb2.ListCheckpointsResponse(
            checkpoints=items,
            next_page_token=pagination.encode(binding, [cursor.create_time.isoformat(), cursor.id])
            if cursor
            else "",
        )

    async def GetCheckpoint(  # noqa: N802
        self, request: session_service_pb2.GetCheckpointRequest, context: Context
    ) -> checkpoint_pb2.Checkpoint:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        checkpoint_id = _id(check, request.checkpoint_id, "checkpoint_id")
        namespace = _namespace(check, request.namespace)
        check.done()
        return convert.checkpoint_to_proto(
            await self._checkpoints.get(tenant_id, session_id, checkpoint_id or None, namespace)
        )

    async def PutCheckpointWrites(  # noqa: N802
        self, request: session_service_pb2.PutCheckpointWritesRequest, context: Context
    ) -> session_service_pb2.PutCheckpointWritesResponse:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        namespace = _namespace(check, request.namespace)
        checkpoint_id = _id(check, request.checkpoint_id, "checkpoint_id", required=True)
        payload_bytes = sum(len(w.payload) for w in request.writes)
        limits = self._limits
        check_batch_size(check, "writes", len(request.writes), 0, limits)
        if payload_bytes > limits.max_checkpoint_payload_bytes:
            check.fail("writes", f"at most {limits.max_checkpoint_payload_bytes:,} payload bytes")
        keys = set()
        writes = []
        for index, write in enumerate(request.writes):
            where = f"writes[{index}]"
            check.text(
                write.task_id, f"{where}.task_id", max_chars=TASK_ID_MAX_CHARS, required=True
            )
            check.text(
                write.channel, f"{where}.channel", max_chars=CHANNEL_NAME_MAX_CHARS, required=True
            )
            check.text(
                write.payload_type, f"{where}.payload_type", max_chars=PAYLOAD_TYPE_MAX_CHARS
            )
            check.text(write.task_path, f"{where}.task_path", max_chars=TASK_PATH_MAX_CHARS)
            if (write.task_id, write.index) in keys:
                check.fail(where, "a (task_id, index) at most once per call")
            keys.add((write.task_id, write.index))
            writes.append(
                CheckpointWriteRecord(
                    task_id=write.task_id,
                    index=write.index,
                    channel=write.channel,
                    payload=write.payload,
                    payload_type=write.payload_type,
                    task_path=write.task_path,
                )
            )
        check.done()
        stored = await self._checkpoints.put_writes(
            tenant_id, session_id, namespace, checkpoint_id, writes
        )
        return session_service_pb2.PutCheckpointWritesResponse(stored_count=stored)

    async def DeleteCheckpoint(  # noqa: N802
        self, request: session_service_pb2.DeleteCheckpointRequest, context: Context
    ) -> empty_pb2.Empty:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        namespace = _namespace(check, request.namespace)
        checkpoint_id = _id(check, request.checkpoint_id, "checkpoint_id", required=True)
        check.done()
        await self._checkpoints.delete(tenant_id, session_id, namespace, checkpoint_id)
        return empty_pb2.Empty()

    async def PruneCheckpoints(  # noqa: N802
        self, request: session_service_pb2.PruneCheckpointsRequest, context: Context
    ) -> session_service_pb2.PruneCheckpointsResponse:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        check.done()
        deleted = await self._checkpoints.prune(
            tenant_id, session_id, keep_latest=request.keep_latest
        )
        return session_service_pb2.PruneCheckpointsResponse(deleted_count=deleted)

    async def ForkSession(  # noqa: N802
        self, request: session_service_pb2.ForkSessionRequest, context: Context
    ) -> session_pb2.Session:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        point = request.WhichOneof("point")
        checkpoint_id = None
        if point == "checkpoint_id":
            checkpoint_id = _id(check, request.checkpoint_id, "checkpoint_id", required=True)
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
