"""chatstore: the typed Python client of the chatstore session store.

    from chatstore import ChatStoreClient, Message, Role

The generated protobuf and gRPC code lives in `chatstore.v1`.
"""

from chatstore._client import DEFAULT_TARGET, DEFAULT_TIMEOUT_SECONDS, UNSET, ChatStoreClient
from chatstore._errors import (
    Aborted,
    AlreadyExists,
    ChatStoreError,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RpcError,
    Unauthenticated,
    Unavailable,
)
from chatstore._pagers import AsyncPager, Page
from chatstore.v1 import (
    AccessMode,
    Inclusion,
    Message,
    PeerKind,
    Retention,
    Role,
    Session,
    SessionKey,
    SessionStatus,
    SessionView,
    TokenUsage,
    ToolCall,
)

__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT_SECONDS",
    "UNSET",
    "Aborted",
    "AccessMode",
    "AlreadyExists",
    "AsyncPager",
    "ChatStoreClient",
    "ChatStoreError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Inclusion",
    "Internal",
    "InvalidArgument",
    "Message",
    "NotFound",
    "Page",
    "PeerKind",
    "PermissionDenied",
    "ResourceExhausted",
    "Retention",
    "Role",
    "RpcError",
    "Session",
    "SessionKey",
    "SessionStatus",
    "SessionView",
    "TokenUsage",
    "ToolCall",
    "Unauthenticated",
    "Unavailable",
]
