"""ListSessions as SQL: filters, order, and the keyset condition that makes every page
one index range scan (no OFFSET)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, String, Uuid, and_, case, literal, or_, select, tuple_

from chatstore_server.store.records import Retention, SessionRecord, SessionStatus
from chatstore_server.store.schema import session_labels, sessions
from chatstore_server.store.types import UTCDateTime

OrderField = Literal["update_time", "create_time", "title"]


class Inclusion(enum.StrEnum):
    """Whether a list includes sessions in some state."""

    EXCLUDE = "EXCLUDE"
    INCLUDE = "INCLUDE"
    ONLY = "ONLY"


@dataclass(frozen=True, slots=True)
class TimeRange:
    """[start, end); None is unbounded."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """Which sessions to list; every given condition must hold. Empty matches all."""

    agent_id: str | None = None
    channel: str | None = None
    account_id: str | None = None
    peer_id: str | None = None
    statuses: frozenset[SessionStatus] = frozenset()
    retention: Retention | None = None
    labels: dict[str, str] = field(default_factory=dict)
    pinned_only: bool = False
    archived: Inclusion = Inclusion.EXCLUDE
    deleted: Inclusion = Inclusion.EXCLUDE
    create_time: TimeRange = TimeRange()
    update_time: TimeRange = TimeRange()


@dataclass(frozen=True, slots=True)
class SessionOrder:
    """The list order: one column, ties broken by id in the same direction."""

    field: OrderField = "update_time"
    descending: bool = True
    pinned_first: bool = False


@dataclass(frozen=True, slots=True)
class SessionCursor:
    """A list position: just after the session with these sort keys."""

    pinned: bool
    value: datetime | str
    id: uuid.UUID

    @classmethod
    def after(cls, record: SessionRecord, order: SessionOrder) -> SessionCursor:
        """The position just after `record` in `order`."""
        value: datetime | str = getattr(record, order.field)
        return cls(record.pin_time is not None, value, record.id)


def _inclusion(column: ColumnElement[Any], inclusion: Inclusion) -> ColumnElement[bool] | None:
    if inclusion is Inclusion.EXCLUDE:
        return column.is_(None)
    if inclusion is Inclusion.ONLY:
        return column.is_not(None)
    return None


def _range(column: ColumnElement[Any], bounds: TimeRange) -> list[ColumnElement[bool]]:
    conditions = []
    if bounds.start is not None:
        conditions.append(column >= bounds.start)
    if bounds.end is not None:
        conditions.append(column < bounds.end)
    return conditions


def _conditions(tenant_id: str, where: SessionFilter) -> list[ColumnElement[bool]]:
    c = sessions.c
    conditions: list[ColumnElement[bool] | None] = [c.tenant_id == tenant_id]
    for column, value in (
        (c.agent_id, where.agent_id),
        (c.key_channel, where.channel),
        (c.key_account_id, where.account_id),
        (c.key_peer_id, where.peer_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if where.statuses:
        conditions.append(c.status.in_(sorted(s.value for s in where.statuses)))
    if where.retention is not None:
        conditions.append(c.retention == where.retention.value)
    for key, value in sorted(where.labels.items()):
        conditions.append(
            c.id.in_(
                select(session_labels.c.session_id).where(
                    session_labels.c.tenant_id == tenant_id,
                    session_labels.c.key == key,
                    session_labels.c.value == value,
                )
            )
        )
    if where.pinned_only:
        conditions.append(c.pin_time.is_not(None))
    conditions.append(_inclusion(c.archive_time, where.archived))
    conditions.append(_inclusion(c.delete_time, where.deleted))
    conditions += _range(c.create_time, where.create_time)
    conditions += _range(c.update_time, where.update_time)
    return [condition for condition in conditions if condition is not None]


def list_query(
    tenant_id: str,
    where: SessionFilter,
    order: SessionOrder,
    after: SessionCursor | None,
    limit: int,
) -> Select[Any]:
    """The SELECT for one page: matching rows after `after`, in `order`, at most `limit`."""
    column = sessions.c[order.field]
    key = tuple_(column, sessions.c.id)

    def direction(expression: ColumnElement[Any]) -> ColumnElement[Any]:
        return expression.desc() if order.descending else expression.asc()

    # Pinned sessions (group 0) before the others (group 1), when asked.
    group = case((sessions.c.pin_time.is_(None), 1), else_=0)
    query = select(sessions).where(*_conditions(tenant_id, where))
    if after is not None:
        value_type = String() if order.field == "title" else UTCDateTime()
        position = tuple_(literal(after.value, value_type), literal(after.id, Uuid()))
        beyond = key < position if order.descending else key > position
        if order.pinned_first:
            after_group = 0 if after.pinned else 1
            beyond = or_(group > after_group, and_(group == after_group, beyond))
        query = query.where(beyond)
    ordering = [direction(column), direction(sessions.c.id)]
    if order.pinned_first:
        ordering.insert(0, group.asc())
    return query.order_by(*ordering).limit(limit)
