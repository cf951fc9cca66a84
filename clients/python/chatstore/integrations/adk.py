"""chatstore as a Google ADK session service (`BaseSessionService`).

    from chatstore.integrations.adk import ChatStoreSessionService

    runner = Runner(
        agent=agent,
        app_name="travel",
        session_service=ChatStoreSessionService("127.0.0.1:50051", tenant_id="acme"),
    )

An ADK session is the chatstore session `{app_name}/{user_id}/{session_id}`, labelled
`adk-app` and `adk-user`; its events are that session's messages, each holding the
event exactly as ADK serializes it (`Message.structured_content_json`, what comes back)
with a role (user for the user's events, assistant for the rest), the text as
`content`, the author as `name` and the event time as `create_time`. Messages appended
by another writer without event JSON come back as events with their text.

State goes where ADK scopes it, in the same transaction as the event that changes it
(`AppendMessages` with a `SessionChange`): session keys in the session's metadata,
`app:` keys in the shared state `apps/{app}/state`, `user:` keys in
`apps/{app}/users/{user}/state`; `temp:` keys are never stored. A delta replaces each
key's value whole, as ADK's own services do (`PATCH_MODE_REPLACE_KEYS`).

A session read by `get_session` remembers its newest seq; `append_event` appends only
if no one else has appended since (`expected_last_seq`), else raises ADK's
`StaleSessionError` and writes nothing. App and user names may not contain "/"; the
three names together are at most 126 characters.

Needs `pip install 'chatstore[adk]'` (google-adk 2.x).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from google.adk.errors._stale_session_error import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions import _session_util
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session
from google.adk.sessions.state import State
from google.genai import types
from google.protobuf.timestamp_pb2 import Timestamp

from chatstore._async.client import AsyncChatStoreClient
from chatstore._base import session_change
from chatstore._errors import Aborted, AlreadyExists, NotFound
from chatstore.integrations._common import Clients
from chatstore.v1 import Message, PatchMode, Role
from chatstore.v1 import Session as StoredSession

__all__ = ["APP_LABEL", "USER_LABEL", "ChatStoreSessionService"]

APP_LABEL = "adk-app"
"""The label holding a session's ADK app name."""
USER_LABEL = "adk-user"
"""The label holding a session's ADK user id."""


def _app_state(app_name: str) -> str:
    return f"apps/{app_name}/state"


def _user_state(app_name: str, user_id: str) -> str:
    return f"apps/{app_name}/users/{user_id}/state"


def _stored_id(app_name: str, user_id: str, session_id: str) -> str:
    for name, value in (("app_name", app_name), ("user_id", user_id)):
        if not value or "/" in value:
            raise ValueError(f"{name} must be non-empty and without '/': {value!r}")
    return f"{app_name}/{user_id}/{session_id}"


def _time(value: Timestamp) -> float:
    """A Timestamp as ADK's times are: seconds since the epoch, a float."""
    return value.seconds + value.nanos / 1e9


def event_to_message(event: Event) -> Message:
    """An ADK event as the chatstore message that keeps it."""
    parts = event.content.parts if event.content and event.content.parts else []
    message = Message(
        role=Role.ROLE_USER if event.author == "user" else Role.ROLE_ASSISTANT,
        content="".join(p.text for p in parts if p.text and not p.thought),
        name=event.author[:128],
        structured_content_json=event.model_dump_json(exclude_none=True),
    )
    message.create_time.FromDatetime(datetime.fromtimestamp(event.timestamp, UTC))
    return message


def message_to_event(message: Message) -> Event:
    """A stored message as the ADK event it keeps (or, for one written without it,
    an event with its text)."""
    if message.structured_content_json:
        return Event.model_validate_json(message.structured_content_json)
    user = message.role == Role.ROLE_USER
    return Event(
        id=message.id,
        invocation_id="",
        author="user" if user else (message.name or "model"),
        content=types.Content(
            role="user" if user else "model", parts=[types.Part(text=message.content)]
        ),
        timestamp=_time(message.create_time),
    )


