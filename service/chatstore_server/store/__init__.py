"""The session store: async SQLAlchemy over SQLite (aiosqlite) or PostgreSQL (asyncpg).

Repositories return frozen records (`chatstore_server.store.records`), never ORM
objects, and raise only the errors of `chatstore_server.store.errors`. Nothing here
knows about gRPC or protobuf.
"""

from chatstore_server.store.database import Database
from chatstore_server.store.errors import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    SessionStateError,
    StoreError,
    UnavailableError,
)
from chatstore_server.store.messages import MessageRepository
from chatstore_server.store.migrate import upgrade
from chatstore_server.store.records import (
    AccessMode,
    MessageRecord,
    NewMessage,
    NewSession,
    Page,
    PeerKind,
    Retention,
    Role,
    SessionKey,
    SessionPolicy,
    SessionRecord,
    SessionStatus,
    TokenUsage,
    ToolCallRecord,
)
from chatstore_server.store.session_list import (
    Inclusion,
    SessionCursor,
    SessionFilter,
    SessionOrder,
    TimeRange,
)
from chatstore_server.store.sessions import MUTABLE_FIELDS, SessionRepository
from chatstore_server.store.sweeper import SweepResult, sweep

__all__ = [
    "MUTABLE_FIELDS",
    "AccessMode",
    "AlreadyExistsError",
    "ConflictError",
    "Database",
    "Inclusion",
    "MessageRecord",
    "MessageRepository",
    "NewMessage",
    "NewSession",
    "NotFoundError",
    "Page",
    "PeerKind",
    "Retention",
    "Role",
    "SessionCursor",
    "SessionFilter",
    "SessionKey",
    "SessionOrder",
    "SessionPolicy",
    "SessionRecord",
    "SessionRepository",
    "SessionStateError",
    "SessionStatus",
    "StoreError",
    "SweepResult",
    "TimeRange",
    "TokenUsage",
    "ToolCallRecord",
    "UnavailableError",
    "sweep",
    "upgrade",
]
