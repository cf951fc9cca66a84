"""chatstore's own CPU per call, in one process: no network, no gRPC transport.

    python -m bench.inprocess GetSession
    python -m bench.inprocess AppendMessages --concurrency 16
    python -m bench.inprocess ListMessages --no-log-requests
    python -m bench.inprocess GetSession --database-url postgresql+asyncpg://postgres@127.0.0.1/DB

Each call parses the request bytes, runs the interceptor and the handler (a stand-in
context gives the call's metadata), and serializes the response, as the server does
around them. Prints the event-loop thread's CPU time per call (best of three rounds):
steadier on a shared machine than end-to-end rates, and what the profiling figures in
docs/performance.md come from. The PostgreSQL database must exist and be empty.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.seed import seed
from chatstore.v1 import message_pb2, session_service_pb2
from chatstore_server import logs
from chatstore_server.api.interceptors import CallInterceptor
from chatstore_server.api.observability import Metrics
from chatstore_server.api.servicer import SessionServicer
from chatstore_server.config import Settings
from chatstore_server.server import SERVICE_DESCRIPTOR, authenticator_from, database_from
from chatstore_server.store.changes import ChangeFeed

RPCS = ("GetSession", "AppendMessages", "ListMessages", "GetContextWindow", "ListSessions")


class _Context:
    """What the interceptor and handlers ask of a grpc.aio context on success."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("user-agent", "grpc-python-asyncio"),)

    def time_remaining(self) -> float | None:
        return None

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    async def abort(self, *args: Any) -> None:
        raise RuntimeError(f"the call failed: {args}")


def _request(rpc: str, hot_session: str, small_tenant: str) -> Any:
    s = session_service_pb2
    return {
        "GetSession": s.GetSessionRequest(tenant_id="bench", session_id=hot_session),
        "AppendMessages": s.AppendMessagesRequest(
            tenant_id="bench",
            session_id=hot_session,
            messages=[message_pb2.Message(role=message_pb2.ROLE_USER, content="x" * 100)],
        ),
        "ListMessages": s.ListMessagesRequest(
            tenant_id="bench", session_id=hot_session, page_size=50
        ),
        "GetContextWindow": s.GetContextWindowRequest(
            tenant_id="bench", session_id=hot_session, max_messages=50
        ),
        "ListSessions": s.ListSessionsRequest(tenant_id=small_tenant, page_size=50),
    }[rpc]


async def measure(rpc: str, url: str, calls: int, concurrency: int, log_requests: bool) -> float:
    """Microseconds of event-loop thread CPU per call, best of three rounds."""
    seeded = await seed(url, deep_messages=2_000, large_sessions=1_000)
    settings = Settings(database_url=url, log_requests=log_requests)
    database = database_from(settings)
    try:
        servicer = SessionServicer(
            database,
            settings.policy(),
            settings.limits(),
            ChangeFeed(settings.watch_buffer_changes),
        )
        wrapped = CallInterceptor(
            authenticator_from(settings), Metrics(), log_requests=log_requests
        ).wrap(servicer, SERVICE_DESCRIPTOR)
        request = _request(rpc, seeded.hot_session, seeded.small_tenant)
        data, parse, method = (
            request.SerializeToString(),
            type(request).FromString,
            getattr(wrapped, rpc),
        )
        request_ids = itertools.count()

        async def one() -> bytes:
            parsed = parse(data)
            if rpc == "AppendMessages":  # as the client sends appends: a fresh request id
                parsed.request_id = str(next(request_ids))
            response = await method(parsed, _Context())
            if isinstance(response, bytes):  # already encoded (api.wire)
                return response
            serialized: bytes = response.SerializeToString()
            return serialized

        async def caller(count: int) -> None:
            for _ in range(count):
                await one()

        await caller(200)  # warm up
        best = float("inf")
        for _ in range(3):
            started = time.thread_time()
            await asyncio.gather(*(caller(calls // concurrency) for _ in range(concurrency)))
            best = min(best, (time.thread_time() - started) / (calls // concurrency * concurrency))
        return best * 1e6
    finally:
        await database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rpc", choices=RPCS)
    parser.add_argument("--calls", type=int, default=2_000, help="calls per round")
    parser.add_argument("--concurrency", type=int, default=1, help="concurrent callers")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    parser.add_argument(
        "--log-requests", action=argparse.BooleanOptionalAction, default=True,
        help="the JSON access log line, as the server writes it (to /dev/null here)",
    )  # fmt: skip
    args = parser.parse_args()
    logs.configure("INFO", "json")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the process)
    with tempfile.TemporaryDirectory() as workdir:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(workdir) / 'bench.db'}"
        cpu = asyncio.run(measure(args.rpc, url, args.calls, args.concurrency, args.log_requests))
    print(f"{args.rpc}: {cpu:.1f} us of event-loop CPU per call ({args.concurrency} callers)")


if __name__ == "__main__":
    main()