def _merged(
    session_state: dict[str, Any], app: dict[str, Any], user: dict[str, Any]
) -> dict[str, Any]:
    merged = dict(session_state)
    merged.update({State.APP_PREFIX + k: v for k, v in app.items()})
    merged.update({State.USER_PREFIX + k: v for k, v in user.items()})
    return merged


class ChatStoreSessionService(BaseSessionService):
    """A Google ADK session service kept in chatstore.

    Args:
        target: The server, `host:port` (default `CHATSTORE_TARGET`, else
            127.0.0.1:50051); ignored with `client`.
        tenant_id: The tenant; defaults to the client's.
        client: An `AsyncChatStoreClient` to use (left open by `close`).
        **client_options: Passed to the client this makes (`api_key`, `tls`, ...).

    Limits are chatstore's: session state at most the server's `max_metadata_bytes`
    (64 KiB by default) as JSON, as is each of the app's and user's states; an event
    at most `max_content_chars` (100,000 by default) as JSON.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        tenant_id: str | None = None,
        client: AsyncChatStoreClient | None = None,
        **client_options: Any,
    ) -> None:
        self._tenant_id = tenant_id
        self._clients = Clients(target, tenant_id, client, None, client_options)

    async def _state(self, name: str) -> dict[str, Any]:
        state = await self._clients.aio.get_shared_state(name, tenant_id=self._tenant_id)
        loaded: dict[str, Any] = json.loads(state.data_json)
        return loaded

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """Create a session (its id made up when not given), with its initial state:
        session keys on the session, `app:` and `user:` keys in their shared states.

        Raises:
            AlreadyExistsError: The app and user have a session of this id.
        """
        session_id = session_id or str(uuid.uuid4())
        stored_id = _stored_id(app_name, user_id, session_id)
        deltas = _session_util.extract_json_safe_state_delta(state or {})
        client = self._clients.aio
        try:
            created = await client.create_session(
                session_id=stored_id,
                agent_id=app_name[:128],
                session_metadata=deltas["session"] or None,
                labels={APP_LABEL: app_name, USER_LABEL: user_id},
                tenant_id=self._tenant_id,
            )
        except AlreadyExists as error:
            raise AlreadyExistsError(f"Session with id {session_id} already exists.") from error
        for name, delta in (
            (_app_state(app_name), deltas["app"]),
            (_user_state(app_name, user_id), deltas["user"]),
        ):
            if delta:
                await client.update_shared_state(
                    name, delta, mode=PatchMode.PATCH_MODE_REPLACE_KEYS, tenant_id=self._tenant_id
                )
        app, user = await asyncio.gather(
            self._state(_app_state(app_name)), self._state(_user_state(app_name, user_id))
        )
        return self._session(created, app_name, user_id, session_id, app, user, [])

    def _session(
        self,
        stored: StoredSession,
        app_name: str,
        user_id: str,
        session_id: str,
        app: dict[str, Any],
        user: dict[str, Any],
        events: list[Event],
    ) -> Session:
        own = json.loads(stored.metadata_json) if stored.metadata_json else {}
        session = Session(
            id=session_id,
            app_name=app_name,
            user_id=user_id,
            state=_merged(own, app, user),
            events=events,
            last_update_time=_time(stored.update_time),
        )
        # The seq this copy has seen: append_event appends only after it.
        session._storage_update_marker = str(stored.last_seq)
        return session

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """The session with its merged state and its events (the newest
        `num_recent_events`, those at or after `after_timestamp`); None if none."""
        stored_id = _stored_id(app_name, user_id, session_id)
        client = self._clients.aio
        try:
            stored, app, user, messages = await asyncio.gather(
                client.get_session(stored_id, tenant_id=self._tenant_id),
                self._state(_app_state(app_name)),
                self._state(_user_state(app_name, user_id)),
                self._messages(stored_id, config),
            )
        except NotFound:
            return None
        events = [message_to_event(m) for m in messages]
        return self._session(stored, app_name, user_id, session_id, app, user, events)

    async def _messages(self, stored_id: str, config: GetSessionConfig | None) -> list[Message]:
        recent = config.num_recent_events if config else None
        if recent == 0:
            return []
        after = config.after_timestamp if config else None
        pages = self._clients.aio.list_messages(
            stored_id,
            newest_first=recent is not None,
            create_time_range=(datetime.fromtimestamp(after, UTC), None) if after else None,
            page_size=min(recent, 1_000) if recent else 1_000,
            tenant_id=self._tenant_id,
        )
        if recent is None:
            return [m async for m in pages]
        messages = []
        async for message in pages:
            messages.append(message)
            if len(messages) == recent:
                break
        messages.reverse()
        return messages

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """The app's sessions (of one user, or all), least recently updated first,
        with their merged state and without events."""
        labels = {APP_LABEL: app_name}
        if user_id is not None:
            labels[USER_LABEL] = user_id
        client = self._clients.aio
        stored = [
            s
            async for s in client.list_sessions(
                labels=labels, order_by="update_time", page_size=1_000, tenant_id=self._tenant_id
            )
        ]
        users = sorted({s.labels[USER_LABEL] for s in stored})
        app, *states = await asyncio.gather(
            self._state(_app_state(app_name)),
            *(self._state(_user_state(app_name, u)) for u in users),
        )
        by_user = dict(zip(users, states, strict=True))
        sessions = []
        for s in stored:
            user = s.labels[USER_LABEL]
            own_id = s.id.removeprefix(f"{app_name}/{user}/")
            sessions.append(self._session(s, app_name, user, own_id, app, by_user[user], []))
        return ListSessionsResponse(sessions=sessions)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Remove the session and its events (the app's and user's states stay)."""
        with contextlib.suppress(NotFound):
            await self._clients.aio.delete_session(
                _stored_id(app_name, user_id, session_id), purge=True, tenant_id=self._tenant_id
            )

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user's state within the app, keys without the `user:` prefix."""
        return await self._state(_user_state(app_name, user_id))

    async def append_event(self, session: Session, event: Event) -> Event:
        """Store `event` and its state delta in one transaction, then apply both to
        `session`. A partial event is not stored.

        Raises:
            StaleSessionError: Another writer appended to the session since this
                copy was read; nothing was written.
            SessionNotFoundError: The session does not exist.
        """
        if event.partial:
            return event
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        deltas = _session_util.extract_json_safe_state_delta(
            event.actions.state_delta if event.actions else {}
        )
        shared = {
            name: delta
            for name, delta in (
                (_app_state(session.app_name), deltas["app"]),
                (_user_state(session.app_name, session.user_id), deltas["user"]),
            )
            if delta
        }
        change = None
        if deltas["session"] or shared:
            change = session_change(
                metadata_patch=deltas["session"] or None,
                shared_state_patches=shared,
                patch_mode=PatchMode.PATCH_MODE_REPLACE_KEYS,
            )
        marker = session._storage_update_marker
        try:
            appended = await self._clients.aio.append_messages(
                _stored_id(session.app_name, session.user_id, session.id),
                [event_to_message(event)],
                expected_last_seq=int(marker) if marker is not None else None,
                session_change=change,
                tenant_id=self._tenant_id,
            )
        except Aborted as error:
            raise StaleSessionError(
                "The session has been modified in storage since it was loaded."
                " Reload the session before appending more events."
            ) from error
        except NotFound as error:
            raise SessionNotFoundError(f"Session {session.id} not found.") from error
        session._storage_update_marker = str(appended.messages[-1].seq)
        session.last_update_time = _time(appended.session.update_time)
        return self._commit_event_to_session(session, event)

    async def close(self) -> None:
        """Close the client if the service made it."""
        await self._clients.aclose()
