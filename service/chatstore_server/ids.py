"""Random identifiers (request ids, UUID v4s) cut from one read of the operating
system's random source per 256 ids.

`secrets.token_hex` and `uuid.uuid4` each ask the kernel for 16 bytes (a `getrandom`
system call, about half of their cost); every call makes a request id and every append
a message id. The bytes are the same `os.urandom` bytes, read 4 KiB at a time, each
handed out once (under a lock, so threads never share one), and a forked child starts
with a fresh read, never its parent's.
"""

from __future__ import annotations

import os
import threading
import uuid

_READ_BYTES = 4096


class _Pool:
    """Random bytes from `os.urandom`, each given out once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data = b""
        self._next = 0

    def take(self, count: int) -> bytes:
        """`count` (at most 4,096) random bytes nobody else was given."""
        with self._lock:
            start = self._next
            if start + count > len(self._data):
                self._data = os.urandom(_READ_BYTES)
                start = 0
            self._next = start + count
            return self._data[start : start + count]

    def forget(self) -> None:
        """Drop what was read (in a forked child: the parent hands it out too)."""
        self._data = b""
        self._next = 0
        self._lock = threading.Lock()


_POOL = _Pool()
os.register_at_fork(after_in_child=_POOL.forget)


def random_hex() -> str:
    """128 random bits as 32 lowercase hex digits (a request id)."""
    return _POOL.take(16).hex()


def uuid4() -> uuid.UUID:
    """A random UUID (version 4), as `uuid.uuid4()` makes."""
    return uuid.UUID(bytes=_POOL.take(16), version=4)
