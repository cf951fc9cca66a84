"""The async client's I/O: grpc.aio channels and asyncio sleeps.

`chatstore._sync.io` is its blocking twin; these two are all that differs between
the clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from chatstore._base import Page

T = TypeVar("T")

Channel = grpc.aio.Channel
RpcError = grpc.aio.AioRpcError
insecure_channel = grpc.aio.insecure_channel
secure_channel = grpc.aio.secure_channel
PageFetch = Callable[[str], Awaitable[Page[T]]]
"""Fetches the page at a page token."""
UnaryUnary = grpc.aio.UnaryUnaryMultiCallable
sleep = asyncio.sleep


async def close(channel: Channel) -> None:
    """Close the channel, cancelling its calls."""
    await channel.close()
