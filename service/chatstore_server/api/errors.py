"""API errors as rich `google.rpc.Status` values (AIP-193).

Every error a client sees is built here: a status code, a developer-facing message,
an `ErrorInfo` (reason in UPPER_SNAKE, domain "chatstore", metadata such as the
session id) and, for bad input, a `BadRequest` listing each wrong field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from chatstore_server.store import (
    AlreadyExistsError,
    ConflictError,
    CounterOverflowError,
    InvalidReferenceError,
    NotFoundError,
    RequestReusedError,
    SessionStateError,
    StoreError,
    UnavailableError,
)

DOMAIN = "chatstore"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One wrong field: its path in the request (`messages[2].content`) and what is wrong."""

    field: str
    description: str


@dataclass(eq=False)
class ApiError(Exception):
    """An error to return to the client as it is."""

    code: grpc.StatusCode
    message: str
    reason: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    violations: Sequence[FieldViolation] = ()

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def to_status(self) -> grpc.Status:
        """The `grpc.Status` to abort with, details in `grpc-status-details-bin`."""
        details = [
            error_details_pb2.ErrorInfo(
                reason=self.reason, domain=DOMAIN, metadata=dict(self.metadata)
            )
        ]
        if self.violations:
            details.append(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in self.violations
                    ]
                )
            )
        packed = []
        for detail in details:
            holder = any_pb2.Any()
            holder.Pack(detail)
            packed.append(holder)
        status = status_pb2.Status(
            code=getattr(code_pb2, self.code.name), message=self.message, details=packed
        )
        result: grpc.Status = rpc_status.to_status(status)
        return result


def invalid_argument(violations: Sequence[FieldViolation]) -> ApiError:
    """INVALID_ARGUMENT naming every wrong field, in the message and in `BadRequest`."""
    summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return ApiError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"invalid request: {summary}",
        reason="INVALID_FIELD",
        metadata={"fields": ",".join(v.field for v in violations)},
        violations=violations,
    )


def internal(request_id: str) -> ApiError:
    """INTERNAL with nothing of the cause: the log has it, under `request_id`."""
    return ApiError(
        grpc.StatusCode.INTERNAL,
        f"internal error (request id {request_id})",
        reason="INTERNAL",
        metadata={"request_id": request_id},
    )


# SessionStateError.state -> (status code, ErrorInfo reason)
_STATE_ERRORS = {
    "DELETED": (grpc.StatusCode.FAILED_PRECONDITION, "SESSION_DELETED"),
    "ARCHIVED": (grpc.StatusCode.FAILED_PRECONDITION, "SESSION_ARCHIVED"),
    "READ_ONLY": (grpc.StatusCode.FAILED_PRECONDITION, "SESSION_READ_ONLY"),
    "LIVE": (grpc.StatusCode.ALREADY_EXISTS, "SESSION_NOT_DELETED"),
    "COMPACTED_BEYOND": (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_COMPACTED_BEYOND"),
    "COMPACTED_HISTORY": (grpc.StatusCode.FAILED_PRECONDITION, "COMPACTED_HISTORY"),
}


def _id_name(resource: str) -> str:
    return "session_id" if resource.startswith("session") else f"{resource}_id"


def _key_name(error: NotFoundError) -> str:
    # A message can be missing "at seq N" rather than by id.
    if error.resource == "message" and error.key.startswith("at seq"):
        return "message_seq"
    return _id_name(error.resource)


def from_store_error(error: StoreError) -> ApiError:
    """Map a store error to the API error the client should see."""
    if isinstance(error, NotFoundError):
        return ApiError(
            grpc.StatusCode.NOT_FOUND,
            str(error),
            reason=f"{error.resource.upper()}_NOT_FOUND",
            metadata={_key_name(error): error.key.removeprefix("at seq ")},
        )
    if isinstance(error, AlreadyExistsError):
        message = (
            "a live session with this agent and key already exists"
            if error.resource == "session_key"
            else str(error)
        )
        return ApiError(
            grpc.StatusCode.ALREADY_EXISTS,
            message,
            reason=f"{error.resource.upper()}_ALREADY_EXISTS",
            metadata={_id_name(error.resource): error.key},
        )
    if isinstance(error, ConflictError):
        return ApiError(
            grpc.StatusCode.ABORTED,
            f"{error}; read the session again and retry",
            reason="ETAG_MISMATCH",
            metadata={_id_name(error.resource): error.key},
        )
    if isinstance(error, CounterOverflowError):
        return ApiError(
            grpc.StatusCode.OUT_OF_RANGE,
            f"{error}; nothing was written (UpdateSession can reset token_usage)",
            reason="COUNTER_OVERFLOW",
            metadata={"session_id": error.session_id, "counter": error.counter},
        )
    if isinstance(error, InvalidReferenceError):
        return invalid_argument([FieldViolation(error.field, error.description)])
    if isinstance(error, RequestReusedError):
        return ApiError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"{error}; use a new request_id for a new request",
            reason="REQUEST_ID_REUSED",
            metadata={"session_id": error.session_id, "request_id": error.request_id},
        )
    if isinstance(error, SessionStateError):
        code, reason = _STATE_ERRORS[error.state]
        return ApiError(code, str(error), reason=reason, metadata={"session_id": error.session_id})
    if isinstance(error, UnavailableError):
        return ApiError(
            grpc.StatusCode.UNAVAILABLE,
            "the database is unavailable; retry with backoff",
            reason="DATABASE_UNAVAILABLE",
        )
    raise TypeError(f"unmapped store error {type(error).__name__}") from error
