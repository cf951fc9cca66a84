"""ListSessions as SQL: filters, order, and the keyset condition that makes every page
one index range scan (no OFFSET)."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    and_,
    bindparam,
    case,
    literal_column,
    or_,
    select,
    tuple_,
)

from chatstore_server.store.prepared import Prepared
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
    id: str

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


@dataclass(frozen=True, slots=True)
class _Shape:
    """What decides a listing's SQL text (values are bound): which filters are set, how
    many statuses and labels, the order, and whether a page starts after a cursor."""

    given: frozenset[str]
    """The set filters among `_EQUALS`, `_RANGES` and "retention"."""
    statuses: int
    labels: int
    pinned_only: bool
    archived: Inclusion
    deleted: Inclusion
    order: SessionOrder
    after: bool


# Filter name -> the column it must equal.
_EQUALS = {
    "agent_id": sessions.c.agent_id,
    "channel": sessions.c.key_channel,
    "account_id": sessions.c.key_account_id,
    "peer_id": sessions.c.key_peer_id,
}
# Bound value name -> (column, lower bound?), for the time ranges.
_RANGES = {
    "create_start": (sessions.c.create_time, True),
    "create_end": (sessions.c.create_time, False),
    "update_start": (sessions.c.update_time, True),
    "update_end": (sessions.c.update_time, False),
}


@functools.lru_cache(maxsize=512)  # shapes are few; label counts bound the rest
def _statement(shape: _Shape) -> Prepared:
    """The SELECT for one shape of listing, with bind parameters (built once: building
    and keying a statement cost more than running it); parameters from `list_query`."""
    c = sessions.c
    conditions: list[ColumnElement[bool] | None] = [c.tenant_id == bindparam("tenant_id")]
    conditions += [
        _EQUALS[name] == bindparam(name) for name in sorted(shape.given & _EQUALS.keys())
    ]
    if "agent_id" in shape.given:  # lets the planners use the agent's partial index
        conditions.append(c.agent_id != literal_column("''"))  # schema.HAS_AGENT
    if shape.statuses:
        conditions.append(c.status.in_([bindparam(f"status_{i}") for i in range(shape.statuses)]))
    if "retention" in shape.given:
        conditions.append(c.retention == bindparam("retention"))
    for i in range(shape.labels):
        conditions.append(
            c.id.in_(
                select(session_labels.c.session_id).where(
                    session_labels.c.tenant_id == bindparam("tenant_id"),
                    session_labels.c.key == bindparam(f"label_key_{i}"),
                    session_labels.c.value == bindparam(f"label_value_{i}"),
                )
            )
        )
    if shape.pinned_only:
        conditions.append(c.pin_time.is_not(None))
    conditions.append(_inclusion(c.archive_time, shape.archived))
    conditions.append(_inclusion(c.delete_time, shape.deleted))
    for name in sorted(shape.given & _RANGES.keys()):
        column, lower = _RANGES[name]
        conditions.append(column >= bindparam(name) if lower else column < bindparam(name))

    order = shape.order
    column = c[order.field]
    key = tuple_(column, c.id)

    def direction(expression: ColumnElement[Any]) -> ColumnElement[Any]:
        return expression.desc() if order.descending else expression.asc()

    # Pinned sessions (group 0) before the others (group 1), when asked.
    group = case((c.pin_time.is_(None), 1), else_=0)
    query = select(sessions).where(*(cond for cond in conditions if cond is not None))
    if shape.after:
        value_type = String() if order.field == "title" else UTCDateTime()
        position = tuple_(
            bindparam("after_value", type_=value_type), bindparam("after_id", type_=String())
        )
        beyond = key < position if order.descending else key > position
        if order.pinned_first:
            after_group = bindparam("after_group", type_=Integer())
            beyond = or_(group > after_group, and_(group == after_group, beyond))
        query = query.where(beyond)
    ordering = [direction(column), direction(c.id)]
    if order.pinned_first:
        ordering.insert(0, group.asc())
    return Prepared(query.order_by(*ordering).limit(bindparam("limit")))


def list_query(
    tenant_id: str,
    where: SessionFilter,
    order: SessionOrder,
    after: SessionCursor | None,
    limit: int,
) -> tuple[Prepared, dict[str, Any]]:
    """The SELECT for one page (matching rows after `after`, in `order`, at most
    `limit`) and its parameters."""
    params: dict[str, Any] = {"tenant_id": tenant_id, "limit": limit}
    for name in _EQUALS:
        if value := getattr(where, name):  # empty matches all
            params[name] = value
    if where.retention is not None:
        params["retention"] = where.retention.value
    for i, status in enumerate(sorted(s.value for s in where.statuses)):
        params[f"status_{i}"] = status
    for i, (label, value) in enumerate(sorted(where.labels.items())):
        params[f"label_key_{i}"], params[f"label_value_{i}"] = label, value
    for prefix, bounds in (("create", where.create_time), ("update", where.update_time)):
        if bounds.start is not None:
            params[f"{prefix}_start"] = bounds.start
        if bounds.end is not None:
            params[f"{prefix}_end"] = bounds.end
    if after is not None:
        params |= {"after_value": after.value, "after_id": after.id}
        params["after_group"] = 0 if after.pinned else 1
    shape = _Shape(
        given=frozenset(params.keys() & (_EQUALS.keys() | _RANGES.keys() | {"retention"})),
        statuses=len(where.statuses),
        labels=len(where.labels),
        pinned_only=where.pinned_only,
        archived=where.archived,
        deleted=where.deleted,
        order=order,
        after=after is not None,
    )
    return _statement(shape), params
