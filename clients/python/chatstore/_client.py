"""The async chatstore client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, TypeVar

import grpc
from google.protobuf import field_mask_pb2, struct_pb2

from chatstore._errors import from_grpc_error
from chatstore._pagers import AsyncPager, Page
from chatstore.v1 import message_pb2, session_pb2, session_service_pb2, session_service_pb2_grpc

DEFAULT_TARGET: Final = "127.0.0.1:50051"
DEFAULT_TIMEOUT_SECONDS: Final = 10.0

Metadata = Sequence[tuple[str, str]]
ResponseT = TypeVar("ResponseT")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""Marks an `update_session` argument as "leave this field alone"."""


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(value)
    return result


class ChatStoreClient:
    """An async client for chatstore's SessionService.

    Use as an async context manager, or call `close()` when done::

        async with ChatStoreClient("127.0.0.1:50051", tenant_id="acme") as client:
            session = await client.create_session(title="Trip planning")

    Args:
        target: The server's `host:port`.
        tenant_id: The tenant every call acts for, unless a call names another.
        timeout: Default deadline of each call, in seconds; None waits forever.
        channel: An existing `grpc.aio.Channel` to use instead of opening one on
            `target` (the client then does not close it).

    Every method raises a subclass of `chatstore.RpcError` when the call fails (see
    `chatstore._errors` for the tree) and `ValueError` when no tenant is known.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        tenant_id: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._owns_channel = channel is None
        self._channel = channel or grpc.aio.insecure_channel(target)
        self._stub = session_service_pb2_grpc.SessionServiceStub(self._channel)
        self._tenant_id = tenant_id
        self._timeout = timeout

    async def __aenter__(self) -> ChatStoreClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel (if the client opened it)."""
        if self._owns_channel:
            await self._channel.close()

    def _tenant(self, tenant_id: str | None) -> str:
        tenant = tenant_id or self._tenant_id
        if not tenant:
            raise ValueError("tenant_id is required: pass it here or to ChatStoreClient()")
        return tenant

    async def _call(
        self,
        method: Callable[..., Awaitable[ResponseT]],
        request: Any,
        timeout: float | _Unset | None,
        metadata: Metadata,
    ) -> ResponseT:
        # The one place where gRPC errors become chatstore exceptions.
        deadline = self._timeout if isinstance(timeout, _Unset) else timeout
        try:
            return await method(request, timeout=deadline, metadata=tuple(metadata) or None)
        except grpc.aio.AioRpcError as error:
            raise from_grpc_error(error) from error

    async def create_session(
        self,
        *,
        title: str = "",
        agent_id: str = "",
        session_metadata: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_pb2.Session:
        """Create a session.

        Args:
            title: Display title, at most 200 characters.
            agent_id: The agent, at most 128 characters.
            session_metadata: Free-form JSON object, at most 64 KiB encoded.
            session_id: A UUID to use as the id; None lets the server assign one.
            tenant_id: Overrides the client's tenant.
            timeout: Deadline in seconds; defaults to the client's.
            metadata: gRPC metadata to send with the call.

        Raises:
            InvalidArgument: A field is malformed or too long.
            AlreadyExists: `session_id` is in use.
        """
        request = session_service_pb2.CreateSessionRequest(
            tenant_id=self._tenant(tenant_id),
            session=session_pb2.Session(
                title=title,
                agent_id=agent_id,
                metadata=_struct(session_metadata) if session_metadata else None,
            ),
            session_id=session_id or "",
        )
        return await self._call(self._stub.CreateSession, request, timeout, metadata)

    async def get_session(
        self,
        session_id: str,
        *,
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_pb2.Session:
        """Get a session's metadata and counters.

        Raises:
            NotFound: No such session in the tenant.
            InvalidArgument: `session_id` is not a UUID.
        """
        request = session_service_pb2.GetSessionRequest(
            tenant_id=self._tenant(tenant_id), session_id=session_id
        )
        return await self._call(self._stub.GetSession, request, timeout, metadata)

    def list_sessions(
        self,
        *,
        agent_id: str = "",
        page_size: int = 0,
        page_token: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> AsyncPager[session_pb2.Session]:
        """List the tenant's sessions, newest `update_time` first.

        Returns a pager: `async for session in client.list_sessions()`. Pages are
        fetched as iteration reaches them; `timeout` applies to each page's call.

        Args:
            agent_id: Only this agent's sessions; "" for all.
            page_size: Sessions per page; 0 for the server's default (50), at most 1,000.
            page_token: Start from this page (a `next_page_token`).

        Raises:
            InvalidArgument: A bad page size or page token (raised while iterating).
        """
        tenant = self._tenant(tenant_id)

        async def fetch(token: str) -> Page[session_pb2.Session]:
            request = session_service_pb2.ListSessionsRequest(
                tenant_id=tenant, agent_id=agent_id, page_size=page_size, page_token=token
            )
            response = await self._call(self._stub.ListSessions, request, timeout, metadata)
            return Page(list(response.sessions), response.next_page_token)

        return AsyncPager(fetch, page_token)

    async def update_session(
        self,
        session_id: str,
        *,
        title: str | _Unset = UNSET,
        agent_id: str | _Unset = UNSET,
        session_metadata: Mapping[str, Any] | _Unset | None = UNSET,
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_pb2.Session:
        """Change the fields given (the others are left alone); returns the new session.

        Pass `""` (or None for `session_metadata`) to clear a field.

        Raises:
            NotFound: No such session in the tenant.
            InvalidArgument: A value is malformed or too long.
        """
        session = session_pb2.Session(id=session_id)
        paths = []
        if not isinstance(title, _Unset):
            session.title = title
            paths.append("title")
        if not isinstance(agent_id, _Unset):
            session.agent_id = agent_id
            paths.append("agent_id")
        if not isinstance(session_metadata, _Unset):
            if session_metadata:
                session.metadata.CopyFrom(_struct(session_metadata))
            paths.append("metadata")
        request = session_service_pb2.UpdateSessionRequest(
            tenant_id=self._tenant(tenant_id),
            session=session,
            update_mask=field_mask_pb2.FieldMask(paths=paths),
        )
        if not paths:
            return await self.get_session(
                session_id, tenant_id=tenant_id, timeout=timeout, metadata=metadata
            )
        return await self._call(self._stub.UpdateSession, request, timeout, metadata)

    async def delete_session(
        self,
        session_id: str,
        *,
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_pb2.Session:
        """Delete a session and all its messages; returns its last state.

        Raises:
            NotFound: No such session in the tenant.
        """
        request = session_service_pb2.DeleteSessionRequest(
            tenant_id=self._tenant(tenant_id), session_id=session_id
        )
        return await self._call(self._stub.DeleteSession, request, timeout, metadata)

    async def append_messages(
        self,
        session_id: str,
        messages: Iterable[message_pb2.Message],
        *,
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_service_pb2.AppendMessagesResponse:
        """Append messages, atomically, to the end of a session.

        Args:
            messages: 1 to 1,000 messages, oldest first. Set `role` and `content`
                (and `tool_calls`, `token_count` as needed); the server assigns
                `seq`, and `id` and `create_time` unless given.

        Returns:
            The stored messages (with ids and seqs) and the updated session.

        Raises:
            NotFound: No such session in the tenant.
            InvalidArgument: An empty or oversized batch, or a bad message.
            AlreadyExists: A message id given by the caller is in use.
        """
        request = session_service_pb2.AppendMessagesRequest(
            tenant_id=self._tenant(tenant_id), session_id=session_id, messages=list(messages)
        )
        return await self._call(self._stub.AppendMessages, request, timeout, metadata)

    def list_messages(
        self,
        session_id: str,
        *,
        page_size: int = 0,
        page_token: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> AsyncPager[message_pb2.Message]:
        """List a session's messages in `seq` order, oldest first, as a pager.

        Args:
            page_size: Messages per page; 0 for the server's default (100), at most 1,000.
            page_token: Start from this page (a `next_page_token`).

        Raises:
            NotFound: No such session in the tenant (raised while iterating).
        """
        tenant = self._tenant(tenant_id)

        async def fetch(token: str) -> Page[message_pb2.Message]:
            request = session_service_pb2.ListMessagesRequest(
                tenant_id=tenant, session_id=session_id, page_size=page_size, page_token=token
            )
            response = await self._call(self._stub.ListMessages, request, timeout, metadata)
            return Page(list(response.messages), response.next_page_token)

        return AsyncPager(fetch, page_token)
