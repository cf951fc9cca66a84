"""The one place where exceptions become gRPC statuses.

Handlers raise `ApiError` (bad input, a failed precondition) or let a `StoreError`
through (not found, already exists, unavailable); both become a rich status here.
Anything else is a bug: the client gets INTERNAL with a request id and nothing of the
exception, and the log gets the traceback under that id.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from chatstore_server.api.errors import ApiError, from_store_error, internal
from chatstore_server.store import StoreError

logger = logging.getLogger("chatstore_server.api")

_SERVICE_PREFIX = "/chatstore.v1."

Context = grpc.aio.ServicerContext[Any, Any]
UnaryBehavior = Callable[[Any, Context], Awaitable[Any]]
StreamBehavior = Callable[[Any, Context], AsyncIterator[Any]]


async def _abort(context: Context, error: Exception, method: str) -> None:
    if isinstance(error, ApiError):
        api_error = error
    elif isinstance(error, StoreError):
        api_error = from_store_error(error)
    else:
        request_id = uuid.uuid4().hex
        logger.error("unhandled error in %s (request id %s)", method, request_id, exc_info=error)
        api_error = internal(request_id)
    status = api_error.to_status()
    await context.abort(status.code, status.details, status.trailing_metadata)


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps every exception of a chatstore handler to a `google.rpc.Status`."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(_SERVICE_PREFIX):
            return handler
        # grpc's handlers are namedtuples: swap in the wrapped behaviour.
        generic: Any = handler
        if generic.unary_unary is not None:
            wrapped: Any = generic._replace(unary_unary=_wrap_unary(generic.unary_unary, method))
        elif generic.unary_stream is not None:
            wrapped = generic._replace(unary_stream=_wrap_stream(generic.unary_stream, method))
        else:
            return handler
        result: grpc.RpcMethodHandler[Any, Any] = wrapped
        return result


def _wrap_unary(behavior: UnaryBehavior, method: str) -> UnaryBehavior:
    async def wrapper(request: Any, context: Context) -> Any:
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise  # context.abort() already chose the status
        except Exception as error:
            await _abort(context, error, method)
            raise  # unreachable: abort() raises

    return wrapper


def _wrap_stream(behavior: StreamBehavior, method: str) -> StreamBehavior:
    async def wrapper(request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            async for response in behavior(request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await _abort(context, error, method)
            raise

    return wrapper
