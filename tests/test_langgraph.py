"""chatstore as a LangGraph checkpointer: LangGraph's own conformance suite, a graph
with a scripted chat model run on it (async and blocking), resumed from another
process, and what its savers promise (deletion, isolation, copies, pruning)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph

from chatstore import AsyncChatStoreClient, ChatStoreClient, Message, Role
from chatstore.integrations.langgraph import ChatStoreSaver
from tests.conftest import TENANT
from tests.processes import run_python


def chat_graph(saver: ChatStoreSaver, replies: list[str]) -> CompiledStateGraph:  # type: ignore[type-arg]
    """START -> a chat model that answers from `replies` -> END, kept by `saver`."""
    model = GenericFakeChatModel(messages=iter(replies))

    def answer(state: MessagesState) -> dict[str, list[AIMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    return builder.compile(checkpointer=saver)


async def test_the_conformance_suite_passes(target: str) -> None:
    @checkpointer_test(name="ChatStoreSaver")
    async def saver() -> AsyncIterator[ChatStoreSaver]:
        made = ChatStoreSaver(target, tenant_id=TENANT)
        yield made
        await made.aclose()

    report = await validate(saver)

    failures = {name: r.failures for name, r in report.results.items() if r.failures}
    assert failures == {}
    assert report.passed_all_base()
    # The extensions chatstore serves are tested too; delete_for_runs is not served.
    detected = {name for name, r in report.results.items() if r.detected}
    assert detected >= {"put", "put_writes", "get_tuple", "list", "delete_thread"}
    assert {"copy_thread", "prune"} <= detected
    assert all(report.results[name].passed for name in detected)


async def test_a_graph_resumes_its_thread_in_another_process(target: str) -> None:
    saver = ChatStoreSaver(target, tenant_id=TENANT)
    graph = chat_graph(saver, ["Rome, then.", "Tuesday works."])
    config: RunnableConfig = {"configurable": {"thread_id": "trip"}}

    await graph.ainvoke({"messages": [HumanMessage("Train to Rome?")]}, config)
    second = await graph.ainvoke({"messages": [HumanMessage("Tuesday?")]}, config)
    await saver.aclose()

    # The second run started from the first one's state, read from chatstore.
    assert [m.content for m in second["messages"]] == [
        "Train to Rome?",
        "Rome, then.",
        "Tuesday?",
        "Tuesday works.",
    ]
    # Another process, with a new saver, finds the thread as it was left.
    script = (
        "import json, sys\n"
        "from chatstore.integrations.langgraph import ChatStoreSaver\n"
        "saver = ChatStoreSaver(sys.argv[1], tenant_id=sys.argv[2])\n"
        "state = saver.get_tuple({'configurable': {'thread_id': 'trip'}})\n"
        "print(json.dumps([m.content for m in state.checkpoint['channel_values']['messages']]))\n"
    )
    assert json.loads(await run_python(script, target, TENANT)) == second_contents(second)


def second_contents(state: dict[str, list[AIMessage]]) -> list[str]:
    return [str(m.content) for m in state["messages"]]


async def test_the_blocking_methods_run_a_graph(target: str) -> None:
    saver = ChatStoreSaver(target, tenant_id=TENANT)
    graph = chat_graph(saver, ["one", "two"])
    config: RunnableConfig = {"configurable": {"thread_id": "blocking"}}

    def run() -> tuple[Any, list[Any]]:  # in a thread: the server runs on this loop
        graph.invoke({"messages": [HumanMessage("a")]}, config)
        state = graph.invoke({"messages": [HumanMessage("b")]}, config)
        return state, list(graph.get_state_history(config))

    state, history = await asyncio.to_thread(run)
    saver.close()

    assert second_contents(state) == ["a", "one", "b", "two"]
    # Newest first, each pointing at its parent.
    assert [h.metadata["step"] for h in history if h.metadata] == [4, 3, 2, 1, 0, -1]
    assert all(
        h.parent_config["configurable"]["checkpoint_id"]
        == p.config["configurable"]["checkpoint_id"]
        for h, p in itertools.pairwise(history)
        if h.parent_config
    )


async def test_delete_thread_keeps_a_session_that_holds_more(
    target: str, client: AsyncChatStoreClient
) -> None:
    saver = ChatStoreSaver(target, tenant_id=TENANT)
    graph = chat_graph(saver, ["x", "y"])
    for thread in ("only-checkpoints", "with-messages"):
        await graph.ainvoke(
            {"messages": [HumanMessage("q")]}, {"configurable": {"thread_id": thread}}
        )
    await client.append_messages("with-messages", [Message(role=Role.ROLE_USER, content="kept")])

    await saver.adelete_thread("only-checkpoints")
    await saver.adelete_thread("with-messages")
    await saver.adelete_thread("never-was")

    assert [s.id async for s in client.list_sessions()] == ["with-messages"]
    kept = await client.get_session("with-messages")
    assert (kept.checkpoint_count, kept.message_count) == (0, 1)
    assert await saver.aget_tuple({"configurable": {"thread_id": "with-messages"}}) is None
    await saver.aclose()


async def test_list_without_a_thread_lists_every_thread(target: str) -> None:
    def run() -> tuple[set[str], list[Any], list[Any]]:
        with ChatStoreClient(target, tenant_id=TENANT) as client:
            saver = ChatStoreSaver(sync_client=client, tenant_id=TENANT)
            graph = chat_graph(saver, ["x", "y"])
            for thread in ("t1", "t2"):
                config: RunnableConfig = {"configurable": {"thread_id": thread}}
                graph.invoke({"messages": [HumanMessage("q")]}, config)
            return (
                {t.config["configurable"]["thread_id"] for t in saver.list(None)},
                list(saver.list(None, filter={"source": "input"})),
                list(saver.list(None, limit=3)),
            )

    threads, inputs, limited = await asyncio.to_thread(run)

    assert threads == {"t1", "t2"}
    assert len(inputs) == 2
    assert len(limited) == 3


@pytest.mark.parametrize("strategy", ["keep_latest", "delete"])
async def test_prune(target: str, strategy: str) -> None:
    saver = ChatStoreSaver(target, tenant_id=TENANT)
    graph = chat_graph(saver, ["x"])
    config: RunnableConfig = {"configurable": {"thread_id": "pruned"}}
    await graph.ainvoke({"messages": [HumanMessage("q")]}, config)
    newest = await saver.aget_tuple(config)

    await saver.aprune(["pruned", "never-was"], strategy=strategy)

    left = [t async for t in saver.alist(config)]
    assert newest is not None
    assert [t.config for t in left] == ([newest.config] if strategy == "keep_latest" else [])
    with pytest.raises(ValueError, match="strategy"):
        await saver.aprune(["pruned"], strategy="sometimes")
    await saver.aclose()
