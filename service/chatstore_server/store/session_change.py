"""What an append changes besides its rows, in its transaction: session fields, a merge
patch of the session's metadata, shared states (Google ADK's event with its state
delta: one call, one commit)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update

from chatstore_server.store.connection import StoreConnection
from chatstore_server.store.errors import InvalidReferenceError, translate_errors
from chatstore_server.store.records import (
    SessionChangeRecord,
    SessionPolicy,
    SessionRecord,
    SharedStateRecord,
)
from chatstore_server.store.rows import session_record
from chatstore_server.store.schema import sessions
from chatstore_server.store.scope import in_tenant
from chatstore_server.store.sessions import field_values, write_labels
from chatstore_server.store.shared_states import apply_patches, json_size, patched


async def apply_change(
    conn: StoreConnection,
    session: SessionRecord,
    change: SessionChangeRecord,
    now: datetime,
    policy: SessionPolicy,
    max_metadata_bytes: int,
) -> tuple[SessionRecord, list[SharedStateRecord]]:
    """Apply `change` to `session` (the row as the append left it, locked in the
    caller's transaction) and to shared states; the session and states after.

    The session's revision is not bumped again: the append already did, and the two
    are one write.

    Raises:
        InvalidReferenceError: The metadata or a state would outgrow its limit.
        ConflictError: A shared state's revision is stale.
        AlreadyExistsError: A new `agent_id` makes the key collide with a live session.
    """
    values = field_values(change.fields, now, policy)
    if change.metadata_patch is not None:
        metadata = patched(
            session.metadata, change.metadata_patch, replace_keys=change.metadata_replace_keys
        )
        if json_size(metadata) > max_metadata_bytes:
            raise InvalidReferenceError(
                "session_change.metadata_patch_json",
                f"the metadata would be over {max_metadata_bytes:,} bytes after the patch",
            )
        values["metadata"] = metadata or None
    labels = values.get("labels")
    if labels is not None:
        values["labels"] = labels or None
    if values:
        with translate_errors("session_key", session.id):
            row = (
                await conn.execute(
                    update(sessions)
                    .where(*in_tenant(session.tenant_id, session.id))
                    .values(**values)
                    .returning(*sessions.c)
                )
            ).one()
        session = session_record(row)
        if labels is not None:
            await write_labels(conn, session.tenant_id, session.id, labels)
    states: Sequence[SharedStateRecord] = []
    if change.shared_state_patches:
        fields = [
            f"session_change.shared_state_patches[{i}].patch_json"
            for i in range(len(change.shared_state_patches))
        ]
        states = await apply_patches(
            conn,
            session.tenant_id,
            change.shared_state_patches,
            now,
            max_metadata_bytes,
            fields,
        )
    return session, list(states)
