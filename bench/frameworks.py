"""Each framework integration beside the framework's own SQLite store, in one run.

    python -m bench.frameworks                 # 1,000 items, every framework
    python -m bench.frameworks --items 200 --only openai-agents adk

For each framework, on the same machine in the same minute: append N items one call at
a time (as an agent does, turn by turn), then load them all back (best of ten: a load
takes milliseconds, and of three, one was often slowed by the machine). The framework's
own stores run in this process on a SQLite file; chatstore is a server process on a
SQLite file (default settings: durable commits, the access log on), reached over gRPC
on loopback. Printed: per store, microseconds per append and
milliseconds per load, and chatstore's ratio to each (below 1 is faster).

- openai-agents: `add_items([item])` / `get_items()`; the SDK's SQLiteSession and
  SQLAlchemySession (aiosqlite).
- adk: `append_event` / `get_session`; ADK's DatabaseSessionService (aiosqlite).
- langgraph: `aput` (a checkpoint holding the messages so far, as a chat graph's
  grows) / `alist` of the thread; langgraph-checkpoint-sqlite's AsyncSqliteSaver.
- langchain: `aadd_messages([message])` / `aget_messages()`; langchain-community's
  SQLChatMessageHistory (aiosqlite).

The machine is shared and noisy: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.run import chatstore

TEXT = "Plan a three-day trip to Rome with trains, museums and a budget. " * 2
_LOADS = 10


async def _timed(
    append: Callable[[int], Awaitable[Any]], load: Callable[[], Awaitable[int]], items: int
) -> dict[str, float]:
    """Microseconds per append (sequential) and the best of `_LOADS` loads, in ms."""
    started = time.perf_counter()
    for n in range(items):
        await append(n)
    append_us = (time.perf_counter() - started) / items * 1e6
    loads = []
    for _ in range(_LOADS):
        started = time.perf_counter()
        count = await load()
        loads.append(time.perf_counter() - started)
        if count != items:
            raise RuntimeError(f"loaded {count} of {items}")
    return {"append_us": round(append_us), "load_ms": round(min(loads) * 1e3, 1)}


async def openai_agents(target: str, workdir: Path, items: int) -> dict[str, dict[str, float]]:
    from agents import SQLiteSession
    from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession

    from chatstore.integrations.openai_agents import ChatStoreSession

    def item(n: int) -> Any:
        role = "user" if n % 2 == 0 else "assistant"
        return {"role": role, "content": f"{n} {TEXT}"}

    stores: dict[str, Any] = {
        "chatstore": ChatStoreSession("bench-oa", target, tenant_id="bench"),
        "SQLiteSession": SQLiteSession("bench", str(workdir / "agents.db")),
        "SQLAlchemySession": SQLAlchemySession.from_url(
            "bench", url=f"sqlite+aiosqlite:///{workdir / 'agents-sa.db'}", create_tables=True
        ),
    }
    results = {}
    for name, session in stores.items():

        async def append(n: int, session: Any = session) -> None:
            await session.add_items([item(n)])

        async def load(session: Any = session) -> int:
            return len(await session.get_items())

        results[name] = await _timed(append, load, items)
    return results


async def adk(target: str, workdir: Path, items: int) -> dict[str, dict[str, float]]:
    from google.adk.events.event import Event
    from google.adk.events.event_actions import EventActions
    from google.adk.sessions.database_session_service import DatabaseSessionService
    from google.genai import types

    from chatstore.integrations.adk import ChatStoreSessionService

    services: dict[str, Any] = {
        "chatstore": ChatStoreSessionService(target, tenant_id="bench"),
        "DatabaseSessionService": DatabaseSessionService(
            f"sqlite+aiosqlite:///{workdir / 'adk.db'}"
        ),
    }
    results = {}
    for name, service in services.items():
        session = await service.create_session(app_name="bench", user_id="u", session_id="s")

        async def append(n: int, service: Any = service, session: Any = session) -> None:
            author = "user" if n % 2 == 0 else "planner"
            content = types.Content(role="user", parts=[types.Part(text=f"{n} {TEXT}")])
            event = Event(
                author=author,
                invocation_id=f"inv-{n // 2}",
                content=content,
                actions=EventActions(state_delta={"turn": n}),
            )
            await service.append_event(session, event)

        async def load(service: Any = service) -> int:
            got = await service.get_session(app_name="bench", user_id="u", session_id="s")
            return len(got.events)

        results[name] = await _timed(append, load, items)
    return results


async def langgraph(target: str, workdir: Path, items: int) -> dict[str, dict[str, float]]:
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from chatstore.integrations.langgraph import ChatStoreSaver

    results = {}
    async with AsyncSqliteSaver.from_conn_string(str(workdir / "langgraph.db")) as sqlite:
        savers: dict[str, Any] = {
            "chatstore": ChatStoreSaver(target, tenant_id="bench"),
            "AsyncSqliteSaver": sqlite,
        }
        for name, saver in savers.items():
            thread: dict[str, Any] = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
            messages: list[Any] = []

            async def append(
                n: int, saver: Any = saver, thread: Any = thread, messages: Any = messages
            ) -> None:
                # A chat graph's state grows by one message a step; keep the newest 20
                # so that the checkpoint stays the size of a trimmed conversation.
                made = HumanMessage if n % 2 == 0 else AIMessage
                messages.append(made(f"{n} {TEXT}"))
                checkpoint = empty_checkpoint()
                checkpoint["channel_values"] = {"messages": messages[-20:]}
                metadata: Any = {"source": "loop", "step": n, "parents": {}}
                config = await saver.aput(thread, checkpoint, metadata, {})
                thread["configurable"]["checkpoint_id"] = config["configurable"]["checkpoint_id"]

            async def load(saver: Any = saver) -> int:
                config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
                return len([c async for c in saver.alist(config)])

            results[name] = await _timed(append, load, items)
    return results


async def langchain(target: str, workdir: Path, items: int) -> dict[str, dict[str, float]]:
    from langchain_community.chat_message_histories import SQLChatMessageHistory
    from langchain_core.messages import AIMessage, HumanMessage

    from chatstore.integrations.langchain import ChatStoreChatMessageHistory

    histories: dict[str, Any] = {
        "chatstore": ChatStoreChatMessageHistory("bench-lc", target, tenant_id="bench"),
        "SQLChatMessageHistory": SQLChatMessageHistory(
            "bench",
            connection=f"sqlite+aiosqlite:///{workdir / 'langchain.db'}",
            async_mode=True,
        ),
    }
    results = {}
    for name, history in histories.items():

        async def append(n: int, history: Any = history) -> None:
            made = HumanMessage if n % 2 == 0 else AIMessage
            await history.aadd_messages([made(f"{n} {TEXT}")])

        async def load(history: Any = history) -> int:
            return len(await history.aget_messages())

        results[name] = await _timed(append, load, items)
    return results


FRAMEWORKS = {
    "openai-agents": openai_agents,
    "adk": adk,
    "langgraph": langgraph,
    "langchain": langchain,
}


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """The results as a Markdown table, with chatstore's ratios to each store."""
    rows = [
        "| framework | store | append (µs each) | load all (ms) | chatstore append ratio |"
        " chatstore load ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for framework, stores in results.items():
        ours = stores["chatstore"]
        for store, figures in stores.items():
            ratios = ("", "")
            if store != "chatstore":
                ratios = (
                    f"{ours['append_us'] / figures['append_us']:.2f}",
                    f"{ours['load_ms'] / figures['load_ms']:.2f}",
                )
            rows.append(
                f"| {framework} | {store} | {figures['append_us']:,.0f} |"
                f" {figures['load_ms']:,.1f} | {ratios[0]} | {ratios[1]} |"
            )
    return "\n".join(rows)


async def _main(items: int, only: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = f"sqlite+aiosqlite:///{workdir / 'chatstore.db'}"
        with chatstore(url, workdir, "chatstore") as server:
            for name in only:
                results[name] = await FRAMEWORKS[name](server.target, workdir, items)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000, help="items per store (1,000)")
    parser.add_argument("--only", nargs="+", choices=list(FRAMEWORKS), default=list(FRAMEWORKS))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results = asyncio.run(_main(args.items, args.only))
    print(table(results))
    ratios = [
        figures["load_ms"] and stores["chatstore"]["load_ms"] / figures["load_ms"]
        for stores in results.values()
        for store, figures in stores.items()
        if store != "chatstore"
    ]
    print(f"\nchatstore load / in-process load: median {statistics.median(ratios):.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
