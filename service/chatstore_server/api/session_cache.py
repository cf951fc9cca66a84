"""Rendered sessions: the API's Session for a session row, reused while the row's
version is unchanged.

Every write to a session row bumps its revision (the etag), and a session purged and
made again under the same id has a new create time, so the Session built from the row
at one version (`RowVersion`: revision and create time) is right for as long as the
row is at that version. Every Session the servicer builds from a row goes through
`render`, which keeps it here by id and gives it back for the same row at the same
version (a page of ListSessions whose rows have not changed is not converted again).

GetSession reads the row's version alone (two columns) when it holds the session, and
answers from here when that is the version it holds: reading every column of the row
and building the Session was most of its work. The database decides every time:
nothing is answered without that read, so each server process sees every other's
writes at once, and only a change that bumps no revision (an UPDATE by hand) could go
unseen. On the benchmark machine a hit cost GetSession about a fifth less work in the
server (docs/performance.md); a miss costs one more, two-column, read.
"""

from __future__ import annotations

from typing import NamedTuple

from chatstore.v1 import session_pb2
from chatstore_server.api.convert import session_to_proto
from chatstore_server.store import RowVersion, SessionRecord

MAX_ENTRIES = 4_096
"""Sessions held at most; the oldest entry goes first."""
MAX_SESSION_BYTES = 8_192
"""Larger Sessions (long metadata, many labels) are not held: the cache stays within
`MAX_ENTRIES` * `MAX_SESSION_BYTES` (32 MiB) of serialized Sessions."""


class _Entry(NamedTuple):
    version: RowVersion
    session: session_pb2.Session


class RenderedSessions:
    """Sessions by (tenant, id) (ids are unique within a tenant only), each with the row
    version it was built from.

    Owned by one event loop: not thread-safe. The Sessions are shared between callers
    and must not be changed after `put`.
    """

    def __init__(
        self, max_entries: int = MAX_ENTRIES, max_session_bytes: int = MAX_SESSION_BYTES
    ) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._max_entries = max_entries
        self._max_session_bytes = max_session_bytes

    def __len__(self) -> int:
        return len(self._entries)

    def version(self, tenant_id: str, session_id: str) -> RowVersion | None:
        """The row version of the Session held for this tenant's session, or None."""
        entry = self._entries.get((tenant_id, session_id))
        return None if entry is None else entry.version

    def get(
        self, tenant_id: str, session_id: str, version: RowVersion
    ) -> session_pb2.Session | None:
        """The Session held for this tenant's session if it was built at `version`."""
        entry = self._entries.get((tenant_id, session_id))
        if entry is None or entry.version != version:
            return None
        return entry.session

    def render(self, tenant_id: str, record: SessionRecord) -> session_pb2.Session:
        """The Session of `record` (a whole row, in `tenant_id`): the one held for the
        same row at the same version, else built by `convert.session_to_proto`, held
        and returned. Not for a purged session's last record (nothing will ask again)."""
        version = RowVersion(record.revision, record.create_time)
        held = self.get(tenant_id, record.id, version)
        if held is not None:
            return held
        session = session_to_proto(record)
        self.put(tenant_id, record.id, version, session)
        return session

    def put(
        self,
        tenant_id: str,
        session_id: str,
        version: RowVersion,
        session: session_pb2.Session,
    ) -> None:
        """Hold `session`, built from the row at `version` (not if it is too large)."""
        entries = self._entries
        key = (tenant_id, session_id)
        entries.pop(key, None)
        if session.ByteSize() > self._max_session_bytes:
            return
        if len(entries) >= self._max_entries:
            del entries[next(iter(entries))]
        entries[key] = _Entry(version, session)
