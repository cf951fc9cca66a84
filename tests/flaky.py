"""A real gRPC hop in front of a chatstore server that answers UNAVAILABLE to the first
attempts of each method, and counts attempts: to see retries from the outside."""

from __future__ import annotations

import collections
from typing import Any

import grpc


class FlakyProxy:
    """Forwards unary calls (as raw bytes) to `upstream`, failing the first `failures`
    attempts of each method with UNAVAILABLE."""

    def __init__(self, upstream: str, failures: int) -> None:
        self.failures = failures
        self.attempts: collections.Counter[str] = collections.Counter()
        self._upstream = grpc.aio.insecure_channel(upstream)
        self._server = grpc.aio.server()
        self.port = 0

    async def start(self) -> FlakyProxy:
        self._server.add_generic_rpc_handlers([_Handler(self)])
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self

    async def forward(self, method: str, request: bytes, context: Any) -> bytes:
        self.attempts[method.rsplit("/", 1)[-1]] += 1
        if self.attempts[method.rsplit("/", 1)[-1]] <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "flaky hop says no")
        metadata = tuple(
            (k, v) for k, v in context.invocation_metadata() or () if not k.startswith("grpc-")
        )
        call: Any = self._upstream.unary_unary(method)
        response: bytes = await call(request, metadata=metadata, timeout=context.time_remaining())
        return response

    async def stop(self) -> None:
        await self._server.stop(None)
        await self._upstream.close()


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, proxy: FlakyProxy) -> None:
        self._proxy = proxy

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method

        async def behavior(request: bytes, context: Any) -> bytes:
            return await self._proxy.forward(method, request, context)

        return grpc.unary_unary_rpc_method_handler(behavior)
