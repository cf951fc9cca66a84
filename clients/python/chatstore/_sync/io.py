"""The sync client's I/O: blocking grpc channels and sleeps (twin of `_async.io`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import grpc

from chatstore._base import Page

T = TypeVar("T")

Channel = grpc.Channel
RpcError = grpc.RpcError
insecure_channel = grpc.insecure_channel
secure_channel = grpc.secure_channel
PageFetch = Callable[[str], Page[T]]
"""Fetches the page at a page token."""
UnaryUnary = grpc.UnaryUnaryMultiCallable
sleep = time.sleep


def close(channel: Channel) -> None:
    """Close the channel, cancelling its calls."""
    channel.close()
