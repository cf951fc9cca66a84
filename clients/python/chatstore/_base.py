"""What the async and sync clients share: everything but the I/O.

The async client (`chatstore._async`) is the one hand-written copy; the sync client
(`chatstore._sync`) is generated from it by `scripts/generate.py` (unasync), and the
two differ only in their `io` modules. This module holds the rest: deadlines, the retry
policy, channel options, request helpers.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Generic, TypeVar

import grpc
from google.protobuf import descriptor_pb2, field_mask_pb2, struct_pb2, timestamp_pb2

from chatstore._errors import RpcError
from chatstore.v1 import session_pb2, session_service_pb2, shared_state_pb2

DEFAULT_TARGET: Final = "127.0.0.1:50051"
DEFAULT_TIMEOUT_SECONDS: Final = 10.0

Metadata = Sequence[tuple[str, str]]
TimeBounds = tuple[datetime | None, datetime | None]
T = TypeVar("T")
RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


class Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()
"""Marks an argument as "not given": a default deadline, a field left alone."""


def _idempotent_requests() -> frozenset[str]:
    """The request types of the RPCs the contract marks NO_SIDE_EFFECTS or IDEMPOTENT
    (safe to retry). Each RPC has a request type of its own, so the type names the RPC."""
    service = session_service_pb2.DESCRIPTOR.services_by_name["SessionService"]
    safe = {
        descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
        descriptor_pb2.MethodOptions.IDEMPOTENT,
    }
    return frozenset(
        m.input_type.full_name for m in service.methods if m.GetOptions().idempotency_level in safe
    )


IDEMPOTENT_REQUESTS: Final = _idempotent_requests()


def is_idempotent(request: Any) -> bool:
    """Whether the contract says the request's RPC is safe to repeat."""
    return type(request).DESCRIPTOR.full_name in IDEMPOTENT_REQUESTS


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results and the token of the next page ("" after the last page)."""

    items: list[T]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of UNAVAILABLE calls: exponential backoff with full jitter, never past
    the call's deadline (Google API guidance; only idempotent calls are retried).

    Args:
        max_attempts: Attempts in all, the first included.
        initial_backoff_seconds: The first delay's upper bound.
        max_backoff_seconds: No delay's upper bound exceeds this.
        multiplier: Each delay's bound grows by this factor.
    """

    max_attempts: int = 6
    initial_backoff_seconds: float = 0.2
    max_backoff_seconds: float = 5.0
    multiplier: float = 2.0

    def backoff(self, attempt: int) -> float:
        """A jittered pause after `attempt` failures in a row (0 for the first), seconds."""
        bound = min(
            self.max_backoff_seconds, self.initial_backoff_seconds * self.multiplier**attempt
        )
        return random.uniform(0, bound)  # noqa: S311 (jitter, not cryptography)

    def delay(self, attempt: int, error: RpcError, deadline: float | None) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up and raise."""
        if error.code != grpc.StatusCode.UNAVAILABLE or attempt + 1 >= self.max_attempts:
            return None
        pause = self.backoff(attempt)
        if deadline is not None and time.monotonic() + pause >= deadline:
            return None
        return pause


NO_RETRIES: Final = RetryPolicy(max_attempts=1)


def deadline_at(timeout: float | None) -> float | None:
    """The monotonic time a call with `timeout` seconds must end by (None: never)."""
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline: float | None) -> float | None:
    """Seconds left until `deadline` (at least a millisecond, so gRPC fails it itself)."""
    return None if deadline is None else max(deadline - time.monotonic(), 0.001)


def channel_options(
    keepalive_time_seconds: float | None, max_message_bytes: int
) -> list[tuple[str, Any]]:
    """gRPC channel options for the client's settings."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # Reconnect promptly when a server restarts (gRPC's default first waits 1 s,
        # during which every call, retries included, fails at once).
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]
    if keepalive_time_seconds is not None:
        options.append(("grpc.keepalive_time_ms", int(keepalive_time_seconds * 1000)))
    return options


def channel_credentials(
    tls: bool,
    root_certificates: bytes | None,
    client_certificate: bytes | None,
    client_private_key: bytes | None,
) -> grpc.ChannelCredentials | None:
    """TLS credentials when any TLS setting is given, else None (plaintext)."""
    if not (tls or root_certificates or client_certificate):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=root_certificates,
        private_key=client_private_key,
        certificate_chain=client_certificate,
    )


def auth_metadata(api_key: str | None) -> Metadata:
    """The metadata that carries a credential."""
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


def struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    """A JSON object as a Struct."""
    result = struct_pb2.Struct()
    result.update(value)
    return result


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """An aware datetime as a Timestamp (None stays unset)."""
    if value is None:
        return None
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def time_range(bounds: TimeBounds | None) -> session_service_pb2.TimeRange | None:
    """(start, end) as a TimeRange (None stays unset)."""
    if bounds is None:
        return None
    return session_service_pb2.TimeRange(
        start_time=timestamp(bounds[0]), end_time=timestamp(bounds[1])
    )


def json_text(value: Any) -> str:
    """A JSON value as compact JSON text (integers of any size exact), for the API's
    `*_json` fields; text passes through as it is."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def session_change(
    *,
    metadata_patch: Mapping[str, Any] | str | None = None,
    shared_state_patches: Mapping[str, Mapping[str, Any] | str] | None = None,
    shared_state_etags: Mapping[str, str] | None = None,
    fields: session_pb2.Session | None = None,
    update_mask: Sequence[str] = (),
    patch_mode: shared_state_pb2.PatchMode.ValueType = shared_state_pb2.PATCH_MODE_MERGE,
) -> session_service_pb2.SessionChange:
    """A `SessionChange` for an append: a patch of the session's metadata, patches of
    shared states by name (each under its etag in `shared_state_etags`, if given), and
    session fields (`fields`, those `update_mask` names).

    Patches are JSON merge patches (RFC 7386: null removes a key, objects merge), or
    with `patch_mode=PATCH_MODE_REPLACE_KEYS` dict updates (each top-level key
    replaced whole, null stored as null).
    """
    change = session_service_pb2.SessionChange(
        update_mask=field_mask_pb2.FieldMask(paths=update_mask), metadata_patch_mode=patch_mode
    )
    if fields is not None:
        change.session.CopyFrom(fields)
    if metadata_patch is not None:
        change.metadata_patch_json = json_text(metadata_patch)
    etags = shared_state_etags or {}
    for name, patch in (shared_state_patches or {}).items():
        change.shared_state_patches.add(
            name=name, patch_json=json_text(patch), etag=etags.get(name, ""), mode=patch_mode
        )
    return change
