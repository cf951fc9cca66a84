"""What the integrations share: a client made from a target or given, and the calls
that create a session on first use."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from chatstore._async.client import AsyncChatStoreClient
from chatstore._errors import AlreadyExists
from chatstore._sync.client import ChatStoreClient


def compact(value: Any) -> str:
    """A JSON value's compact text, keys in their order (what a framework gave)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Clients:
    """An async and a blocking client of one server, each made on first use from
    `target` and `options` (and closed by `close`/`aclose`), or given by the caller
    (and left open)."""

    def __init__(
        self,
        target: str | None,
        tenant_id: str | None,
        client: AsyncChatStoreClient | None,
        sync_client: ChatStoreClient | None,
        options: dict[str, Any],
    ) -> None:
        self._target = target  # None: CHATSTORE_TARGET, else the default
        self._tenant_id = tenant_id
        self._options = options
        self._async = client
        self._sync = sync_client
        self._own_async = client is None
        self._own_sync = sync_client is None

    @property
    def aio(self) -> AsyncChatStoreClient:
        """The async client (made on first use, in the running event loop)."""
        if self._async is None:
            self._async = AsyncChatStoreClient(
                self._target, tenant_id=self._tenant_id, **self._options
            )
        return self._async

    @property
    def sync(self) -> ChatStoreClient:
        """The blocking client (made on first use)."""
        if self._sync is None:
            self._sync = ChatStoreClient(self._target, tenant_id=self._tenant_id, **self._options)
        return self._sync

    async def aclose(self) -> None:
        """Close the clients made here (not those given)."""
        if self._own_async and self._async is not None:
            await self._async.close()
            self._async = None
        self.close()

    def close(self) -> None:
        """Close the blocking client if made here."""
        if self._own_sync and self._sync is not None:
            self._sync.close()
            self._sync = None


async def ensure_session(client: AsyncChatStoreClient, session_id: str, **fields: Any) -> None:
    """Create the session `session_id` unless it exists (a concurrent creator wins
    harmlessly)."""
    with contextlib.suppress(AlreadyExists):
        await client.create_session(session_id=session_id, **fields)


def ensure_session_sync(client: ChatStoreClient, session_id: str, **fields: Any) -> None:
    """`ensure_session`, blocking."""
    with contextlib.suppress(AlreadyExists):
        client.create_session(session_id=session_id, **fields)
