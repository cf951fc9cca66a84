"""chatstore as an OpenAI Agents SDK session: the SDK's own Runner with a scripted
model, and what the SDK's sessions promise (limits, order, pops, clearing,
isolation), through a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner, function_tool
from agents.items import ModelResponse, TResponseInputItem
from agents.memory.session_settings import SessionSettings
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from chatstore import AsyncChatStoreClient, Message, Role, ToolCall
from chatstore.integrations.openai_agents import ChatStoreSession
from tests.conftest import TENANT
from tests.processes import run_python


def reply(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=f"msg_{abs(hash(text))}",
        content=[ResponseOutputText(annotations=[], text=text, type="output_text")],
        role="assistant",
        status="completed",
        type="message",
    )


class ScriptedModel(Model):
    """A model that answers from a script and records the input of each call."""

    def __init__(self, script: list[list[Any]]) -> None:
        self.script = script
        self.inputs: list[list[Any]] = []

    async def get_response(
        self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        self.inputs.append(list(input) if isinstance(input, list) else [input])
        output = self.script[len(self.inputs) - 1]
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


def user(text: str) -> TResponseInputItem:
    return {"role": "user", "content": text}


def contents(items: list[Any]) -> list[Any]:
    return [item["content"] for item in items]


@pytest.fixture
def session(client: AsyncChatStoreClient) -> ChatStoreSession:
    return ChatStoreSession("user-123", client=client, tenant_id=TENANT)


async def test_a_runner_keeps_its_conversation_in_chatstore(
    session: ChatStoreSession, target: str
) -> None:
    model = ScriptedModel(
        [
            [
                ResponseFunctionToolCall(
                    arguments='{"city":"Rome"}',
                    call_id="call_1",
                    name="get_weather",
                    type="function_call",
                    id="fc_1",
                    status="completed",
                )
            ],
            [reply("It is sunny in Rome.")],
            [reply("You asked about Rome.")],
        ]
    )
    agent = Agent(name="assistant", model=model, tools=[get_weather])
    config = RunConfig(tracing_disabled=True)

    first = await Runner.run(agent, "Weather in Rome?", session=session, run_config=config)
    second = await Runner.run(agent, "What did I ask?", session=session, run_config=config)

    assert (first.final_output, second.final_output) == (
        "It is sunny in Rome.",
        "You asked about Rome.",
    )
    # The second turn was asked with the whole first turn, read from chatstore.
    seen = model.inputs[2]
    assert seen[0] == {"content": "Weather in Rome?", "role": "user"}
    assert [i.get("type") for i in seen[1:4]] == [
        "function_call",
        "function_call_output",
        "message",
    ]
    assert seen[-1] == {"content": "What did I ask?", "role": "user"}
    # Another process reads it with the plain gRPC client: roles, text, tool calls.
    script = (
        "import json, sys\n"
        "from chatstore import ChatStoreClient, Role\n"
        "with ChatStoreClient(sys.argv[1], tenant_id=sys.argv[2]) as c:\n"
        "    print(json.dumps([[Role.Name(m.role), m.content, [t.name for t in m.tool_calls],"
        " m.tool_call_id] for m in c.list_messages('user-123')]))\n"
    )
    assert json.loads(await run_python(script, target, TENANT)) == [
        ["ROLE_USER", "Weather in Rome?", [], ""],
        ["ROLE_ASSISTANT", "", ["get_weather"], ""],
        ["ROLE_TOOL", "Sunny in Rome", [], "call_1"],
        ["ROLE_ASSISTANT", "It is sunny in Rome.", [], ""],
        ["ROLE_USER", "What did I ask?", [], ""],
        ["ROLE_ASSISTANT", "You asked about Rome.", [], ""],
    ]


async def test_items_come_back_exactly_as_given(session: ChatStoreSession) -> None:
    items: list[Any] = [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "n": 1, "f": 1.0, "big": 2**63 + 1},
        {"z": 1, "a": 2, "role": "developer", "content": "keys keep their order"},
    ]

    await session.add_items(items)
    got: list[Any] = await session.get_items()

    assert got == items
    assert [list(i) for i in got] == [list(i) for i in items]
    assert type(got[1]["n"]) is int
    assert type(got[1]["f"]) is float


async def test_limits_give_the_newest_items_oldest_first(client: AsyncChatStoreClient) -> None:
    session = ChatStoreSession(
        "limited", client=client, tenant_id=TENANT, session_settings=SessionSettings(limit=3)
    )
    await session.add_items([user(str(n)) for n in range(5)])

    assert contents(await session.get_items()) == ["2", "3", "4"]
    assert contents(await session.get_items(limit=1)) == ["4"]
    assert await session.get_items(limit=0) == []
    assert len(await session.get_items(limit=100)) == 5


async def test_pop_clear_and_a_session_never_written(session: ChatStoreSession) -> None:
    assert await session.get_items() == []
    assert await session.pop_item() is None
    await session.add_items([user("a"), user("b")])

    assert await session.pop_item() == user("b")
    await session.add_items([user("c")])
    assert await session.get_items() == [user("a"), user("c")]
    await session.clear_session()
    assert await session.get_items() == []
    await session.clear_session()  # again: nothing to clear
    await session.add_items([user("fresh")])
    assert await session.get_items() == [user("fresh")]


async def test_concurrent_pops_each_take_a_different_item(session: ChatStoreSession) -> None:
    await session.add_items([user(str(n)) for n in range(6)])

    popped = await asyncio.gather(*(session.pop_item() for _ in range(8)))

    taken = sorted(contents([p for p in popped if p is not None]))
    assert taken == ["0", "1", "2", "3", "4", "5"]
    assert popped.count(None) == 2
    assert await session.get_items() == []


async def test_sessions_are_isolated(client: AsyncChatStoreClient) -> None:
    one = ChatStoreSession("one", client=client, tenant_id=TENANT)
    two = ChatStoreSession("two", client=client, tenant_id=TENANT)
    elsewhere = ChatStoreSession("one", client=client, tenant_id="other-tenant")

    await one.add_items([user("for one")])
    await two.add_items([user("for two")])
    await two.clear_session()

    assert await one.get_items() == [user("for one")]
    assert await two.get_items() == []
    assert await elsewhere.get_items() == []


async def test_messages_from_other_writers_read_as_items(
    session: ChatStoreSession, client: AsyncChatStoreClient
) -> None:
    await session.add_items([user("from the SDK")])
    await client.append_messages(
        "user-123",
        [
            Message(
                role=Role.ROLE_ASSISTANT,
                content="from a web UI",
                tool_calls=[ToolCall(id="c9", name="f", arguments="{}")],
            ),
            Message(role=Role.ROLE_TOOL, content="42", tool_call_id="c9"),
        ],
    )

    assert await session.get_items() == [
        user("from the SDK"),
        {"role": "assistant", "content": "from a web UI"},
        {"type": "function_call_output", "call_id": "c9", "output": "42"},
    ]
