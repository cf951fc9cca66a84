"""The client's exceptions, and the one place where gRPC errors become them.

    ChatStoreError                 root of everything this package raises
    └── RpcError                   the server (or the channel) returned a non-OK status
        ├── InvalidArgument        bad input; see `field_violations`
        ├── NotFound               no such session or message in the tenant
        ├── AlreadyExists          the id is taken
        ├── FailedPrecondition     the session's state forbids the call
        ├── Aborted                an etag or expected seq no longer matches; re-read, retry
        ├── PermissionDenied       the credential does not cover the tenant or the write
        ├── Unauthenticated        missing or invalid credential
        ├── ResourceExhausted      over a size or rate limit
        ├── OutOfRange             a counter would pass its largest value
        ├── DeadlineExceeded       the call's deadline passed
        ├── Unavailable            the server or its database is down; safe to retry
        └── Internal               a server bug; `request_id` finds it in the server's log

Every `RpcError` carries the status `code`, the server's `message`, and what the
`google.rpc.Status` details said: the `ErrorInfo` `reason`, `domain` and `metadata`,
and the `BadRequest` field violations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One wrong field of a request: its path (`messages[2].content`) and what is wrong."""

    field: str
    description: str


class ChatStoreError(Exception):
    """Root of every exception the chatstore client raises."""


class RpcError(ChatStoreError):
    """A call ended with a non-OK gRPC status."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Sequence[FieldViolation] = (),
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        """The `ErrorInfo` reason, an UPPER_SNAKE constant such as `SESSION_NOT_FOUND`."""
        self.domain = domain
        self.metadata: Mapping[str, str] = dict(metadata or {})
        self.field_violations: tuple[FieldViolation, ...] = tuple(field_violations)

    @property
    def request_id(self) -> str | None:
        """The server's request id for INTERNAL errors, for finding the log entry."""
        return self.metadata.get("request_id")


class InvalidArgument(RpcError):
    """The request is malformed; `field_violations` names each wrong field."""


class NotFound(RpcError):
    """No such session or message in the tenant."""


class AlreadyExists(RpcError):
    """The id (of a session or message) is already in use."""


class FailedPrecondition(RpcError):
    """The session's state (deleted, archived, read-only) forbids the call."""


class Aborted(RpcError):
    """A precondition (etag, expected seq) no longer holds: re-read and retry."""


class PermissionDenied(RpcError):
    """The credential does not cover this tenant, or only allows reading."""


class Unauthenticated(RpcError):
    """The credential is missing or invalid."""


class ResourceExhausted(RpcError):
    """A size or rate limit was exceeded."""


class OutOfRange(RpcError):
    """The write would take a counter (token usage) past its largest value; nothing
    was written."""


class DeadlineExceeded(RpcError):
    """The call's deadline passed before it completed."""


class Unavailable(RpcError):
    """The server or its database is unreachable; the call may be retried."""


class Internal(RpcError):
    """The server hit a bug; `request_id` locates it in the server's log."""


_BY_CODE: dict[grpc.StatusCode, type[RpcError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.INTERNAL: Internal,
}


class _FailedCall(Protocol):
    """What both grpc.aio.AioRpcError and the sync grpc.RpcError (a grpc.Call) offer."""

    def code(self) -> grpc.StatusCode: ...
    def details(self) -> str | None: ...
    def trailing_metadata(self) -> Any: ...


def from_grpc_error(error: Any) -> RpcError:
    """Translate a gRPC error (async or sync), decoding its `google.rpc.Status` details.

    `error` is a `grpc.aio.AioRpcError` or a `grpc.RpcError` that is also a `grpc.Call`.
    """
    failed: _FailedCall = error
    code = failed.code()
    kwargs: dict[str, object] = {}
    for key, value in failed.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            kwargs = _decode_details(status_pb2.Status.FromString(value))
    cls = _BY_CODE.get(code, RpcError)
    return cls(code, failed.details() or "", **kwargs)  # type: ignore[arg-type]


def _decode_details(status: status_pb2.Status) -> dict[str, object]:
    decoded: dict[str, object] = {}
    violations: list[FieldViolation] = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            decoded |= {
                "reason": info.reason,
                "domain": info.domain,
                "metadata": dict(info.metadata),
            }
        elif detail.Unpack(bad_request):
            violations += [
                FieldViolation(v.field, v.description) for v in bad_request.field_violations
            ]
    decoded["field_violations"] = violations
    return decoded
