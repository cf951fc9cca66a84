"""The session store: async SQLAlchemy over SQLite (aiosqlite) or PostgreSQL (asyncpg).

Repositories return frozen records (`chatstore_server.store.records`), never ORM
objects, and raise only the errors of `chatstore_server.store.errors`. Nothing here
knows about gRPC or protobuf.
"""

from chatstore_server.store.database import Database
from chatstore_server.store.errors import (
    AlreadyExistsError,
    NotFoundError,
    StoreError,
    UnavailableError,
)
from chatstore_server.store.messages import MessageRepository
from chatstore_server.store.migrate import upgrade
from chatstore_server.store.records import (
    MessageRecord,
    NewMessage,
    Role,
    SessionRecord,
    ToolCallRecord,
)
from chatstore_server.store.sessions import SessionCursor, SessionRepository

__all__ = [
    "AlreadyExistsError",
    "Database",
    "MessageRecord",
    "MessageRepository",
    "NewMessage",
    "NotFoundError",
    "Role",
    "SessionCursor",
    "SessionRecord",
    "SessionRepository",
    "StoreError",
    "ToolCallRecord",
    "UnavailableError",
    "upgrade",
]
