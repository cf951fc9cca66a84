"""The one interceptor every chatstore call passes through.

In order: a request id (the caller's `x-request-id`, or a new one), authentication, the
refusal of a request that could not be parsed (`decoding`), tenant authorization
(decided from the request's `tenant_id` before anything is looked up), the caller's
deadline, then the handler. Whatever the handler raises becomes a rich
status here and only here: `ApiError` as it is, a `StoreError` mapped, a timeout as
DEADLINE_EXCEEDED, and anything else as INTERNAL with the request id and nothing of the
exception (its traceback goes to the log under that id). Every call is counted in the
metrics and, if enabled, logged as one structured line. The request id returns to the
caller in the `x-request-id` trailing metadata.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import SimpleNamespace
from typing import Any, TypeVar, cast

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from chatstore_server import logs
from chatstore_server.api.auth import Authenticator
from chatstore_server.api.decoding import Rejected
from chatstore_server.api.errors import ApiError, from_store_error, internal
from chatstore_server.api.observability import Metrics
from chatstore_server.ids import random_hex
from chatstore_server.store import StoreError

logger = logging.getLogger("chatstore_server.api")
access_logger = logging.getLogger("chatstore_server.access")

_REQUEST_ID = "x-request-id"
_WATCH = "/chatstore.v1.SessionService/WatchSession"

Context = grpc.aio.ServicerContext[Any, Any]
S = TypeVar("S")
UnaryBehavior = Callable[[Any, Context], Awaitable[Any]]
StreamBehavior = Callable[[Any, Context], AsyncIterator[Any]]


def _request_id(metadata: Iterable[Any]) -> str:
    given = next((v for k, v in metadata if k == _REQUEST_ID), None)
    if isinstance(given, str) and 0 < len(given) <= 64 and given.isprintable():
        return given
    return random_hex()  # 128 random bits, as a UUID v4's hex without its cost


def _api_error(error: Exception, method: str, request_id: str) -> ApiError:
    if isinstance(error, ApiError):
        return error
    if isinstance(error, StoreError):
        try:
            return from_store_error(error)
        except Exception as unmapped:  # noqa: BLE001 - a bug: still no text to the client
            error = unmapped
    if isinstance(error, TimeoutError):
        return ApiError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "the call's deadline passed before it completed",
            reason="DEADLINE_EXCEEDED",
        )
    logger.error(
        "unhandled error in %s (request id %s)",
        method,
        request_id,
        exc_info=error,
        extra={"request_id": request_id, "method": method},
    )
    return internal(request_id)


class _Call:
    """The bookkeeping of one call: its id, its outcome, its metrics and log line."""

    def __init__(self, owner: CallInterceptor, method: str, name: str, context: Context) -> None:
        self.owner = owner
        self.method = method
        self.name = name  # the method's name alone, for the log line
        self.context = context
        # Read once: each call builds the tuple anew from the C core.
        self.metadata = context.invocation_metadata() or ()
        self.request_id = _request_id(self.metadata)
        self.code = "OK"
        self.started = time.perf_counter()

    def admit(self, request: Any) -> None:
        auth = self.owner.authenticator
        principal = auth.authenticate(self.metadata)
        if type(request) is Rejected:  # unparsable, or a string with a NUL: `decoding`
            raise request.error
        auth.authorize(principal, getattr(request, "tenant_id", ""), self.method)

    async def fail(self, error: Exception) -> None:
        api_error = _api_error(error, self.method, self.request_id)
        self.code = api_error.code.name
        status = api_error.to_status()
        await self.context.abort(
            status.code,
            status.details,
            (*status.trailing_metadata, (_REQUEST_ID, self.request_id)),
        )

    def finish(self) -> None:
        seconds = time.perf_counter() - self.started
        self.owner.metrics.observe(self.method, self.code, seconds)
        if self.owner.annotate is not None:
            self.owner.annotate(self.request_id)
        if self.owner.log_requests:
            logs.info_line(
                access_logger,
                f"{self.name} {self.code}",
                {
                    "request_id": self.request_id,
                    "method": self.method,
                    "code": self.code,
                    "duration_ms": round(seconds * 1000, 3),
                },
            )


class CallInterceptor:
    """Wraps every chatstore handler (health and reflection pass untouched).

    The handlers are wrapped once, when the service is registered (`wrap`), rather than
    through a `grpc.aio.ServerInterceptor`, which would run an extra coroutine to look
    the handler up and wrap it again on every call.
    """

    def __init__(
        self,
        authenticator: Authenticator,
        metrics: Metrics,
        *,
        log_requests: bool = True,
        annotate: Callable[[str], None] | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.metrics = metrics
        self.log_requests = log_requests
        # Called with each call's request id inside the call (tracing puts it on the span).
        self.annotate = annotate

    def wrap(self, servicer: S, service: ServiceDescriptor) -> S:
        """An object with `servicer`'s handler for each method of `service`, wrapped
        (and nothing else); register it in place of the servicer
        (`add_<Service>Servicer_to_server`).

        Raises:
            ValueError: A method streams requests (chatstore has none).
        """
        wrapped: dict[str, Any] = {}
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            behavior = getattr(servicer, method.name)
            if method.client_streaming:
                raise ValueError(f"{path}: request streaming is not supported")
            wrap = self._stream if method.server_streaming else self._unary
            wrapped[method.name] = wrap(behavior, path)
        return cast(S, SimpleNamespace(**wrapped))

    def _unary(self, behavior: UnaryBehavior, method: str) -> UnaryBehavior:
        name = method.rsplit("/", 1)[-1]

        async def wrapper(request: Any, context: Context) -> Any:
            call = _Call(self, method, name, context)
            try:
                call.admit(request)
                remaining: float | None = context.time_remaining()  # None: no deadline
                if remaining is None:
                    response = await behavior(request, context)
                else:
                    async with asyncio.timeout(remaining):
                        response = await behavior(request, context)
                context.set_trailing_metadata(((_REQUEST_ID, call.request_id),))
                return response
            except grpc.aio.AbortError:
                raise  # context.abort() already chose the status
            except asyncio.CancelledError:
                call.code = "CANCELLED"
                raise
            except Exception as error:
                await call.fail(error)
                raise  # unreachable: abort() raises
            finally:
                call.finish()

        return wrapper

    def _stream(self, behavior: StreamBehavior, method: str) -> StreamBehavior:
        name = method.rsplit("/", 1)[-1]

        async def wrapper(request: Any, context: Context) -> AsyncIterator[Any]:
            call = _Call(self, method, name, context)
            watching = method == _WATCH
            if watching:
                self.metrics.watch_streams.inc()
            try:
                call.admit(request)
                context.set_trailing_metadata(((_REQUEST_ID, call.request_id),))
                async for response in behavior(request, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except (asyncio.CancelledError, GeneratorExit):
                call.code = "CANCELLED"
                raise
            except Exception as error:
                await call.fail(error)
                raise
            finally:
                if watching:
                    self.metrics.watch_streams.dec()
                call.finish()

        return wrapper
