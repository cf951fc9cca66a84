"""chatstore as Google ADK's session service: ADK's own Runner with a scripted model,
and the behaviour ADK's session services promise (state scopes, stale writers, event
filters, isolation, deletion), through a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from google.adk.agents import LlmAgent
from google.adk.errors._stale_session_error import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types
from pydantic import Field

from chatstore import AsyncChatStoreClient, Message, Role
from chatstore.integrations.adk import ChatStoreSessionService
from tests.conftest import TENANT
from tests.processes import run_python

APP = "travel"


class ScriptedLlm(BaseLlm):
    """A model that answers from a script and records what it was asked."""

    replies: list[str] = Field(default_factory=list)
    seen: list[list[str]] = Field(default_factory=list)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.seen.append(
            [p.text or "" for c in llm_request.contents for p in (c.parts or []) if p.text]
        )
        text = self.replies[len(self.seen) - 1]
        yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]))


def said(text: str) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=text)])


def event(author: str, text: str, **state: Any) -> Event:
    return Event(
        author=author,
        invocation_id="inv-1",
        content=types.Content(
            role="user" if author == "user" else "model", parts=[types.Part(text=text)]
        ),
        actions=EventActions(state_delta=state),
    )


def text(event: Event) -> str:
    """An event's text (its parts' texts joined)."""
    parts = event.content.parts if event.content and event.content.parts else []
    return "".join(p.text or "" for p in parts)


@pytest.fixture
def service(client: AsyncChatStoreClient) -> ChatStoreSessionService:
    return ChatStoreSessionService(client=client, tenant_id=TENANT)


async def test_a_runner_keeps_its_conversation_in_chatstore(
    service: ChatStoreSessionService, target: str
) -> None:
    model = ScriptedLlm(model="scripted", replies=["Rome, then.", "Tuesday works."], seen=[])
    agent = LlmAgent(name="planner", model=model, instruction="Plan trips.")
    runner = Runner(agent=agent, app_name=APP, session_service=service)
    await service.create_session(app_name=APP, user_id="u1", session_id="trip")

    for text in ("Find me a train to Rome.", "Leaving Tuesday?"):
        async for _ in runner.run_async(user_id="u1", session_id="trip", new_message=said(text)):
            pass

    # The second turn was asked with the first one's history, read from chatstore.
    assert model.seen[1] == ["Find me a train to Rome.", "Rome, then.", "Leaving Tuesday?"]
    # Another process, with the plain gRPC client, reads the same conversation.
    script = (
        "import json, sys\n"
        "from chatstore import ChatStoreClient\n"
        "with ChatStoreClient(sys.argv[1], tenant_id=sys.argv[2]) as c:\n"
        "    print(json.dumps([[m.name, m.content] for m in c.list_messages('travel/u1/trip')]))\n"
    )
    out = await run_python(script, target, TENANT)
    assert json.loads(out) == [
        ["user", "Find me a train to Rome."],
        ["planner", "Rome, then."],
        ["user", "Leaving Tuesday?"],
        ["planner", "Tuesday works."],
    ]
    session = await service.get_session(app_name=APP, user_id="u1", session_id="trip")
    assert session is not None
    assert [e.author for e in session.events] == ["user", "planner", "user", "planner"]


async def test_events_round_trip_exactly(service: ChatStoreSessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u1")
    sent = Event(
        author="planner",
        invocation_id="inv-7",
        branch="a.b",
        content=types.Content(
            role="model",
            parts=[
                types.Part(text="calling"),
                types.Part(
                    function_call=types.FunctionCall(
                        id="fc-1", name="book", args={"n": 1, "x": 1.5}
                    )
                ),
            ],
        ),
        actions=EventActions(state_delta={"k": 1}, transfer_to_agent="booker"),
        custom_metadata={"big": 2**60, "f": 1.0},
        timestamp=1_765_000_000.123456,
    )

    await service.append_event(session, sent)
    got = await service.get_session(app_name=APP, user_id="u1", session_id=session.id)

    assert got is not None
    assert got.events[0].model_dump() == sent.model_dump()
    assert got.events[0].custom_metadata == {"big": 2**60, "f": 1.0}


async def test_state_goes_to_its_scope_with_the_event(
    service: ChatStoreSessionService, client: AsyncChatStoreClient
) -> None:
    first = await service.create_session(
        app_name=APP, user_id="u1", state={"s": 1, "app:a": 1, "user:u": 1, "temp:t": 1}
    )
    other = await service.create_session(app_name=APP, user_id="u2")

    await service.append_event(
        first,
        event("planner", "ok", s={"nested": True}, **{"app:a": 2, "user:u": None, "temp:t": 2}),
    )
    again = await service.get_session(app_name=APP, user_id="u1", session_id=first.id)
    theirs = await service.get_session(app_name=APP, user_id="u2", session_id=other.id)

    assert first.state["temp:t"] == 2  # in memory for the invocation, never stored
    assert again is not None
    assert theirs is not None
    assert again.state == {"s": {"nested": True}, "app:a": 2, "user:u": None}
    assert theirs.state == {"app:a": 2}  # the app's state is shared; u1's is not
    assert await service.get_user_state(app_name=APP, user_id="u1") == {"u": None}
    stored = await client.get_session(f"{APP}/u1/{first.id}")
    assert json.loads(stored.metadata_json) == {"s": {"nested": True}}


async def test_a_stale_writer_is_refused_and_writes_nothing(
    service: ChatStoreSessionService,
) -> None:
    created = await service.create_session(app_name=APP, user_id="u1", session_id="s")
    mine = await service.get_session(app_name=APP, user_id="u1", session_id="s")
    theirs = await service.get_session(app_name=APP, user_id="u1", session_id="s")
    assert mine is not None
    assert theirs is not None

    await service.append_event(theirs, event("user", "first", k="theirs"))
    with pytest.raises(StaleSessionError):
        await service.append_event(mine, event("user", "second", k="mine"))
    await service.append_event(theirs, event("user", "third"))  # still current

    now = await service.get_session(app_name=APP, user_id="u1", session_id=created.id)
    assert now is not None
    assert [text(e) for e in now.events] == [
        "first",
        "third",
    ]
    assert now.state == {"k": "theirs"}


async def test_recent_events_and_after_timestamp(service: ChatStoreSessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u1")
    for n in range(5):
        sent = event("user", str(n))
        sent.timestamp = 1_765_000_000.0 + n
        await service.append_event(session, sent)

    def texts(s: Any) -> list[str]:
        return [text(e) for e in s.events]

    async def get(**config: Any) -> Any:
        return await service.get_session(
            app_name=APP, user_id="u1", session_id=session.id, config=GetSessionConfig(**config)
        )

    assert texts(await get(num_recent_events=2)) == ["3", "4"]
    assert texts(await get(num_recent_events=0)) == []
    assert texts(await get(after_timestamp=1_765_000_003.0)) == ["3", "4"]
    assert texts(await get(after_timestamp=1_765_000_001.0, num_recent_events=2)) == ["3", "4"]
    assert texts(await get()) == ["0", "1", "2", "3", "4"]


async def test_sessions_are_per_app_and_user_and_listed_oldest_first(
    service: ChatStoreSessionService,
) -> None:
    await service.create_session(app_name=APP, user_id="u1", session_id="same")
    await service.create_session(app_name=APP, user_id="u2", session_id="same")
    await service.create_session(app_name="other", user_id="u1", session_id="same")
    later = await service.create_session(app_name=APP, user_id="u1", session_id="later")
    with pytest.raises(AlreadyExistsError):
        await service.create_session(app_name=APP, user_id="u1", session_id="same")
    first = await service.get_session(app_name=APP, user_id="u1", session_id="same")
    assert first is not None
    await service.append_event(first, event("user", "touched"))  # now the newest

    mine = await service.list_sessions(app_name=APP, user_id="u1")
    everyone = await service.list_sessions(app_name=APP)

    assert [(s.user_id, s.id) for s in mine.sessions] == [("u1", "later"), ("u1", "same")]
    assert sorted((s.user_id, s.id) for s in everyone.sessions) == [
        ("u1", "later"),
        ("u1", "same"),
        ("u2", "same"),
    ]
    assert later.events == []


async def test_delete_removes_the_session_but_not_shared_state(
    service: ChatStoreSessionService,
) -> None:
    session = await service.create_session(
        app_name=APP, user_id="u1", state={"user:lang": "en", "s": 1}
    )

    await service.delete_session(app_name=APP, user_id="u1", session_id=session.id)
    await service.delete_session(app_name=APP, user_id="u1", session_id=session.id)  # no-op

    assert await service.get_session(app_name=APP, user_id="u1", session_id=session.id) is None
    assert await service.get_user_state(app_name=APP, user_id="u1") == {"lang": "en"}


async def test_messages_from_other_writers_read_as_events(
    service: ChatStoreSessionService, client: AsyncChatStoreClient
) -> None:
    session = await service.create_session(app_name=APP, user_id="u1", session_id="shared")
    await client.append_messages(
        f"{APP}/u1/shared", [Message(role=Role.ROLE_USER, content="typed in a web UI")]
    )

    got = await service.get_session(app_name=APP, user_id="u1", session_id=session.id)

    assert got is not None
    [only] = got.events
    assert (only.author, text(only)) == ("user", "typed in a web UI")


async def test_concurrent_appends_to_one_session_keep_every_event(
    service: ChatStoreSessionService,
) -> None:
    await service.create_session(app_name=APP, user_id="u1", session_id="busy")

    async def writer(n: int) -> None:
        for attempt in range(50):
            session = await service.get_session(app_name=APP, user_id="u1", session_id="busy")
            assert session is not None
            try:
                await service.append_event(session, event("user", str(n), **{f"w{n}": n}))
                return
            except StaleSessionError:
                await asyncio.sleep(0.01 * attempt)
        raise AssertionError("never appended")

    await asyncio.gather(*(writer(n) for n in range(5)))
    final = await service.get_session(app_name=APP, user_id="u1", session_id="busy")

    assert final is not None
    assert sorted(text(e) for e in final.events) == ["0", "1", "2", "3", "4"]
    assert final.state == {f"w{n}": n for n in range(5)}
