"""SessionService methods on a session's run log: AppendEvents, ListEvents."""

from __future__ import annotations

from typing import Any

import grpc

from chatstore.v1 import session_service_pb2
from chatstore_server.api import convert, pagination, session_fields
from chatstore_server.api.limits import Limits
from chatstore_server.api.messages import check_batch_size, fingerprint, request_id
from chatstore_server.api.session_cache import RenderedSessions
from chatstore_server.api.validation import NOT_JSON, Checker
from chatstore_server.store import ABSENT, EventRepository, NewEvent, Precondition

Context = grpc.aio.ServicerContext[Any, Any]

_CUSTOM_TYPE_MAX_CHARS = 128


class EventMethods:
    """AppendEvents, ListEvents."""

    _events: EventRepository
    _limits: Limits
    _rendered: RenderedSessions

    async def AppendEvents(  # noqa: N802 (gRPC method name)
        self, request: session_service_pb2.AppendEventsRequest, context: Context
    ) -> session_service_pb2.AppendEventsResponse:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        size = sum(e.ByteSize() for e in request.events)
        check_batch_size(check, "events", len(request.events), size, self._limits)
        batch: list[NewEvent] = []
        for index, event in enumerate(request.events):
            field = f"events[{index}]"
            kind = event.WhichOneof("payload")
            if kind is None:
                check.fail(f"{field}.payload", "set exactly one payload")
                continue
            custom_data: Any = ABSENT
            if kind == "custom":
                check.text(
                    event.custom.type, f"{field}.custom.type", max_chars=_CUSTOM_TYPE_MAX_CHARS
                )
                if event.custom.data_json:
                    where = f"{field}.custom.data_json"
                    if event.custom.HasField("data"):
                        check.fail(where, "give data or data_json, not both")
                    custom_data = check.json_text(event.custom.data_json, where)
            create_time = (
                check.timestamp(event.create_time, f"{field}.create_time")
                if event.HasField("create_time")
                else None
            )
            if custom_data is not NOT_JSON:
                batch.append(
                    convert.new_event(event, create_time=create_time, custom_data=custom_data)
                )
        if request.HasField("expected_last_event_seq") and request.expected_last_event_seq < 0:
            check.fail("expected_last_event_seq", "must not be negative")
        dedupe = request_id(check, request.request_id)
        changing = request.HasField("session_change")
        change = session_fields.session_change(check, request.session_change, self._limits)
        check.done()
        identity = [*request.events, request.session_change] if changing else request.events
        session, stored, states = await self._events.append(
            tenant_id,
            session_id,
            batch,
            precondition=Precondition(
                expected_last_seq=request.expected_last_event_seq
                if request.HasField("expected_last_event_seq")
                else None
            ),
            request_id=dedupe,
            fingerprint=fingerprint(identity) if dedupe else "",
            change=change if changing else None,
        )
        return session_service_pb2.AppendEventsResponse(
            events=[convert.event_to_proto(e) for e in stored],
            session=self._rendered.render(tenant_id, session),
            shared_states=[convert.shared_state_to_proto(s) for s in states] or None,
        )

    async def ListEvents(  # noqa: N802
        self, request: session_service_pb2.ListEventsRequest, context: Context
    ) -> session_service_pb2.ListEventsResponse:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        session_id = check.session_id(request.session_id)
        limit = check.page_size(
            request.page_size,
            default=self._limits.default_message_page_size,
            maximum=self._limits.max_page_size,
        )
        if request.after_seq < 0:
            check.fail("after_seq", "must not be negative")
        check.done()
        binding = ["ListEvents", tenant_id, session_id, request.after_seq]
        from_token = pagination.decode_seq(request.page_token, binding)
        after_seq = request.after_seq if from_token is None else from_token
        page = await self._events.list(tenant_id, session_id, limit=limit, after_seq=after_seq)
        items = [convert.event_to_proto(e) for e in page.items]
        token = pagination.seq_page(
            items, page.next_cursor, binding, self._limits.max_response_bytes
        )
        return session_service_pb2.ListEventsResponse(events=items, next_page_token=token)
