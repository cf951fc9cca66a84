"""chatstore as a LangChain chat message history, blocking and async: turns of a
scripted chat model kept in it, and what a history promises (order, exact round
trips, clearing, isolation), through a real server."""

from __future__ import annotations

import asyncio

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from chatstore import AsyncChatStoreClient, ChatStoreClient, Message, Role
from chatstore.integrations.langchain import ChatStoreChatMessageHistory
from tests.conftest import TENANT

EXAMPLES: list[BaseMessage] = [
    SystemMessage("Be brief."),
    HumanMessage("Weather in Rome?", id="h1"),
    AIMessage(
        "",
        tool_calls=[{"id": "call_1", "name": "weather", "args": {"city": "Rome", "days": 1}}],
        usage_metadata={"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
        response_metadata={"ratio": 1.0, "big": 2**60},
    ),
    ToolMessage("Sunny", tool_call_id="call_1", artifact={"raw": [1, 2]}),
    AIMessage("It is sunny.", additional_kwargs={"x": {"y": None}}),
]


async def test_a_chat_model_turn_loop_keeps_its_history_in_chatstore(
    client: AsyncChatStoreClient,
) -> None:
    # LangChain 1.x's own pattern (RunnableWithMessageHistory is deprecated): read the
    # history, ask the model with it, store the turn.
    model = GenericFakeChatModel(messages=iter(["Rome, then.", "You said Rome."]))
    asked: list[list[str]] = []

    async def turn(session_id: str, question: str) -> None:
        history = ChatStoreChatMessageHistory(session_id, client=client, tenant_id=TENANT)
        messages = [*await history.aget_messages(), HumanMessage(question)]
        asked.append([str(m.content) for m in messages])
        answer = await model.ainvoke(messages)
        await history.aadd_messages([messages[-1], answer])

    await turn("chat-1", "Train to Rome?")
    await turn("chat-1", "Where did I go?")

    assert asked[1] == ["Train to Rome?", "Rome, then.", "Where did I go?"]
    stored = [(Role.Name(m.role), m.content) async for m in client.list_messages("chat-1")]
    assert stored == [
        ("ROLE_USER", "Train to Rome?"),
        ("ROLE_ASSISTANT", "Rome, then."),
        ("ROLE_USER", "Where did I go?"),
        ("ROLE_ASSISTANT", "You said Rome."),
    ]


async def test_messages_round_trip_exactly_async(client: AsyncChatStoreClient) -> None:
    history = ChatStoreChatMessageHistory("h", client=client, tenant_id=TENANT)

    await history.aadd_messages(EXAMPLES)
    got = await history.aget_messages()

    assert got == EXAMPLES
    assert got[2].response_metadata["big"] == 2**60
    tool_call = (await client.get_message("h", seq=3)).tool_calls[0]
    assert (tool_call.id, tool_call.name, tool_call.arguments) == (
        "call_1",
        "weather",
        '{"city":"Rome","days":1}',
    )


async def test_the_blocking_methods(target: str) -> None:
    def run() -> tuple[list[BaseMessage], list[BaseMessage], list[BaseMessage]]:
        with ChatStoreClient(target, tenant_id=TENANT) as client:
            history = ChatStoreChatMessageHistory("b", sync_client=client, tenant_id=TENANT)
            empty = history.messages
            history.add_messages(EXAMPLES[:2])
            history.add_user_message("and another")
            written = history.messages
            history.clear()
            return empty, written, history.messages

    empty, written, cleared = await asyncio.to_thread(run)

    assert empty == []
    assert written == [*EXAMPLES[:2], HumanMessage("and another")]
    assert cleared == []


async def test_clear_and_isolation(client: AsyncChatStoreClient) -> None:
    one = ChatStoreChatMessageHistory("one", client=client, tenant_id=TENANT)
    two = ChatStoreChatMessageHistory("two", client=client, tenant_id=TENANT)
    await one.aadd_messages([HumanMessage("for one")])
    await two.aadd_messages([HumanMessage("for two")])

    await two.aclear()
    await two.aclear()  # nothing left: still fine
    await two.aadd_messages([HumanMessage("again")])

    assert await one.aget_messages() == [HumanMessage("for one")]
    assert await two.aget_messages() == [HumanMessage("again")]
    assert (await client.get_message("two", seq=2)).content == "again"  # seqs are not reused
    assert (
        await ChatStoreChatMessageHistory("never", client=client, tenant_id=TENANT).aget_messages()
        == []
    )


async def test_messages_from_other_writers_read_as_their_role(
    client: AsyncChatStoreClient,
) -> None:
    history = ChatStoreChatMessageHistory("shared", client=client, tenant_id=TENANT)
    await history.aadd_messages([HumanMessage("from LangChain")])
    await client.append_messages(
        "shared",
        [
            Message(role=Role.ROLE_ASSISTANT, content="from a web UI"),
            Message(role=Role.ROLE_TOOL, content="42", tool_call_id="c1"),
            Message(role=Role.ROLE_SYSTEM, content="note"),
        ],
    )

    assert await history.aget_messages() == [
        HumanMessage("from LangChain"),
        AIMessage("from a web UI"),
        ToolMessage("42", tool_call_id="c1"),
        SystemMessage("note"),
    ]
