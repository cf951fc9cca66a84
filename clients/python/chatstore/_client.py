"""The async chatstore client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Final, TypeVar

import grpc
from google.protobuf import field_mask_pb2, struct_pb2, timestamp_pb2

from chatstore._errors import from_grpc_error
from chatstore._pagers import AsyncPager, Page
from chatstore.v1 import (
    checkpoint_pb2,
    event_pb2,
    message_pb2,
    session_pb2,
    session_service_pb2,
    session_service_pb2_grpc,
)

TimeBounds = tuple[datetime | None, datetime | None]

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


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def _time_range(bounds: TimeBounds | None) -> session_service_pb2.TimeRange | None:
    if bounds is None:
        return None
    return session_service_pb2.TimeRange(
        start_time=_timestamp(bounds[0]), end_time=_timestamp(bounds[1])
    )


class ChatStoreClient:
    """An async client for chatstore's SessionService.

    Use as an async context manager, or call `close()` when done::

        async with ChatStoreClient("127.0.0.1:50051", tenant_id="acme") as client:
            session = await client.create_session(title="Trip planning")

    Args:
        target: The server's `host:port`.
        tenant_id: The tenant every call acts for, unless a call names another.
        timeout: Default deadline of each call, in seconds; None waits forever.
        api_key: A credential, sent as `authorization: Bearer <api_key>` (an API key or
            a JWT).
        tls: Connect with TLS (implied by any of the certificate arguments).
        root_certificates: PEM CA bundle to verify the server by; None uses the
            system's roots.
        client_certificate: PEM certificate chain to present (mTLS), with
            `client_private_key`.
        client_private_key: PEM private key of `client_certificate`.
        keepalive_time_seconds: Ping the server when the connection is idle this
            long (keep it at or above the server's permitted ping interval); None
            disables pings.
        max_message_bytes: Largest message sent or received (default 8 MiB, the
            server's default).
        channel: An existing `grpc.aio.Channel` to use instead of opening one on
            `target` (the client then does not close it; the TLS and keepalive
            arguments are ignored).

    Every method raises a subclass of `chatstore.RpcError` when the call fails (see
    `chatstore._errors` for the tree) and `ValueError` when no tenant is known.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        tenant_id: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
        api_key: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        client_certificate: bytes | None = None,
        client_private_key: bytes | None = None,
        keepalive_time_seconds: float | None = 60.0,
        max_message_bytes: int = 8 * 1024 * 1024,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._owns_channel = channel is None
        if channel is None:
            options: list[tuple[str, Any]] = [
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
            ]
            if keepalive_time_seconds is not None:
                options.append(("grpc.keepalive_time_ms", int(keepalive_time_seconds * 1000)))
            if tls or root_certificates or client_certificate:
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=root_certificates,
                    private_key=client_private_key,
                    certificate_chain=client_certificate,
                )
                channel = grpc.aio.secure_channel(target, credentials, options=options)
            else:
                channel = grpc.aio.insecure_channel(target, options=options)
        self._channel = channel
        self._stub = session_service_pb2_grpc.SessionServiceStub(self._channel)
        self._tenant_id = tenant_id
        self._timeout = timeout
        self._auth: Metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()

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
            return await method(
                request, timeout=deadline, metadata=(*self._auth, *metadata) or None
            )
        except grpc.aio.AioRpcError as error:
            raise from_grpc_error(error) from error

    async def create_session(
        self,
        *,
        title: str = "",
        agent_id: str = "",
        session_metadata: Mapping[str, Any] | None = None,
        key: session_pb2.SessionKey | None = None,
        retention: session_pb2.Retention.ValueType = session_pb2.RETENTION_UNSPECIFIED,
        access_mode: session_pb2.AccessMode.ValueType = session_pb2.ACCESS_MODE_UNSPECIFIED,
        model: str = "",
        persona_id: str = "",
        recap: str = "",
        labels: Mapping[str, str] | None = None,
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
            key: A routing key (channel, account, peer); with `agent_id`, unique
                among the tenant's live sessions.
            retention: RETENTION_EPHEMERAL to let it expire; default SAVED.
            access_mode: ACCESS_MODE_READ_ONLY to refuse appends; default READ_WRITE.
            model, persona_id, recap: Free text (at most 128, 128 and the content
                limit in characters).
            labels: String labels to filter lists by.
            session_id: A UUID to use as the id; None lets the server assign one.
            tenant_id: Overrides the client's tenant.
            timeout: Deadline in seconds; defaults to the client's.
            metadata: gRPC metadata to send with the call.

        Raises:
            InvalidArgument: A field is malformed or too long.
            AlreadyExists: `session_id` is in use, or a live session has this key.
        """
        request = session_service_pb2.CreateSessionRequest(
            tenant_id=self._tenant(tenant_id),
            session=session_pb2.Session(
                title=title,
                agent_id=agent_id,
                metadata=_struct(session_metadata) if session_metadata else None,
                key=key,
                retention=retention,
                access_mode=access_mode,
                model=model,
                persona_id=persona_id,
                recap=recap,
                labels=labels,
            ),
            session_id=session_id or "",
        )
        return await self._call(self._stub.CreateSession, request, timeout, metadata)

    async def get_or_create_session(
        self,
        key: session_pb2.SessionKey,
        *,
        agent_id: str = "",
        defaults: session_pb2.Session | None = None,
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_service_pb2.GetOrCreateSessionResponse:
        """The live session for (`agent_id`, `key`), created from `defaults` if none.

        Returns:
            The session, and `created` (whether this call created it).

        Raises:
            InvalidArgument: A key part is missing or malformed, or a bad default.
        """
        request = session_service_pb2.GetOrCreateSessionRequest(
            tenant_id=self._tenant(tenant_id), agent_id=agent_id, key=key, defaults=defaults
        )
        return await self._call(self._stub.GetOrCreateSession, request, timeout, metadata)

    async def get_session(
        self,
        session_id: str,
        *,
        view: session_service_pb2.SessionView.ValueType = session_service_pb2.SESSION_VIEW_BASIC,
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_pb2.Session:
        """Get a session's metadata and counters (and, with view FULL, its newest
        messages in `recent_messages`). Soft-deleted sessions are returned too.

        Raises:
            NotFound: No such session in the tenant.
            InvalidArgument: `session_id` is not a UUID.
        """
        request = session_service_pb2.GetSessionRequest(
            tenant_id=self._tenant(tenant_id), session_id=session_id, view=view
        )
        return await self._call(self._stub.GetSession, request, timeout, metadata)

    def list_sessions(
        self,
        *,
        agent_id: str = "",
        channel: str = "",
        account_id: str = "",
        peer_id: str = "",
        statuses: Iterable[session_pb2.SessionStatus.ValueType] = (),
        retention: session_pb2.Retention.ValueType = session_pb2.RETENTION_UNSPECIFIED,
        labels: Mapping[str, str] | None = None,
        pinned_only: bool = False,
        archived: session_service_pb2.Inclusion.ValueType = session_service_pb2.INCLUSION_EXCLUDE,
        deleted: session_service_pb2.Inclusion.ValueType = session_service_pb2.INCLUSION_EXCLUDE,
        create_time_range: TimeBounds | None = None,
        update_time_range: TimeBounds | None = None,
        order_by: str = "",
        pinned_first: bool = False,
        page_size: int = 0,
        page_token: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> AsyncPager[session_pb2.Session]:
        """List the tenant's sessions that match every filter given.

        Returns a pager: `async for session in client.list_sessions()`. Pages are
        fetched as iteration reaches them; `timeout` applies to each page's call.

        Args:
            agent_id, channel, account_id, peer_id: Exact matches; "" for any.
            statuses: Any of these statuses; empty for any.
            retention: Only this retention; unspecified for any.
            labels: Every one of these labels must match.
            pinned_only: Only pinned sessions.
            archived, deleted: INCLUSION_EXCLUDE (default), _INCLUDE or _ONLY.
            create_time_range, update_time_range: (start, end), end exclusive;
                None on either side is unbounded.
            order_by: "update_time", "create_time" or "title", optionally
                followed by " desc"; "" is "update_time desc".
            pinned_first: Pinned sessions before the others.
            page_size: Sessions per page; 0 for the server's default (50), at most 1,000.
            page_token: Start from this page (a `next_page_token`).

        Raises:
            InvalidArgument: A bad filter, order, page size or page token (raised
                while iterating).
        """
        tenant = self._tenant(tenant_id)
        template = session_service_pb2.ListSessionsRequest(
            tenant_id=tenant,
            agent_id=agent_id,
            channel=channel,
            account_id=account_id,
            peer_id=peer_id,
            statuses=list(statuses),
            retention=retention,
            labels=labels,
            pinned_only=pinned_only,
            archived=archived,
            deleted=deleted,
            create_time_range=_time_range(create_time_range),
            update_time_range=_time_range(update_time_range),
            order_by=order_by,
            pinned_first=pinned_first,
            page_size=page_size,
        )

        async def fetch(token: str) -> Page[session_pb2.Session]:
            request = session_service_pb2.ListSessionsRequest()
            request.CopyFrom(template)
            request.page_token = token
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
        retention: session_pb2.Retention.ValueType | _Unset = UNSET,
        access_mode: session_pb2.AccessMode.ValueType | _Unset = UNSET,
        model: str | _Unset = UNSET,
        persona_id: str | _Unset = UNSET,
        recap: str | _Unset = UNSET,
        labels: Mapping[str, str] | _Unset = UNSET,
        token_usage: session_pb2.TokenUsage | _Unset = UNSET,
        etag: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_pb2.Session:
        """Change the fields given (the others are left alone); returns the new session.

        Pass `""` (or None for `session_metadata`, `{}` for `labels`) to clear a
        field. With `etag`, the update happens only if the session is unchanged
        since that read (AIP-154).

        Raises:
            NotFound: No such session in the tenant.
            InvalidArgument: A value is malformed or too long.
            Aborted: `etag` is stale.
            FailedPrecondition: The session is soft-deleted.
        """
        session = session_pb2.Session(id=session_id)
        paths = []
        scalars: dict[str, Any] = {
            "title": title,
            "agent_id": agent_id,
            "retention": retention,
            "access_mode": access_mode,
            "model": model,
            "persona_id": persona_id,
            "recap": recap,
        }
        for name, value in scalars.items():
            if not isinstance(value, _Unset):
                setattr(session, name, value)
                paths.append(name)
        if not isinstance(session_metadata, _Unset):
            if session_metadata:
                session.metadata.CopyFrom(_struct(session_metadata))
            paths.append("metadata")
        if not isinstance(labels, _Unset):
            session.labels.update(labels)
            paths.append("labels")
        if not isinstance(token_usage, _Unset):
            session.token_usage.CopyFrom(token_usage)
            paths.append("token_usage")
        if not paths:
            return await self.get_session(
                session_id, tenant_id=tenant_id, timeout=timeout, metadata=metadata
            )
        request = session_service_pb2.UpdateSessionRequest(
            tenant_id=self._tenant(tenant_id),
            session=session,
            update_mask=field_mask_pb2.FieldMask(paths=paths),
            etag=etag,
        )
        return await self._call(self._stub.UpdateSession, request, timeout, metadata)

    async def delete_session(
        self,
        session_id: str,
        *,
        purge: bool = False,
        etag: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_pb2.Session:
        """Soft-delete a session (AIP-164), or with `purge` remove it and its history
        for good. Returns the session (for a purge, its last state).

        Raises:
            NotFound: No such session in the tenant.
            Aborted: `etag` is stale.
        """
        request = session_service_pb2.DeleteSessionRequest(
            tenant_id=self._tenant(tenant_id), session_id=session_id, etag=etag, purge=purge
        )
        return await self._call(self._stub.DeleteSession, request, timeout, metadata)

    async def undelete_session(
        self,
        session_id: str,
        *,
        etag: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_pb2.Session:
        """Restore a soft-deleted session.

        Raises:
            NotFound: No such session (or already purged).
            AlreadyExists: The session is not deleted, or its key is taken.
            Aborted: `etag` is stale.
        """
        request = session_service_pb2.UndeleteSessionRequest(
            tenant_id=self._tenant(tenant_id), session_id=session_id, etag=etag
        )
        return await self._call(self._stub.UndeleteSession, request, timeout, metadata)

    async def pin_session(
        self,
        session_id: str,
        *,
        etag: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_pb2.Session:
        """Pin a session (a no-op if pinned).

        Raises:
            NotFound, FailedPrecondition (soft-deleted), Aborted (stale `etag`).
        """
        request = session_service_pb2.PinSessionRequest(
            tenant_id=self._tenant(tenant_id), session_id=session_id, etag=etag
        )
        return await self._call(self._stub.PinSession, request, timeout, metadata)

    async def unpin_session(
        self,
        session_id: str,
        *,
        etag: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_pb2.Session:
        """Unpin a session (a no-op if not pinned).

        Raises:
            NotFound, FailedPrecondition (soft-deleted), Aborted (stale `etag`).
        """
        request = session_service_pb2.UnpinSessionRequest(
            tenant_id=self._tenant(tenant_id), session_id=session_id, etag=etag
        )
        return await self._call(self._stub.UnpinSession, request, timeout, metadata)

    async def archive_session(
        self,
        session_id: str,
        *,
        etag: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_pb2.Session:
        """Archive a session: status ARCHIVED, hidden from default lists, no appends.

        Raises:
            NotFound, FailedPrecondition (soft-deleted), Aborted (stale `etag`).
        """
        request = session_service_pb2.ArchiveSessionRequest(
            tenant_id=self._tenant(tenant_id), session_id=session_id, etag=etag
        )
        return await self._call(self._stub.ArchiveSession, request, timeout, metadata)

    async def unarchive_session(
        self,
        session_id: str,
        *,
        etag: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_pb2.Session:
        """Unarchive a session (status back to ACTIVE).

        Raises:
            NotFound, FailedPrecondition (soft-deleted), Aborted (stale `etag`).
        """
        request = session_service_pb2.UnarchiveSessionRequest(
            tenant_id=self._tenant(tenant_id), session_id=session_id, etag=etag
        )
        return await self._call(self._stub.UnarchiveSession, request, timeout, metadata)

    async def append_messages(
        self,
        session_id: str,
        messages: Iterable[message_pb2.Message],
        *,
        request_id: str = "",
        expected_last_seq: int | None = None,
        etag: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_service_pb2.AppendMessagesResponse:
        """Append messages, atomically, to the end of a session.

        Args:
            messages: 1 to 1,000 messages, oldest first. Set `role` and `content`
                (and `tool_calls`, `tool_call_id` for ROLE_TOOL, `token_count`...);
                the server assigns `seq`, and `id` and `create_time` unless given.
            request_id: Makes a retry safe: a second call with the same id returns
                the first call's result and writes nothing.
            expected_last_seq: Append only if the session's `last_seq` is this.
            etag: Append only if the session's `etag` is this.

        Returns:
            The stored messages (with ids and seqs) and the updated session.

        Raises:
            NotFound: No such session in the tenant.
            InvalidArgument: An empty or oversized batch, or a bad message.
            AlreadyExists: A message id given by the caller is in use.
            FailedPrecondition: The session is deleted, archived or read-only, or
                `request_id` was used for other messages (`reason` says which).
            Aborted: `expected_last_seq` or `etag` no longer matches.
        """
        request = session_service_pb2.AppendMessagesRequest(
            tenant_id=self._tenant(tenant_id),
            session_id=session_id,
            messages=list(messages),
            request_id=request_id,
            expected_last_seq=expected_last_seq,
            etag=etag,
        )
        return await self._call(self._stub.AppendMessages, request, timeout, metadata)

    def list_messages(
        self,
        session_id: str,
        *,
        newest_first: bool = False,
        after_seq: int = 0,
        before_seq: int = 0,
        roles: Iterable[message_pb2.Role.ValueType] = (),
        create_time_range: TimeBounds | None = None,
        exclude_compacted: bool = False,
        page_size: int = 0,
        page_token: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> AsyncPager[message_pb2.Message]:
        """List a session's messages in seq order as a pager.

        Args:
            newest_first: Newest first instead of oldest first.
            after_seq, before_seq: Only seqs in (after_seq, before_seq); 0 is no bound.
            roles: Only these roles; empty for any.
            create_time_range: (start, end), end exclusive; None on a side is unbounded.
            exclude_compacted: Leave out messages a compaction covers.
            page_size: Messages per page; 0 for the server's default (100), at most 1,000.
            page_token: Start from this page (a `next_page_token`).

        Raises:
            NotFound: No such session in the tenant (raised while iterating).
            InvalidArgument: A bad filter or page token (raised while iterating).
        """
        template = session_service_pb2.ListMessagesRequest(
            tenant_id=self._tenant(tenant_id),
            session_id=session_id,
            page_size=page_size,
            order_by="seq desc" if newest_first else "",
            after_seq=after_seq,
            before_seq=before_seq,
            roles=list(roles),
            create_time_range=_time_range(create_time_range),
            exclude_compacted=exclude_compacted,
        )

        async def fetch(token: str) -> Page[message_pb2.Message]:
            request = session_service_pb2.ListMessagesRequest()
            request.CopyFrom(template)
            request.page_token = token
            response = await self._call(self._stub.ListMessages, request, timeout, metadata)
            return Page(list(response.messages), response.next_page_token)

        return AsyncPager(fetch, page_token)

    async def get_message(
        self,
        session_id: str,
        *,
        message_id: str = "",
        seq: int = 0,
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> message_pb2.Message:
        """Get one message by `message_id` or by `seq` (give exactly one).

        Raises:
            NotFound: No such session, or no such message in it.
            InvalidArgument: Neither or a malformed selector.
        """
        request = session_service_pb2.GetMessageRequest(
            tenant_id=self._tenant(tenant_id), session_id=session_id
        )
        if message_id:
            request.message_id = message_id
        elif seq:
            request.seq = seq
        return await self._call(self._stub.GetMessage, request, timeout, metadata)

    async def get_context_window(
        self,
        session_id: str,
        *,
        max_messages: int = 0,
        max_tokens: int = 0,
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_service_pb2.ContextWindow:
        """The recap plus the newest uncompacted messages within the budget, oldest
        first, never splitting a tool call from its results. Give `max_messages`,
        `max_tokens` or both.

        Raises:
            NotFound: No such session in the tenant.
            InvalidArgument: No budget, or a negative one.
        """
        request = session_service_pb2.GetContextWindowRequest(
            tenant_id=self._tenant(tenant_id),
            session_id=session_id,
            max_messages=max_messages,
            max_tokens=max_tokens,
        )
        return await self._call(self._stub.GetContextWindow, request, timeout, metadata)

    async def compact_session(
        self,
        session_id: str,
        *,
        through_seq: int,
        recap: str,
        etag: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_pb2.Session:
        """Record that `recap` summarizes messages 1..`through_seq` (kept, marked
        compacted); the session becomes COMPACTED.

        Raises:
            InvalidArgument: `through_seq` out of range, or an empty recap.
            NotFound, FailedPrecondition (deleted), Aborted (stale `etag`).
        """
        request = session_service_pb2.CompactSessionRequest(
            tenant_id=self._tenant(tenant_id),
            session_id=session_id,
            through_seq=through_seq,
            recap=recap,
            etag=etag,
        )
        return await self._call(self._stub.CompactSession, request, timeout, metadata)

    async def append_events(
        self,
        session_id: str,
        events: Iterable[event_pb2.Event],
        *,
        request_id: str = "",
        expected_last_event_seq: int | None = None,
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_service_pb2.AppendEventsResponse:
        """Append events, atomically, to a session's run log (one payload each).

        Raises:
            InvalidArgument: An empty or oversized batch, an event without payload.
            NotFound, FailedPrecondition, Aborted: As for `append_messages`.
        """
        request = session_service_pb2.AppendEventsRequest(
            tenant_id=self._tenant(tenant_id),
            session_id=session_id,
            events=list(events),
            request_id=request_id,
            expected_last_event_seq=expected_last_event_seq,
        )
        return await self._call(self._stub.AppendEvents, request, timeout, metadata)

    def list_events(
        self,
        session_id: str,
        *,
        after_seq: int = 0,
        page_size: int = 0,
        page_token: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> AsyncPager[event_pb2.Event]:
        """List a session's events in seq order as a pager.

        Raises:
            NotFound: No such session in the tenant (raised while iterating).
        """
        tenant = self._tenant(tenant_id)

        async def fetch(token: str) -> Page[event_pb2.Event]:
            request = session_service_pb2.ListEventsRequest(
                tenant_id=tenant,
                session_id=session_id,
                after_seq=after_seq,
                page_size=page_size,
                page_token=token,
            )
            response = await self._call(self._stub.ListEvents, request, timeout, metadata)
            return Page(list(response.events), response.next_page_token)

        return AsyncPager(fetch, page_token)

    async def create_checkpoint(
        self,
        session_id: str,
        *,
        label: str = "",
        description: str = "",
        tags: Iterable[str] = (),
        message_seq: int = 0,
        event_seq: int = 0,
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> checkpoint_pb2.Checkpoint:
        """Create a checkpoint at the session's current seqs (or the given ones).

        Raises:
            InvalidArgument: A seq beyond the session's newest, a field too long.
            NotFound, FailedPrecondition (deleted).
        """
        request = session_service_pb2.CreateCheckpointRequest(
            tenant_id=self._tenant(tenant_id),
            session_id=session_id,
            checkpoint=checkpoint_pb2.Checkpoint(
                label=label,
                description=description,
                tags=list(tags),
                message_seq=message_seq,
                event_seq=event_seq,
            ),
        )
        return await self._call(self._stub.CreateCheckpoint, request, timeout, metadata)

    def list_checkpoints(
        self,
        session_id: str,
        *,
        page_size: int = 0,
        page_token: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> AsyncPager[checkpoint_pb2.Checkpoint]:
        """List a session's checkpoints, oldest first, as a pager.

        Raises:
            NotFound: No such session in the tenant (raised while iterating).
        """
        tenant = self._tenant(tenant_id)

        async def fetch(token: str) -> Page[checkpoint_pb2.Checkpoint]:
            request = session_service_pb2.ListCheckpointsRequest(
                tenant_id=tenant, session_id=session_id, page_size=page_size, page_token=token
            )
            response = await self._call(self._stub.ListCheckpoints, request, timeout, metadata)
            return Page(list(response.checkpoints), response.next_page_token)

        return AsyncPager(fetch, page_token)

    async def get_checkpoint(
        self,
        session_id: str,
        checkpoint_id: str,
        *,
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> checkpoint_pb2.Checkpoint:
        """Get one checkpoint.

        Raises:
            NotFound: No such session, or no such checkpoint in it.
        """
        request = session_service_pb2.GetCheckpointRequest(
            tenant_id=self._tenant(tenant_id), session_id=session_id, checkpoint_id=checkpoint_id
        )
        return await self._call(self._stub.GetCheckpoint, request, timeout, metadata)

    async def fork_session(
        self,
        session_id: str,
        *,
        checkpoint_id: str = "",
        message_seq: int | None = None,
        event_seq: int = 0,
        new_session_id: str = "",
        title: str = "",
        tenant_id: str | None = None,
        timeout: float | _Unset | None = UNSET,
        metadata: Metadata = (),
    ) -> session_pb2.Session:
        """Create a new session with a copy of this one's history up to a checkpoint
        (`checkpoint_id`) or a message seq (`message_seq`, with events up to
        `event_seq`). Give exactly one of `checkpoint_id` and `message_seq`.

        Raises:
            InvalidArgument: No fork point, or a seq beyond the source's newest.
            NotFound: No such session or checkpoint.
            AlreadyExists: `new_session_id` is in use.
        """
        request = session_service_pb2.ForkSessionRequest(
            tenant_id=self._tenant(tenant_id),
            session_id=session_id,
            event_seq=event_seq,
            new_session_id=new_session_id,
            title=title,
        )
        if checkpoint_id:
            request.checkpoint_id = checkpoint_id
        elif message_seq is not None:
            request.message_seq = message_seq
        return await self._call(self._stub.ForkSession, request, timeout, metadata)

    async def watch_session(
        self,
        session_id: str,
        *,
        from_seq: int = 0,
        tenant_id: str | None = None,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> AsyncIterator[session_service_pb2.WatchSessionResponse]:
        """Stream the session's messages after `from_seq`, then new messages and
        session changes as they commit (one stream; no reconnecting).

        Raises:
            NotFound: The session does not exist or was purged.
            ResourceExhausted: This reader fell too far behind; reconnect from the
                last seq seen.
            Unavailable: The server is shutting down; reconnect.
        """
        request = session_service_pb2.WatchSessionRequest(
            tenant_id=self._tenant(tenant_id), session_id=session_id, from_seq=from_seq
        )
        call = self._stub.WatchSession(
            request, timeout=timeout, metadata=(*self._auth, *metadata) or None
        )
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as error:
            raise from_grpc_error(error) from error
        finally:
            call.cancel()
