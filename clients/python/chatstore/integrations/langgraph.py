"""chatstore as a LangGraph checkpointer (`BaseCheckpointSaver`), blocking and async.

    from chatstore.integrations.langgraph import ChatStoreSaver

    graph = builder.compile(checkpointer=ChatStoreSaver("127.0.0.1:50051", tenant_id="acme"))
    graph.invoke(inputs, {"configurable": {"thread_id": "thread-1"}})

A thread is the chatstore session whose id is the `thread_id` (made on the first `put`,
labelled `langgraph-thread`). A LangGraph checkpoint is a chatstore checkpoint of that
session under LangGraph's own id, in its namespace (`checkpoint_ns`), with its parent:
the checkpoint as the saver's serializer writes it is the checkpoint's `payload` (with
the serializer's type as `payload_type`), its metadata the checkpoint's JSON
`metadata` (which `list(filter=...)` matches, numbers by value), and its tasks' writes
the checkpoint's pending writes (`PutCheckpointWrites`). Everything is in chatstore: a
graph resumed in another process finds its thread as it was left.

`list` gives a thread's checkpoints newest first (by when they were first stored);
`delete_thread` removes the thread's checkpoints, and the session too when the saver
made it and nothing else was written to it; `prune` is `PruneCheckpoints`;
`copy_thread` copies every checkpoint and its writes, one call each (not atomic).
A checkpoint is at most the server's `max_checkpoint_payload_bytes` (4 MiB by default).

Needs `pip install 'chatstore[langgraph]'` (langgraph 1.x).
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from chatstore._async.client import AsyncChatStoreClient
from chatstore._errors import Aborted, NotFound
from chatstore._sync.client import ChatStoreClient
from chatstore.integrations._common import (
    Clients,
    compact,
    ensure_session,
    ensure_session_sync,
)
from chatstore.v1 import Checkpoint as StoredCheckpoint
from chatstore.v1 import CheckpointWrite

__all__ = ["THREAD_LABEL", "ChatStoreSaver"]

THREAD_LABEL = "langgraph-thread"
"""The label on the sessions the saver makes (value "true"): what `list(None)` lists."""

_THREAD_LABELS = {THREAD_LABEL: "true"}
_PAGE = 1_000  # the server's largest page: fewer round trips for a whole thread


def _where(config: RunnableConfig) -> tuple[str, str, str]:
    """A config's thread id, namespace and checkpoint id ("" when none)."""
    configurable = config["configurable"]
    return (
        str(configurable["thread_id"]),
        configurable.get("checkpoint_ns") or "",
        get_checkpoint_id(config) or "",
    )


class ChatStoreSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer kept in chatstore.

    Args:
        target: The server, `host:port` (default `CHATSTORE_TARGET`, else
            127.0.0.1:50051); ignored for the clients given.
        tenant_id: The tenant; defaults to the clients'.
        client: An `AsyncChatStoreClient` for the async methods (left open).
        sync_client: A `ChatStoreClient` for the blocking ones (left open).
        serde: LangGraph's serializer for checkpoints and writes (default its
            `JsonPlusSerializer`).
        **client_options: Passed to the clients this makes (`api_key`, `tls`, ...).
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        tenant_id: str | None = None,
        client: AsyncChatStoreClient | None = None,
        sync_client: ChatStoreClient | None = None,
        serde: SerializerProtocol | None = None,
        **client_options: Any,
    ) -> None:
        super().__init__(serde=serde)
        self._tenant_id = tenant_id
        self._clients = Clients(target, tenant_id, client, sync_client, client_options)

    # What both forms share: requests built and answers read the same way.

    def _stored(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> dict[str, Any]:
        thread_id, namespace, parent_id = _where(config)
        payload_type, payload = self.serde.dumps_typed(checkpoint)
        return {
            "session_id": thread_id,
            "checkpoint_id": checkpoint["id"],
            "namespace": namespace,
            "parent_id": parent_id,
            "payload": payload,
            "payload_type": payload_type,
            "checkpoint_metadata": compact(get_serializable_checkpoint_metadata(config, metadata)),
            "replace": True,
            "tenant_id": self._tenant_id,
        }

    def _writes(
        self, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> list[CheckpointWrite]:
        # A later write of the same (task, index) wins, as in LangGraph's own savers.
        by_index: dict[int, CheckpointWrite] = {}
        for index, (channel, value) in enumerate(writes):
            payload_type, payload = self.serde.dumps_typed(value)
            slot = WRITES_IDX_MAP.get(channel, index)
            by_index[slot] = CheckpointWrite(
                task_id=task_id,
                index=slot,
                channel=channel,
                payload=payload,
                payload_type=payload_type,
                task_path=task_path,
            )
        return list(by_index.values())

    def _tuple(self, thread_id: str, stored: StoredCheckpoint) -> CheckpointTuple:
        namespace = stored.namespace
        parent = (
            {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": namespace,
                    "checkpoint_id": stored.parent_id,
                }
            }
            if stored.parent_id
            else None
        )
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": namespace,
                    "checkpoint_id": stored.id,
                }
            },
            checkpoint=self.serde.loads_typed((stored.payload_type, stored.payload)),
            metadata=json.loads(stored.metadata_json) if stored.metadata_json else {},
            parent_config=parent,  # type: ignore[arg-type]
            pending_writes=[
                (w.task_id, w.channel, self.serde.loads_typed((w.payload_type, w.payload)))
                for w in stored.pending_writes
            ],
        )

    def _list_arguments(
        self,
        config: RunnableConfig,
        filter: Mapping[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> dict[str, Any]:
        return {
            "session_id": str(config["configurable"]["thread_id"]),
            "namespace": config["configurable"].get("checkpoint_ns"),
            "metadata_filter": filter or None,
            "before_checkpoint_id": (get_checkpoint_id(before) or "") if before else "",
            "newest_first": True,
            "full": True,
            "page_size": min(limit, _PAGE) if limit else _PAGE,
            "tenant_id": self._tenant_id,
        }

    # Blocking.

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint the config names, or the newest of its thread and namespace;
        None when there is none."""
        thread_id, namespace, checkpoint_id = _where(config)
        try:
            stored = self._clients.sync.get_checkpoint(
                thread_id, checkpoint_id, namespace=namespace, tenant_id=self._tenant_id
            )
        except NotFound:
            return None
        return self._tuple(thread_id, stored)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """The checkpoints of the config's thread (of its namespace when it names
        one; of every thread the saver made when `config` is None), newest first,
        whose metadata has `filter`'s values, older than `before`, at most `limit`."""
        if config is None:
            configs: list[RunnableConfig] = [
                {"configurable": {"thread_id": s.id}}
                for s in self._clients.sync.list_sessions(
                    labels=_THREAD_LABELS, tenant_id=self._tenant_id
                )
            ]
        else:
            configs = [config]
        left = limit
        for each in configs:
            if left is not None and left <= 0:
                return
            for found in self._list_one(each, filter, before, left):
                yield found
                if left is not None:
                    left -= 1

    def _list_one(
        self,
        config: RunnableConfig,
        filter: Mapping[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Iterator[CheckpointTuple]:
        if get_checkpoint_id(config):
            found = self.get_tuple(config)
            if found is not None and _matches(found, filter):
                yield found
            return
        arguments = self._list_arguments(config, filter, before, limit)
        try:
            for count, stored in enumerate(self._clients.sync.list_checkpoints(**arguments)):
                if limit is not None and count >= limit:
                    return
                yield self._tuple(arguments["session_id"], stored)
        except NotFound:
            return

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (replacing one of the same id); the config naming it."""
        client = self._clients.sync
        stored = self._stored(config, checkpoint, metadata)
        try:
            client.create_checkpoint(**stored)
        except NotFound:
            _ensure_sync(client, stored["session_id"], self._tenant_id)
            client.create_checkpoint(**stored)
        return _config(stored)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes against the config's checkpoint."""
        if not writes:
            return
        thread_id, namespace, checkpoint_id = _where(config)
        client = self._clients.sync
        stored = self._writes(writes, task_id, task_path)
        try:
            client.put_checkpoint_writes(
                thread_id, checkpoint_id, stored, namespace=namespace, tenant_id=self._tenant_id
            )
        except NotFound:  # before the thread's first checkpoint was stored
            _ensure_sync(client, thread_id, self._tenant_id)
            client.put_checkpoint_writes(
                thread_id, checkpoint_id, stored, namespace=namespace, tenant_id=self._tenant_id
            )

    def delete_thread(self, thread_id: str) -> None:
        """Remove the thread's checkpoints and writes (and its session, when the saver
        made it and it holds nothing else)."""
        client = self._clients.sync
        try:
            client.prune_checkpoints(thread_id, keep_latest=False, tenant_id=self._tenant_id)
            session = client.get_session(thread_id, tenant_id=self._tenant_id)
            if _only_checkpoints(session):
                client.delete_session(
                    thread_id, purge=True, etag=session.etag, tenant_id=self._tenant_id
                )
        except (NotFound, Aborted):
            pass  # gone already, or written to meanwhile: it stays

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint of one thread, with its writes, into another."""
        client = self._clients.sync
        try:
            found = list(
                client.list_checkpoints(source_thread_id, full=True, tenant_id=self._tenant_id)
            )
        except NotFound:
            return
        _ensure_sync(client, target_thread_id, self._tenant_id)
        for stored in found:
            client.create_checkpoint(**_copy(stored, target_thread_id, self._tenant_id))
            if stored.pending_writes:
                client.put_checkpoint_writes(
                    target_thread_id,
                    stored.id,
                    stored.pending_writes,
                    namespace=stored.namespace,
                    tenant_id=self._tenant_id,
                )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only the newest checkpoint of each namespace (`"keep_latest"`), or
        none (`"delete"`), of each thread."""
        keep_latest = _keep_latest(strategy)
        for thread_id in thread_ids:
            try:
                self._clients.sync.prune_checkpoints(
                    thread_id, keep_latest=keep_latest, tenant_id=self._tenant_id
                )
            except NotFound:
                continue

    # Async.

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """`get_tuple`, async."""
        thread_id, namespace, checkpoint_id = _where(config)
        try:
            stored = await self._clients.aio.get_checkpoint(
                thread_id, checkpoint_id, namespace=namespace, tenant_id=self._tenant_id
            )
        except NotFound:
            return None
        return self._tuple(thread_id, stored)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """`list`, async."""
        if config is None:
            configs: list[RunnableConfig] = [
                {"configurable": {"thread_id": s.id}}
                async for s in self._clients.aio.list_sessions(
                    labels=_THREAD_LABELS, tenant_id=self._tenant_id
                )
            ]
        else:
            configs = [config]
        left = limit
        for each in configs:
            if left is not None and left <= 0:
                return
            async for found in self._alist_one(each, filter, before, left):
                yield found
                if left is not None:
                    left -= 1

    async def _alist_one(
        self,
        config: RunnableConfig,
        filter: Mapping[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> AsyncIterator[CheckpointTuple]:
        if get_checkpoint_id(config):
            found = await self.aget_tuple(config)
            if found is not None and _matches(found, filter):
                yield found
            return
        arguments = self._list_arguments(config, filter, before, limit)
        count = 0
        try:
            async for stored in self._clients.aio.list_checkpoints(**arguments):
                if limit is not None and count >= limit:
                    return
                count += 1
                yield self._tuple(arguments["session_id"], stored)
        except NotFound:
            return

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """`put`, async."""
        client = self._clients.aio
        stored = self._stored(config, checkpoint, metadata)
        try:
            await client.create_checkpoint(**stored)
        except NotFound:
            await _ensure(client, stored["session_id"], self._tenant_id)
            await client.create_checkpoint(**stored)
        return _config(stored)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """`put_writes`, async."""
        if not writes:
            return
        thread_id, namespace, checkpoint_id = _where(config)
        client = self._clients.aio
        stored = self._writes(writes, task_id, task_path)
        try:
            await client.put_checkpoint_writes(
                thread_id, checkpoint_id, stored, namespace=namespace, tenant_id=self._tenant_id
            )
        except NotFound:  # before the thread's first checkpoint was stored
            await _ensure(client, thread_id, self._tenant_id)
            await client.put_checkpoint_writes(
                thread_id, checkpoint_id, stored, namespace=namespace, tenant_id=self._tenant_id
            )

    async def adelete_thread(self, thread_id: str) -> None:
        """`delete_thread`, async."""
        client = self._clients.aio
        try:
            await client.prune_checkpoints(thread_id, keep_latest=False, tenant_id=self._tenant_id)
            session = await client.get_session(thread_id, tenant_id=self._tenant_id)
            if _only_checkpoints(session):
                await client.delete_session(
                    thread_id, purge=True, etag=session.etag, tenant_id=self._tenant_id
                )
        except (NotFound, Aborted):
            pass  # gone already, or written to meanwhile: it stays

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """`copy_thread`, async."""
        client = self._clients.aio
        try:
            found = [
                c
                async for c in client.list_checkpoints(
                    source_thread_id, full=True, tenant_id=self._tenant_id
                )
            ]
        except NotFound:
            return
        await _ensure(client, target_thread_id, self._tenant_id)
        for stored in found:
            await client.create_checkpoint(**_copy(stored, target_thread_id, self._tenant_id))
            if stored.pending_writes:
                await client.put_checkpoint_writes(
                    target_thread_id,
                    stored.id,
                    stored.pending_writes,
                    namespace=stored.namespace,
                    tenant_id=self._tenant_id,
                )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """`prune`, async."""
        keep_latest = _keep_latest(strategy)
        for thread_id in thread_ids:
            try:
                await self._clients.aio.prune_checkpoints(
                    thread_id, keep_latest=keep_latest, tenant_id=self._tenant_id
                )
            except NotFound:
                continue

    def get_next_version(self, current: str | None, channel: None) -> str:
        """A channel version after `current`: a zero-padded counter and a random
        fraction, as LangGraph's own savers make them (ordered as text)."""
        number = 0 if current is None else int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"  # noqa: S311 (not a secret)

    def close(self) -> None:
        """Close the blocking client if the saver made it."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close the clients the saver made."""
        await self._clients.aclose()


def _config(stored: Mapping[str, Any]) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": stored["session_id"],
            "checkpoint_ns": stored["namespace"],
            "checkpoint_id": stored["checkpoint_id"],
        }
    }


def _copy(stored: StoredCheckpoint, session_id: str, tenant_id: str | None) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "checkpoint_id": stored.id,
        "namespace": stored.namespace,
        "parent_id": stored.parent_id,
        "payload": stored.payload,
        "payload_type": stored.payload_type,
        "checkpoint_metadata": stored.metadata_json or None,
        "replace": True,
        "tenant_id": tenant_id,
    }


def _matches(found: CheckpointTuple, filter: Mapping[str, Any] | None) -> bool:
    return all(found.metadata.get(k) == v for k, v in (filter or {}).items())


def _only_checkpoints(session: Any) -> bool:
    return bool(
        session.labels.get(THREAD_LABEL) == "true"
        and session.message_count == 0
        and session.event_count == 0
        and session.checkpoint_count == 0
    )


def _keep_latest(strategy: str) -> bool:
    if strategy not in ("keep_latest", "delete"):
        raise ValueError(f'strategy must be "keep_latest" or "delete", not {strategy!r}')
    return strategy == "keep_latest"


async def _ensure(client: AsyncChatStoreClient, session_id: str, tenant_id: str | None) -> None:
    await ensure_session(client, session_id, tenant_id=tenant_id, labels=_THREAD_LABELS)


def _ensure_sync(client: ChatStoreClient, session_id: str, tenant_id: str | None) -> None:
    ensure_session_sync(client, session_id, tenant_id=tenant_id, labels=_THREAD_LABELS)
