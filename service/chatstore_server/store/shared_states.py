"""Shared states: JSON objects that a tenant's sessions share (an app's state, a user's
state within an app: Google ADK's `app:` and `user:` keys), changed by JSON merge
patches (RFC 7386), alone or in an append's transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from chatstore_server.store.connection import StoreConnection
from chatstore_server.store.database import Database
from chatstore_server.store.errors import ConflictError, InvalidReferenceError
from chatstore_server.store.records import SharedStatePatchRecord, SharedStateRecord
from chatstore_server.store.schema import shared_states
from chatstore_server.store.sessions import utc_now

_s = shared_states.c


def merge_patch(target: Any, patch: Any) -> Any:
    """`target` after the JSON merge patch `patch` (RFC 7386): objects merge key by key,
    recursively; a key patched to null is removed; anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def patched(target: Any, patch: dict[str, Any], *, replace_keys: bool) -> dict[str, Any]:
    """The object `target` after `patch`: a JSON merge patch, or with `replace_keys` a
    dict update (each top-level key's value replaced whole, null kept as null)."""
    if replace_keys:
        return {**(target if isinstance(target, dict) else {}), **patch}
    merged: dict[str, Any] = merge_patch(target, patch)
    return merged


def json_size(value: Any) -> int:
    """UTF-8 bytes of a JSON value's compact text: what size limits on JSON count."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


class SharedStateRepository:
    """A tenant's shared states, by name."""

    def __init__(
        self,
        database: Database,
        clock: Callable[[], datetime] = utc_now,
        max_bytes: int = 65_536,
    ) -> None:
        self._db = database
        self._clock = clock
        self._max_bytes = max_bytes

    async def get(self, tenant_id: str, name: str) -> SharedStateRecord:
        """The state; empty (revision 0) when never written.

        Raises:
            UnavailableError: The database cannot be reached.
        """
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(_s.data, _s.revision, _s.update_time).where(
                        _s.tenant_id == tenant_id, _s.name == name
                    )
                )
            ).first()
        if row is None:
            return SharedStateRecord(name, {}, 0, None)
        return SharedStateRecord(name, row.data, row.revision, row.update_time)

    async def get_many(self, tenant_id: str, names: Sequence[str]) -> list[SharedStateRecord]:
        """The states named, in order (empty ones for names never written).

        Raises:
            UnavailableError: The database cannot be reached.
        """
        return [await self.get(tenant_id, name) for name in names]

    async def update(
        self, tenant_id: str, patch: SharedStatePatchRecord, field: str = "patch"
    ) -> SharedStateRecord:
        """Apply `patch` in a transaction of its own.

        Raises:
            ConflictError: `patch.revision` is given and stale.
            InvalidReferenceError: The state would outgrow the limit (`field`'s fault).
            UnavailableError: The database cannot be reached.
        """
        async with self._db.write() as conn:
            [state] = await apply_patches(
                conn, tenant_id, [patch], self._clock(), self._max_bytes, [field]
            )
        return state


async def apply_patches(
    conn: StoreConnection,
    tenant_id: str,
    patches: Sequence[SharedStatePatchRecord],
    now: datetime,
    max_bytes: int,
    fields: Sequence[str],
) -> list[SharedStateRecord]:
    """Apply `patches` in the caller's transaction; the states after, in order.

    Each state's row is made if missing and locked (PostgreSQL: `FOR UPDATE`; SQLite's
    writer holds the database), checked against the patch's revision, merged and
    written, bumping its revision. `fields[i]` names patch i in errors.

    Raises:
        ConflictError: A patch's revision is stale (the caller's transaction rolls back).
        InvalidReferenceError: A state would be larger than `max_bytes` of JSON.
    """
    insert = (sqlite if conn.dialect.name == "sqlite" else postgresql).insert(shared_states)
    after: dict[int, SharedStateRecord] = {}
    # In name order: two transactions that patch the same states lock them in the
    # same order, and cannot deadlock.
    for index in sorted(range(len(patches)), key=lambda i: patches[i].name):
        patch, field = patches[index], fields[index]
        await conn.execute(
            insert.values(
                tenant_id=tenant_id,
                name=patch.name,
                data={},
                revision=0,
                create_time=now,
                update_time=now,
            ).on_conflict_do_nothing()
        )
        row = (
            await conn.execute(
                select(_s.data, _s.revision)
                .where(_s.tenant_id == tenant_id, _s.name == patch.name)
                .with_for_update()
            )
        ).one()
        if patch.revision is not None and row.revision != patch.revision:
            raise ConflictError("shared_state", patch.name, "the etag does not match")
        data = patched(row.data, patch.patch, replace_keys=patch.replace_keys)
        if json_size(data) > max_bytes:
            raise InvalidReferenceError(
                field, f"the state would be over {max_bytes:,} bytes of JSON after the patch"
            )
        await conn.execute(
            update(shared_states)
            .where(_s.tenant_id == tenant_id, _s.name == patch.name)
            .values(data=data, revision=row.revision + 1, update_time=now)
        )
        after[index] = SharedStateRecord(patch.name, data, row.revision + 1, now)
    return [after[index] for index in range(len(patches))]
