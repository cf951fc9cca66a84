"""The load generator: runs in its own process, so it does not share the server's CPU
time slice. Drives one scenario for a bounded time and request count, then prints one
JSON object: calls, seconds, calls/s, latency percentiles (ms), errors.

    python -m bench.load '{"scenario": "get_session", "targets": ["127.0.0.1:50051"], ...}'
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc

from chatstore.v1 import (
    AppendMessagesRequest,
    AppendMessagesResponse,
    ContextWindow,
    CreateSessionRequest,
    GetContextWindowRequest,
    GetSessionRequest,
    ListMessagesRequest,
    ListMessagesResponse,
    ListSessionsRequest,
    ListSessionsResponse,
    Message,
    Role,
    Session,
    WatchSessionRequest,
    session_service_pb2_grpc,
)

ECHO = "/bench.Echo/Echo"
SERVICE = "chatstore.v1.SessionService"
# What each unary scenario's answer must hold (checked on a sample, after the clock).
_ANSWERS: dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bool]]] = {
    "get_session": (Session.FromString, lambda s: bool(s.id)),
    "append": (AppendMessagesResponse.FromString, lambda r: len(r.messages) == 1),
    "list_messages": (ListMessagesResponse.FromString, lambda r: len(r.messages) == 50),
    "list_sessions": (ListSessionsResponse.FromString, lambda r: len(r.sessions) == 50),
    "context_window": (ContextWindow.FromString, lambda w: len(w.messages) == 50),
}


def _serialize(request: Any) -> bytes:
    return request.SerializeToString()  # type: ignore[no-any-return]


def _check(scenario: str, answers: list[bytes]) -> int:
    """How many of a sample of raw answers parse as the scenario's response and hold
    what it asked for (a page full, a session with an id); the rest are `bad_answers`."""
    if scenario not in _ANSWERS:
        return 0
    parse, holds = _ANSWERS[scenario]
    return sum(1 for answer in answers if not holds(parse(answer)))


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _request_factory(spec: dict[str, Any]) -> tuple[str, Callable[[], Any]]:
    """(stub method name, a function making the next request) for a unary scenario."""
    tenant, session = spec.get("tenant", "bench"), spec.get("session_id", "")
    scenario = spec["scenario"]
    if scenario == "get_session":
        return "GetSession", lambda: GetSessionRequest(tenant_id=tenant, session_id=session)
    if scenario == "append":
        content = "x" * spec.get("payload_bytes", 100)
        # One hot session, or (with "spread_sessions") round-robin over several.
        targets = itertools.cycle(spec.get("session_ids") or [session])

        def append() -> AppendMessagesRequest:
            # As the client sends it: with a request id, so that retries are safe.
            return AppendMessagesRequest(
                tenant_id=tenant,
                session_id=next(targets),
                request_id=uuid.uuid4().hex,
                messages=[Message(role=Role.ROLE_USER, content=content)],
            )

        return "AppendMessages", append
    if scenario == "list_messages":
        after = spec.get("after_seq", 0)
        return "ListMessages", lambda: ListMessagesRequest(
            tenant_id=tenant, session_id=session, page_size=50, after_seq=after
        )
    if scenario == "list_sessions":
        return "ListSessions", lambda: ListSessionsRequest(tenant_id=tenant, page_size=50)
    if scenario == "context_window":
        return "GetContextWindow", lambda: GetContextWindowRequest(
            tenant_id=tenant, session_id=session, max_messages=50
        )
    raise ValueError(f"unknown scenario {scenario}")


async def unary(spec: dict[str, Any]) -> dict[str, Any]:
    """Drive a unary scenario: `concurrency` callers spread over `targets`."""
    channels = [grpc.aio.insecure_channel(t) for t in spec["targets"]]
    if spec["scenario"] == "echo":
        payload = b"x" * spec.get("payload_bytes", 100)
        calls: list[Any] = [c.unary_unary(ECHO) for c in channels]

        def invoke(index: int) -> Any:
            return calls[index % len(calls)](payload)
    else:
        if spec.get("spread_sessions"):  # set-up, not measured: sessions to spread over
            stub = session_service_pb2_grpc.SessionServiceStub(channels[0])
            spec["session_ids"] = [
                (await stub.CreateSession(CreateSessionRequest(tenant_id=spec["tenant"]))).id
                for _ in range(spec["spread_sessions"])
            ]
        method, make = _request_factory(spec)
        # Answers are taken as bytes, as from the echo server: parsing them here would
        # spend the load generator's CPU (which shares the machine with the server) on
        # chatstore's scenarios and not on the echo's. `_check` parses some afterwards.
        path = f"/{SERVICE}/{method}"
        stubs: list[Any] = [
            c.unary_unary(path, request_serializer=_serialize, response_deserializer=None)
            for c in channels
        ]

        def invoke(index: int) -> Any:
            return stubs[index % len(stubs)](make())

    latencies: list[float] = []
    errors: dict[str, int] = {}
    sample: list[Any] = []  # each caller's first and last answers
    deadline = time.perf_counter() + spec["duration"]
    budget = spec.get("max_requests", 10**9)

    async def caller(index: int) -> None:
        nonlocal budget
        answer = first = None
        while time.perf_counter() < deadline and budget > 0:
            budget -= 1
            started = time.perf_counter()
            try:
                answer = await invoke(index)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] = errors.get(error.code().name, 0) + 1
                continue
            latencies.append(time.perf_counter() - started)
            first = answer if first is None else first
        sample.extend(a for a in (first, answer) if a is not None)

    for index in range(min(len(channels) * 4, spec["concurrency"])):  # warm the connections
        await invoke(index)
    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(spec["concurrency"])))
    seconds = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    return {
        "calls": len(latencies),
        "seconds": seconds,
        "calls_per_second": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": errors,
        "bad_answers": _check(spec["scenario"], sample),
    }


async def watch(spec: dict[str, Any]) -> dict[str, Any]:
    """`watchers` streams on one session; a writer appends at `rate` per second for
    `duration` seconds; every delivery's latency (write sent to message received).

    Latencies are worked out after the run: a watcher may receive a message before the
    writer has its answer (and so its seq), since the server announces a write once it
    is committed, as it answers the writer."""
    channel = grpc.aio.insecure_channel(spec["targets"][0])
    stub = session_service_pb2_grpc.SessionServiceStub(channel)
    tenant, session = spec["tenant"], spec["session_id"]
    current = await stub.GetSession(GetSessionRequest(tenant_id=tenant, session_id=session))
    start_seq = current.last_seq  # follow from now on
    deliveries: list[tuple[int, float]] = []  # (seq, when received), every watcher's
    received: list[list[int]] = [[] for _ in range(spec["watchers"])]
    ready = asyncio.Event()
    sent_at: dict[int, float] = {}

    async def watcher(index: int) -> None:
        call = stub.WatchSession(
            WatchSessionRequest(tenant_id=tenant, session_id=session, from_seq=start_seq)
        )
        async for item in call:
            if item.HasField("message"):
                seq = item.message.seq
                if item.message.content == "ready":
                    received[index].append(seq)
                    if all(received):
                        ready.set()
                    continue
                received[index].append(seq)
                deliveries.append((seq, time.perf_counter()))

    tasks = [asyncio.create_task(watcher(i)) for i in range(spec["watchers"])]
    # A first message that every watcher must see before the clock starts.
    await stub.AppendMessages(
        AppendMessagesRequest(
            tenant_id=tenant,
            session_id=session,
            messages=[Message(role=Role.ROLE_USER, content="ready")],
        )
    )
    await asyncio.wait_for(ready.wait(), 30)
    interval = 1 / spec["rate"]
    writes = int(spec["rate"] * spec["duration"])
    started = time.perf_counter()
    for index in range(writes):
        target_time = started + index * interval
        await asyncio.sleep(max(0, target_time - time.perf_counter()))
        sent = time.perf_counter()
        response = await stub.AppendMessages(
            AppendMessagesRequest(
                tenant_id=tenant,
                session_id=session,
                messages=[Message(role=Role.ROLE_USER, content="w")],
            )
        )
        sent_at[response.messages[0].seq] = sent
    await asyncio.sleep(1.0)  # let the last deliveries land
    seconds = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await channel.close()
    complete = all(r[1:] == list(range(r[0] + 1, r[0] + 1 + writes)) for r in received)
    latencies = [at - sent_at[seq] for seq, at in deliveries if seq in sent_at]
    return {
        "watchers": spec["watchers"],
        "writes": writes,
        "deliveries": len(latencies),
        "deliveries_per_second": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "all_in_order": complete,
    }


async def idle_watches(spec: dict[str, Any]) -> dict[str, Any]:
    """Open `watchers` idle streams, report on stdout, hold them until stdin closes.

    Idle: each follows the session from its newest message on, with nothing to replay
    (a stream replaying a long history to a client that does not read would hold up
    to a flow-control window of unread messages: that is a backlog, not idle)."""
    channel = grpc.aio.insecure_channel(spec["targets"][0])
    stub = session_service_pb2_grpc.SessionServiceStub(channel)
    tenant, session = spec["tenant"], spec["session_id"]
    current = await stub.GetSession(GetSessionRequest(tenant_id=tenant, session_id=session))
    request = WatchSessionRequest(tenant_id=tenant, session_id=session, from_seq=current.last_seq)
    calls = [stub.WatchSession(request) for _ in range(spec["watchers"])]
    await asyncio.gather(*(call.wait_for_connection() for call in calls))
    await asyncio.sleep(2)  # let the server set every stream up
    print(json.dumps({"open": len(calls)}), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    for call in calls:
        call.cancel()
    await channel.close()
    return {"open": len(calls)}


def main() -> None:
    spec = json.loads(sys.argv[1])
    runner = {"watch": watch, "idle_watches": idle_watches}.get(spec["scenario"], unary)
    result = asyncio.run(runner(spec))
    if spec["scenario"] != "idle_watches":
        print(json.dumps(result))


if __name__ == "__main__":
    main()
