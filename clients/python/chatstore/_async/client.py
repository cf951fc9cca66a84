"""The async chatstore client: the one hand-written copy of the client.

`chatstore._sync.client` is generated from this module by scripts/generate.py
(unasync): edit this file, then run `make generate`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from chatstore import _base as base
from chatstore._async import io
from chatstore._async.pagers import AsyncPager
from chatstore._errors import from_grpc_error
from chatstore.v1 import (
    checkpoint_pb2,
    event_pb2,
    message_pb2,
    session_pb2,
    session_service_pb2,
    session_service_pb2_grpc,
    shared_state_pb2,
)

# A watch reconnects after these: the server went away, or cut off a slow reader.
_RECONNECT_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED}
)


class AsyncChatStoreClient:
    """An async client for chatstore's SessionService.

    Use as an async context manager, or call `close()` when done::

        async with AsyncChatStoreClient("127.0.0.1:50051", tenant_id="acme") as client:
            session = await client.create_session(title="Trip planning")

    `chatstore.ChatStoreClient` has the same methods, blocking.

    Args:
        target: The server's `host:port`; None reads `CHATSTORE_TARGET`, else
            127.0.0.1:50051.
        tenant_id: The tenant every call acts for, unless a call names another; None
            reads `CHATSTORE_TENANT` (the same variables as the `chatstore` command).
        timeout: Default deadline of each call, in seconds; None waits forever.
        api_key: A credential, sent as `authorization: Bearer <api_key>` (an API key or
            a JWT); None reads `CHATSTORE_API_KEY`, "" sends none.
        tls: Connect with TLS (implied by any of the certificate arguments).
        root_certificates: PEM CA bundle to verify the server by; None uses the
            system's roots.
        client_certificate: PEM certificate chain to present (mTLS), with
            `client_private_key`.
        client_private_key: PEM private key of `client_certificate`.
        keepalive_time_seconds: Ping the server when the connection is idle this long
            (keep it at or above the server's permitted ping interval); None disables
            pings.
        max_message_bytes: Largest message sent or received (default 8 MiB, the
            server's default).
        retry: How UNAVAILABLE is retried, for the calls that are safe to repeat (those
            the contract marks idempotent, and appends, which always carry a request
            id). `chatstore.NO_RETRIES` turns retries off.
        channel: An existing channel to use instead of opening one on `target` (the
            client then does not close it; the TLS and keepalive arguments are ignored).

    Every method raises a subclass of `chatstore.RpcError` when the call fails (see
    `chatstore._errors` for the tree) and `ValueError` when no tenant is known.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        tenant_id: str | None = None,
        timeout: float | None = base.DEFAULT_TIMEOUT_SECONDS,
        api_key: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        client_certificate: bytes | None = None,
        client_private_key: bytes | None = None,
        keepalive_time_seconds: float | None = 60.0,
        max_message_bytes: int = 8 * 1024 * 1024,
        retry: base.RetryPolicy | None = None,
        channel: io.Channel | None = None,
    ) -> None:
        target = target or os.environ.get("CHATSTORE_TARGET") or base.DEFAULT_TARGET
        tenant_id = tenant_id or os.environ.get("CHATSTORE_TENANT") or None
        if api_key is None:
            api_key = os.environ.get("CHATSTORE_API_KEY") or None
        self._owns_channel = channel is None
        if channel is None:
            options = base.channel_options(keepalive_time_seconds, max_message_bytes)
            credentials = base.channel_credentials(
                tls, root_certificates, client_certificate, client_private_key
            )
            if credentials is None:
                channel = io.insecure_channel(target, options=options)
            else:
                channel = io.secure_channel(target, credentials, options=options)
        self._channel = channel
        self._stub = session_service_pb2_grpc.SessionServiceStub(self._channel)
        self._tenant_id = tenant_id
        self._timeout = timeout
        self._auth = base.auth_metadata(api_key)
        self._retry = retry or base.RetryPolicy()

    async def __aenter__(self) -> AsyncChatStoreClient:
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
            await io.close(self._channel)

    def _tenant(self, tenant_id: str | None) -> str:
        tenant = tenant_id or self._tenant_id
        if not tenant:
            raise ValueError("tenant_id is required: pass it here or to the client")
        return tenant

    async def _call(
        self,
        method: io.UnaryUnary[base.RequestT, base.ResponseT],
        request: base.RequestT,
        timeout: float | base.Unset | None,
        metadata: base.Metadata,
        *,
        idempotent: bool = False,
    ) -> base.ResponseT:
        """Invoke `method`, retrying UNAVAILABLE within the deadline when it is safe.

        The one place where gRPC errors become chatstore exceptions.
        """
        deadline = base.deadline_at(self._timeout if isinstance(timeout, base.Unset) else timeout)
        safe = idempotent or base.is_idempotent(request)
        retry = self._retry if safe else base.NO_RETRIES
        attempt = 0
        while True:
            try:
                return await method(
                    request,
                    timeout=base.remaining(deadline),
                    metadata=(*self._auth, *metadata) or None,
                )
            except io.RpcError as error:
                translated = from_grpc_error(error)
                pause = retry.delay(attempt, translated, deadline)
                if pause is None:
                    raise translated from error
            attempt += 1
            await io.sleep(pause)

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
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
    ) -> session_pb2.Session:
        """Create a session.

        Args:
            title: Display title, at most 200 characters.
            agent_id: The agent, at most 128 characters.
            session_metadata: Free-form JSON object, sent as JSON text (numbers
                exact: 1 stays 1, 1.0 stays 1.0); at most the server's
                `max_metadata_bytes` encoded (64 KiB by default).
            key: A routing key (channel, account, peer); with `agent_id`, unique
                among the tenant's live sessions.
            retention: RETENTION_EPHEMERAL to let it expire; default SAVED.
            access_mode: ACCESS_MODE_READ_ONLY to refuse appends; default READ_WRITE.
            model, persona_id, recap: Free text (at most 128, 128 and the content
                limit in characters).
            labels: String labels to filter lists by.
            session_id: Your id for it: 1 to 128 printable characters, unique in
                the tenant (a UUID is kept in lowercase form); None lets the
                server assign a UUID.
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
                metadata_json=base.json_text(session_metadata) if session_metadata else "",
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
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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
        create_time_range: base.TimeBounds | None = None,
        update_time_range: base.TimeBounds | None = None,
        order_by: str = "",
        pinned_first: bool = False,
        page_size: int = 0,
        page_token: str = "",
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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
            create_time_range=base.time_range(create_time_range),
            update_time_range=base.time_range(update_time_range),
            order_by=order_by,
            pinned_first=pinned_first,
            page_size=page_size,
        )

        async def fetch(token: str) -> base.Page[session_pb2.Session]:
            request = session_service_pb2.ListSessionsRequest()
            request.CopyFrom(template)
            request.page_token = token
            response = await self._call(self._stub.ListSessions, request, timeout, metadata)
            return base.Page(list(response.sessions), response.next_page_token)

        return AsyncPager(fetch, page_token)

    async def update_session(
        self,
        session_id: str,
        *,
        title: str | base.Unset = base.UNSET,
        agent_id: str | base.Unset = base.UNSET,
        session_metadata: Mapping[str, Any] | base.Unset | None = base.UNSET,
        retention: session_pb2.Retention.ValueType | base.Unset = base.UNSET,
        access_mode: session_pb2.AccessMode.ValueType | base.Unset = base.UNSET,
        model: str | base.Unset = base.UNSET,
        persona_id: str | base.Unset = base.UNSET,
        recap: str | base.Unset = base.UNSET,
        labels: Mapping[str, str] | base.Unset = base.UNSET,
        token_usage: session_pb2.TokenUsage | base.Unset = base.UNSET,
        etag: str = "",
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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
            if not isinstance(value, base.Unset):
                setattr(session, name, value)
                paths.append(name)
        if not isinstance(session_metadata, base.Unset):
            if session_metadata:
                session.metadata_json = base.json_text(session_metadata)
            paths.append("metadata")
        if not isinstance(labels, base.Unset):
            session.labels.update(labels)
            paths.append("labels")
        if not isinstance(token_usage, base.Unset):
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
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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
        session_change: session_service_pb2.SessionChange | None = None,
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
    ) -> session_service_pb2.AppendMessagesResponse:
        """Append messages, atomically, to the end of a session.

        Args:
            messages: 1 to 1,000 messages, oldest first. Set `role` and `content`
                (and `tool_calls`, `tool_call_id` for ROLE_TOOL, `token_count`...);
                the server assigns `seq`, and `id` and `create_time` unless given.
            request_id: Makes a retry safe: a second call with the same id returns
                the first call's result and writes nothing. When empty, the client
                makes one up, so its own retries are safe too.
            expected_last_seq: Append only if the session's `last_seq` is this.
            etag: Append only if the session's `etag` is this.
            session_change: Changes to the session and shared states made in the same
                transaction (`chatstore.session_change(...)` builds one).

        Returns:
            The stored messages (with ids and seqs), the updated session, and the
            shared states `session_change` changed.

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
            request_id=request_id or uuid.uuid4().hex,
            expected_last_seq=expected_last_seq,
            etag=etag,
            session_change=session_change,
        )
        # With a request id, a retry cannot append twice: safe to retry.
        return await self._call(
            self._stub.AppendMessages, request, timeout, metadata, idempotent=True
        )

    async def rewind_session(
        self,
        session_id: str,
        *,
        to_seq: int | None = None,
        remove_count: int | None = None,
        expected_last_seq: int | None = None,
        etag: str = "",
        request_id: str = "",
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
    ) -> session_service_pb2.RewindSessionResponse:
        """Remove a session's newest messages: every one after `to_seq`, or the newest
        `remove_count` (give one of the two). Seqs are never reused.

        Args:
            request_id: Makes a retry safe (the first call's answer comes back, removed
                messages included); when empty, the client makes one up.

        Returns:
            The removed messages (oldest first, when at most 100), how many, and the
            session after.

        Raises:
            NotFound: No such session in the tenant.
            FailedPrecondition: Deleted, archived or read-only, or the point lies in
                the compacted history (reason COMPACTED_HISTORY).
            Aborted: `expected_last_seq` or `etag` no longer matches.
        """
        if (to_seq is None) == (remove_count is None):
            raise ValueError("give to_seq or remove_count")
        request = session_service_pb2.RewindSessionRequest(
            tenant_id=self._tenant(tenant_id),
            session_id=session_id,
            expected_last_seq=expected_last_seq,
            etag=etag,
            request_id=request_id or uuid.uuid4().hex,
        )
        if to_seq is not None:
            request.to_seq = to_seq
        else:
            assert remove_count is not None
            request.remove_count = remove_count
        return await self._call(
            self._stub.RewindSession, request, timeout, metadata, idempotent=True
        )

    async def get_shared_state(
        self,
        name: str,
        *,
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
    ) -> shared_state_pb2.SharedState:
        """A shared state ("apps/{app}/state" or "apps/{app}/users/{user}/state"),
        empty when never written; `json.loads(state.data_json)` has numbers exact.

        Raises:
            InvalidArgument: A malformed name.
        """
        request = session_service_pb2.GetSharedStateRequest(
            tenant_id=self._tenant(tenant_id), name=name
        )
        return await self._call(self._stub.GetSharedState, request, timeout, metadata)

    async def update_shared_state(
        self,
        name: str,
        patch: Mapping[str, Any] | str,
        *,
        etag: str = "",
        mode: shared_state_pb2.PatchMode.ValueType = shared_state_pb2.PATCH_MODE_MERGE,
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
    ) -> shared_state_pb2.SharedState:
        """Change a shared state by a JSON merge patch (RFC 7386: null removes a key,
        objects merge), or with `mode=PATCH_MODE_REPLACE_KEYS` a dict update (each
        top-level key replaced whole, null stored as null).

        Raises:
            InvalidArgument: A malformed name or patch, or a state over the limit.
            Aborted: `etag` no longer matches.
        """
        request = session_service_pb2.UpdateSharedStateRequest(
            tenant_id=self._tenant(tenant_id),
            patch=shared_state_pb2.SharedStatePatch(
                name=name, patch_json=base.json_text(patch), etag=etag, mode=mode
            ),
        )
        return await self._call(self._stub.UpdateSharedState, request, timeout, metadata)

    def list_messages(
        self,
        session_id: str,
        *,
        newest_first: bool = False,
        after_seq: int = 0,
        before_seq: int = 0,
        roles: Iterable[message_pb2.Role.ValueType] = (),
        create_time_range: base.TimeBounds | None = None,
        exclude_compacted: bool = False,
        page_size: int = 0,
        page_token: str = "",
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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
            create_time_range=base.time_range(create_time_range),
            exclude_compacted=exclude_compacted,
        )

        async def fetch(token: str) -> base.Page[message_pb2.Message]:
            request = session_service_pb2.ListMessagesRequest()
            request.CopyFrom(template)
            request.page_token = token
            response = await self._call(self._stub.ListMessages, request, timeout, metadata)
            return base.Page(list(response.messages), response.next_page_token)

        return AsyncPager(fetch, page_token)

    async def get_message(
        self,
        session_id: str,
        *,
        message_id: str = "",
        seq: int = 0,
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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
        session_change: session_service_pb2.SessionChange | None = None,
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
    ) -> session_service_pb2.AppendEventsResponse:
        """Append events, atomically, to a session's run log (one payload each), with
        `session_change` (as for `append_messages`) in the same transaction.

        Raises:
            InvalidArgument: An empty or oversized batch, an event without payload.
            NotFound, FailedPrecondition, Aborted: As for `append_messages`.
        """
        request = session_service_pb2.AppendEventsRequest(
            tenant_id=self._tenant(tenant_id),
            session_id=session_id,
            events=list(events),
            request_id=request_id or uuid.uuid4().hex,
            expected_last_event_seq=expected_last_event_seq,
            session_change=session_change,
        )
        return await self._call(
            self._stub.AppendEvents, request, timeout, metadata, idempotent=True
        )

    def list_events(
        self,
        session_id: str,
        *,
        after_seq: int = 0,
        page_size: int = 0,
        page_token: str = "",
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
    ) -> AsyncPager[event_pb2.Event]:
        """List a session's events in seq order as a pager.

        Raises:
            NotFound: No such session in the tenant (raised while iterating).
        """
        tenant = self._tenant(tenant_id)

        async def fetch(token: str) -> base.Page[event_pb2.Event]:
            request = session_service_pb2.ListEventsRequest(
                tenant_id=tenant,
                session_id=session_id,
                after_seq=after_seq,
                page_size=page_size,
                page_token=token,
            )
            response = await self._call(self._stub.ListEvents, request, timeout, metadata)
            return base.Page(list(response.events), response.next_page_token)

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
        checkpoint_id: str = "",
        namespace: str = "",
        parent_id: str = "",
        payload: bytes = b"",
        payload_type: str = "",
        checkpoint_metadata: Mapping[str, Any] | str | None = None,
        replace: bool = False,
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
    ) -> checkpoint_pb2.Checkpoint:
        """Create a checkpoint at the session's current seqs (or the given ones),
        optionally with the agent's saved state (`payload`, opaque to chatstore), under
        the caller's own `checkpoint_id`, in a `namespace`, after `parent_id`, with
        `checkpoint_metadata` (kept as JSON, numbers exact). With `replace`, a
        checkpoint of the same id in the namespace is replaced.

        Raises:
            InvalidArgument: A seq beyond the session's newest, a field too long.
            AlreadyExists: `checkpoint_id` is taken in the namespace (without `replace`).
            NotFound, FailedPrecondition (deleted).
        """
        checkpoint = checkpoint_pb2.Checkpoint(
            id=checkpoint_id,
            label=label,
            description=description,
            tags=list(tags),
            message_seq=message_seq,
            event_seq=event_seq,
            namespace=namespace,
            parent_id=parent_id,
            payload=payload,
            payload_type=payload_type,
        )
        if checkpoint_metadata is not None:
            checkpoint.metadata_json = base.json_text(checkpoint_metadata)
        request = session_service_pb2.CreateCheckpointRequest(
            tenant_id=self._tenant(tenant_id),
            session_id=session_id,
            checkpoint=checkpoint,
            replace=replace,
        )
        # An id given and `replace`: a repeat writes the same again.
        return await self._call(
            self._stub.CreateCheckpoint,
            request,
            timeout,
            metadata,
            idempotent=bool(checkpoint_id and replace),
        )

    def list_checkpoints(
        self,
        session_id: str,
        *,
        namespace: str | None = None,
        metadata_filter: Mapping[str, Any] | None = None,
        before_checkpoint_id: str = "",
        newest_first: bool = False,
        full: bool = False,
        page_size: int = 0,
        page_token: str = "",
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
    ) -> AsyncPager[checkpoint_pb2.Checkpoint]:
        """List a session's checkpoints as a pager: oldest first (or `newest_first`),
        of one `namespace` or all, those whose metadata has `metadata_filter`'s keys
        with equal values, older than `before_checkpoint_id`; `full` includes payloads
        and pending writes.

        Raises:
            NotFound: No such session in the tenant, or no such `before_checkpoint_id`
                (raised while iterating).
        """
        tenant = self._tenant(tenant_id)

        async def fetch(token: str) -> base.Page[checkpoint_pb2.Checkpoint]:
            request = session_service_pb2.ListCheckpointsRequest(
                tenant_id=tenant,
                session_id=session_id,
                page_size=page_size,
                page_token=token,
                namespace=namespace,
                metadata_filter=base.struct(metadata_filter) if metadata_filter else None,
                before_checkpoint_id=before_checkpoint_id,
                order_by="create_time desc" if newest_first else "",
                view=session_service_pb2.CHECKPOINT_VIEW_FULL
                if full
                else session_service_pb2.CHECKPOINT_VIEW_BASIC,
            )
            response = await self._call(self._stub.ListCheckpoints, request, timeout, metadata)
            return base.Page(list(response.checkpoints), response.next_page_token)

        return AsyncPager(fetch, page_token)

    async def get_checkpoint(
        self,
        session_id: str,
        checkpoint_id: str = "",
        *,
        namespace: str = "",
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
    ) -> checkpoint_pb2.Checkpoint:
        """Get one checkpoint, whole (payload and pending writes); with no
        `checkpoint_id`, the newest of the namespace.

        Raises:
            NotFound: No such session, or no such checkpoint in it.
        """
        request = session_service_pb2.GetCheckpointRequest(
            tenant_id=self._tenant(tenant_id),
            session_id=session_id,
            checkpoint_id=checkpoint_id,
            namespace=namespace,
        )
        return await self._call(self._stub.GetCheckpoint, request, timeout, metadata)

    async def put_checkpoint_writes(
        self,
        session_id: str,
        checkpoint_id: str,
        writes: Iterable[checkpoint_pb2.CheckpointWrite],
        *,
        namespace: str = "",
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
    ) -> int:
        """Store writes of tasks against a checkpoint (each replaces the write of the
        same task and index); how many were stored.

        Raises:
            NotFound: No such session, or no such checkpoint in the namespace.
            InvalidArgument: An empty or oversized batch, a bad write.
        """
        request = session_service_pb2.PutCheckpointWritesRequest(
            tenant_id=self._tenant(tenant_id),
            session_id=session_id,
            namespace=namespace,
            checkpoint_id=checkpoint_id,
            writes=list(writes),
        )
        response = await self._call(self._stub.PutCheckpointWrites, request, timeout, metadata)
        return int(response.stored_count)

    async def delete_checkpoint(
        self,
        session_id: str,
        checkpoint_id: str,
        *,
        namespace: str = "",
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
    ) -> None:
        """Delete a checkpoint and its writes.

        Raises:
            NotFound: No such session, or no such checkpoint in the namespace.
        """
        request = session_service_pb2.DeleteCheckpointRequest(
            tenant_id=self._tenant(tenant_id),
            session_id=session_id,
            namespace=namespace,
            checkpoint_id=checkpoint_id,
        )
        await self._call(self._stub.DeleteCheckpoint, request, timeout, metadata)

    async def prune_checkpoints(
        self,
        session_id: str,
        *,
        keep_latest: bool = True,
        tenant_id: str | None = None,
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
    ) -> int:
        """Delete a session's checkpoints but the newest of each namespace (or all of
        them, with `keep_latest=False`); how many were deleted.

        Raises:
            NotFound: No such session in the tenant.
        """
        request = session_service_pb2.PruneCheckpointsRequest(
            tenant_id=self._tenant(tenant_id), session_id=session_id, keep_latest=keep_latest
        )
        response = await self._call(self._stub.PruneCheckpoints, request, timeout, metadata)
        return int(response.deleted_count)

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
        timeout: float | base.Unset | None = base.UNSET,
        metadata: base.Metadata = (),
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

    async def watch(
        self,
        session_id: str,
        *,
        from_seq: int = 0,
        reconnect: bool = True,
        tenant_id: str | None = None,
        metadata: base.Metadata = (),
    ) -> AsyncIterator[session_service_pb2.WatchSessionResponse]:
        """Follow a session: every stored message after `from_seq`, then new messages
        and session changes as they commit, in seq order.

        When the stream drops (the server restarts, the connection breaks, or this
        reader fell behind and was cut off), the iterator reconnects from the last seq
        it yielded, with backoff, so the caller sees every message exactly once.
        Iterate it for as long as you want to follow; breaking out ends the stream.

        Raises:
            NotFound: The session does not exist, or was purged.
            PermissionDenied, Unauthenticated, InvalidArgument: Not retried.
            Unavailable: With `reconnect=False` (else the iterator keeps reconnecting,
                with the retry policy's backoff, for as long as it is iterated).
        """
        last = from_seq
        tenant = self._tenant(tenant_id)
        failures = 0
        while True:
            request = session_service_pb2.WatchSessionRequest(
                tenant_id=tenant, session_id=session_id, from_seq=last
            )
            call = self._stub.WatchSession(request, metadata=(*self._auth, *metadata) or None)
            try:
                async for response in call:
                    failures = 0
                    if response.HasField("message"):
                        last = response.message.seq
                    yield response
                return
            except io.RpcError as error:
                translated = from_grpc_error(error)
                if not reconnect or translated.code not in _RECONNECT_CODES:
                    raise translated from error
                # Reconnects go on for as long as the caller iterates, with backoff.
                pause = self._retry.backoff(failures)
                failures += 1
            finally:
                call.cancel()
            await io.sleep(pause)
