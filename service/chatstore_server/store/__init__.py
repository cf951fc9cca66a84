"""The session store: async SQLAlchemy over SQLite (aiosqlite) or PostgreSQL (asyncpg).

Repositories return frozen records (`chatstore_server.store.records`), never ORM
objects, and raise only the errors of `chatstore_server.store.errors`. Nothing here
knows about gRPC or protobuf.
"""

from chatstore_server.store.appends import Precondition
from chatstore_server.store.changes import (
    Change,
    ChangeFeed,
    Subscription,
    SubscriptionClosed,
    SubscriptionOverflow,
)
from chatstore_server.store.checkpoints import (
    CheckpointCursor,
    CheckpointFilter,
    CheckpointRepository,
)
from chatstore_server.store.context import MAX_MESSAGES as CONTEXT_MAX_MESSAGES
from chatstore_server.store.context import context_window, newest
from chatstore_server.store.database import Database
from chatstore_server.store.errors import (
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
from chatstore_server.store.events import EventRepository
from chatstore_server.store.fork import fork_session
from chatstore_server.store.messages import (
    REWIND_RETURNS_AT_MOST,
    MessageFilter,
    MessageRepository,
    RewindRecord,
)
from chatstore_server.store.migrate import upgrade
from chatstore_server.store.notify import ChangeListener
from chatstore_server.store.records import (
    ABSENT,
    AccessMode,
    CheckpointRecord,
    CheckpointWriteRecord,
    ContextWindowRecord,
    EncodedPage,
    EventRecord,
    ForkSource,
    MessageRecord,
    NewCheckpoint,
    NewEvent,
    NewMessage,
    NewSession,
    Page,
    PeerKind,
    Retention,
    Role,
    RowVersion,
    SessionChangeRecord,
    SessionKey,
    SessionPolicy,
    SessionRecord,
    SessionStatus,
    SharedStatePatchRecord,
    SharedStateRecord,
    StoredMessage,
    TokenUsage,
    ToolCallRecord,
    WindowMessage,
)
from chatstore_server.store.session_list import (
    Inclusion,
    SessionCursor,
    SessionFilter,
    SessionOrder,
    TimeRange,
)
from chatstore_server.store.sessions import MUTABLE_FIELDS, SessionRepository
from chatstore_server.store.shared_states import SharedStateRepository
from chatstore_server.store.sweeper import SweepResult, sweep

__all__ = [
    "ABSENT",
    "CONTEXT_MAX_MESSAGES",
    "MUTABLE_FIELDS",
    "REWIND_RETURNS_AT_MOST",
    "AccessMode",
    "AlreadyExistsError",
    "Change",
    "ChangeFeed",
    "ChangeListener",
    "CheckpointCursor",
    "CheckpointFilter",
    "CheckpointRecord",
    "CheckpointRepository",
    "CheckpointWriteRecord",
    "ConflictError",
    "ContextWindowRecord",
    "CounterOverflowError",
    "Database",
    "EncodedPage",
    "EventRecord",
    "EventRepository",
    "ForkSource",
    "Inclusion",
    "InvalidReferenceError",
    "MessageFilter",
    "MessageRecord",
    "MessageRepository",
    "NewCheckpoint",
    "NewEvent",
    "NewMessage",
    "NewSession",
    "NotFoundError",
    "Page",
    "PeerKind",
    "Precondition",
    "RequestReusedError",
    "Retention",
    "RewindRecord",
    "Role",
    "RowVersion",
    "SessionChangeRecord",
    "SessionCursor",
    "SessionFilter",
    "SessionKey",
    "SessionOrder",
    "SessionPolicy",
    "SessionRecord",
    "SessionRepository",
    "SessionStateError",
    "SessionStatus",
    "SharedStatePatchRecord",
    "SharedStateRecord",
    "SharedStateRepository",
    "StoreError",
    "StoredMessage",
    "Subscription",
    "SubscriptionClosed",
    "SubscriptionOverflow",
    "SweepResult",
    "TimeRange",
    "TokenUsage",
    "ToolCallRecord",
    "UnavailableError",
    "WindowMessage",
    "context_window",
    "fork_session",
    "newest",
    "sweep",
    "upgrade",
]
