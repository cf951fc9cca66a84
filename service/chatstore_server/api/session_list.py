"""ListSessions: filters, AIP-132 ordering, keyset page tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

import grpc

from chatstore.v1 import session_pb2, session_service_pb2
from chatstore_server.api import convert, pagination
from chatstore_server.api.limits import Limits
from chatstore_server.api.session_cache import RenderedSessions
from chatstore_server.api.validation import Checker, check_labels, time_range
from chatstore_server.store import (
    Inclusion,
    SessionCursor,
    SessionFilter,
    SessionOrder,
    SessionRepository,
)
from chatstore_server.store.schema import (
    ACCOUNT_ID_MAX_CHARS,
    AGENT_ID_MAX_CHARS,
    CHANNEL_MAX_CHARS,
    PEER_ID_MAX_CHARS,
)
from chatstore_server.store.session_list import OrderField

Context = grpc.aio.ServicerContext[Any, Any]

MAX_LABEL_FILTERS = 16
_ORDER_FIELDS: tuple[OrderField, ...] = get_args(OrderField)
_INCLUSIONS = {
    session_service_pb2.INCLUSION_UNSPECIFIED: Inclusion.EXCLUDE,
    session_service_pb2.INCLUSION_EXCLUDE: Inclusion.EXCLUDE,
    session_service_pb2.INCLUSION_INCLUDE: Inclusion.INCLUDE,
    session_service_pb2.INCLUSION_ONLY: Inclusion.ONLY,
}


def _inclusion(check: Checker, value: int, field: str) -> Inclusion:
    if value not in _INCLUSIONS:
        check.fail(field, "unknown Inclusion value")
        return Inclusion.EXCLUDE
    return _INCLUSIONS[value]  # type: ignore[index]


def _optional_text(check: Checker, value: str, field: str, max_chars: int) -> str | None:
    return check.text(value, field, max_chars=max_chars) or None


def _filter(check: Checker, request: session_service_pb2.ListSessionsRequest) -> SessionFilter:
    statuses = set()
    for index, status in enumerate(request.statuses):
        if status not in convert.STATUS_FROM_PROTO:
            check.fail(f"statuses[{index}]", "must be a known SessionStatus other than UNSPECIFIED")
        else:
            statuses.add(convert.STATUS_FROM_PROTO[status])
    retention = None
    if request.retention != session_pb2.RETENTION_UNSPECIFIED:
        if request.retention not in convert.RETENTION_FROM_PROTO:
            check.fail("retention", "unknown retention")
        else:
            retention = convert.RETENTION_FROM_PROTO[request.retention]
    labels = dict(request.labels)
    check_labels(check, labels, "labels", max_pairs=MAX_LABEL_FILTERS)
    return SessionFilter(
        agent_id=_optional_text(check, request.agent_id, "agent_id", AGENT_ID_MAX_CHARS),
        channel=_optional_text(check, request.channel, "channel", CHANNEL_MAX_CHARS),
        account_id=_optional_text(check, request.account_id, "account_id", ACCOUNT_ID_MAX_CHARS),
        peer_id=_optional_text(check, request.peer_id, "peer_id", PEER_ID_MAX_CHARS),
        statuses=frozenset(statuses),
        retention=retention,
        labels=labels,
        pinned_only=request.pinned_only,
        archived=_inclusion(check, request.archived, "archived"),
        deleted=_inclusion(check, request.deleted, "deleted"),
        create_time=time_range(check, request, "create_time_range"),
        update_time=time_range(check, request, "update_time_range"),
    )


def _order(check: Checker, order_by: str, pinned_first: bool) -> SessionOrder:
    """AIP-132 `order_by`: one field, optionally ` desc` (or ` asc`). Empty: update_time desc."""
    parts = order_by.split()
    if not parts:
        return SessionOrder(pinned_first=pinned_first)
    field = parts[0]
    direction = parts[1].lower() if len(parts) == 2 else "asc"
    if len(parts) > 2 or field not in _ORDER_FIELDS or direction not in ("asc", "desc"):
        check.fail(
            "order_by",
            'must be "update_time", "create_time" or "title", optionally followed by " desc"',
        )
        return SessionOrder()
    order_field: OrderField = field
    return SessionOrder(order_field, descending=direction == "desc", pinned_first=pinned_first)


def _binding(tenant_id: str, where: SessionFilter, order: SessionOrder) -> list[Any]:
    """Everything a page token is bound to, in a canonical JSON-able form."""
    return [
        "ListSessions",
        tenant_id,
        [where.agent_id, where.channel, where.account_id, where.peer_id],
        sorted(where.statuses),
        where.retention,
        sorted(where.labels.items()),
        [where.pinned_only, where.archived, where.deleted],
        [where.create_time.start, where.create_time.end],
        [where.update_time.start, where.update_time.end],
        [order.field, order.descending, order.pinned_first],
    ]


def _cursor_from(position: list[Any], order: SessionOrder) -> SessionCursor:
    try:
        pinned, value, session_id = position
        if not isinstance(pinned, bool) or not isinstance(value, str):
            raise TypeError("bad position")
        key: datetime | str = value if order.field == "title" else datetime.fromisoformat(value)
        if not isinstance(session_id, str):
            raise TypeError("bad position")
        return SessionCursor(pinned, key, session_id)
    except (TypeError, ValueError) as error:
        raise pagination.bad_position() from error


def _position(cursor: SessionCursor) -> list[Any]:
    value = cursor.value if isinstance(cursor.value, str) else cursor.value.isoformat()
    return [cursor.pinned, value, str(cursor.id)]


class SessionListMethods:
    """ListSessions."""

    _sessions: SessionRepository
    _limits: Limits
    _rendered: RenderedSessions

    async def ListSessions(  # noqa: N802 (gRPC method name)
        self, request: session_service_pb2.ListSessionsRequest, context: Context
    ) -> session_service_pb2.ListSessionsResponse:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        where = _filter(check, request)
        order = _order(check, request.order_by, request.pinned_first)
        limit = check.page_size(
            request.page_size,
            default=self._limits.default_session_page_size,
            maximum=self._limits.max_page_size,
        )
        check.done()
        binding = _binding(tenant_id, where, order)
        after = None
        if request.page_token:
            after = _cursor_from(pagination.decode(request.page_token, binding), order)
        page = await self._sessions.list(
            tenant_id, limit=limit, where=where, order=order, after=after
        )
        items = [self._rendered.render(tenant_id, r) for r in page.items]
        cursor = page.next_cursor
        kept = pagination.fitting(items, self._limits.max_response_bytes)
        if kept < len(items):
            items, cursor = items[:kept], SessionCursor.after(page.items[kept - 1], order)
        return session_service_pb2.ListSessionsResponse(
            sessions=items,
            next_page_token=pagination.encode(binding, _position(cursor)) if cursor else "",
        )
