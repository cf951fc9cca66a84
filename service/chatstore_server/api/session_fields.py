"""Validation of a request's Session fields, shared by the methods that take them."""

from __future__ import annotations

from typing import Any

from chatstore.v1 import session_pb2, session_service_pb2
from chatstore_server.api import convert
from chatstore_server.api.limits import Limits
from chatstore_server.api.validation import MAX_LABELS, Checker, check_labels
from chatstore_server.store import MUTABLE_FIELDS, AccessMode, NewSession, Retention, SessionKey
from chatstore_server.store.schema import (
    ACCOUNT_ID_MAX_CHARS,
    AGENT_ID_MAX_CHARS,
    CHANNEL_MAX_CHARS,
    MODEL_MAX_CHARS,
    PEER_ID_MAX_CHARS,
    PERSONA_ID_MAX_CHARS,
    TITLE_MAX_CHARS,
)

_SESSION_FIELDS = frozenset(session_pb2.Session.DESCRIPTOR.fields_by_name)
_IMMUTABLE_FIELDS = frozenset({"key"})


def session_values(
    check: Checker, session: session_pb2.Session, fields: frozenset[str], limits: Limits
) -> dict[str, Any]:
    """Validate the named mutable fields of `session`; return them as store values."""
    values: dict[str, Any] = {}
    for name, max_chars in (
        ("agent_id", AGENT_ID_MAX_CHARS),
        ("title", TITLE_MAX_CHARS),
        ("model", MODEL_MAX_CHARS),
        ("persona_id", PERSONA_ID_MAX_CHARS),
        ("recap", limits.max_content_chars),
    ):
        if name in fields:
            values[name] = check.text(
                getattr(session, name), f"session.{name}", max_chars=max_chars
            )
    if "metadata" in fields:
        if session.metadata.ByteSize() > limits.max_metadata_bytes:
            check.fail("session.metadata", f"at most {limits.max_metadata_bytes:,} bytes")
        values["metadata"] = convert.struct_to_dict(session.metadata) or None
    if "labels" in fields:
        labels = dict(session.labels)
        check_labels(check, labels, "session.labels", max_pairs=MAX_LABELS)
        values["labels"] = labels
    if "retention" in fields:
        if session.retention == session_pb2.RETENTION_UNSPECIFIED:
            values["retention"] = Retention.SAVED
        elif session.retention not in convert.RETENTION_FROM_PROTO:
            check.fail("session.retention", "unknown retention")
        else:
            values["retention"] = convert.RETENTION_FROM_PROTO[session.retention]
    if "access_mode" in fields:
        if session.access_mode == session_pb2.ACCESS_MODE_UNSPECIFIED:
            values["access_mode"] = AccessMode.READ_WRITE
        elif session.access_mode not in convert.ACCESS_MODE_FROM_PROTO:
            check.fail("session.access_mode", "unknown access mode")
        else:
            values["access_mode"] = convert.ACCESS_MODE_FROM_PROTO[session.access_mode]
    if "token_usage" in fields:
        usage = session.token_usage
        for name in ("input_tokens", "output_tokens", "total_tokens"):
            if getattr(usage, name) < 0:
                check.fail(f"session.token_usage.{name}", "must not be negative")
        values["token_usage"] = convert.token_usage_from_proto(usage)
    return values


def key(check: Checker, value: session_pb2.SessionKey, field: str) -> SessionKey | None:
    """Validate a routing key: every part is required. None if it is wrong."""
    check.text(value.channel, f"{field}.channel", max_chars=CHANNEL_MAX_CHARS, required=True)
    check.text(
        value.account_id, f"{field}.account_id", max_chars=ACCOUNT_ID_MAX_CHARS, required=True
    )
    check.text(value.peer_id, f"{field}.peer_id", max_chars=PEER_ID_MAX_CHARS, required=True)
    if value.peer_kind not in convert.PEER_KIND_FROM_PROTO:
        check.fail(f"{field}.peer_kind", "must be PEER_KIND_DM or PEER_KIND_GROUP")
        return None
    return convert.key_from_proto(value)


def new_session(
    check: Checker, session: session_pb2.Session, limits: Limits, *, with_key: bool = True
) -> NewSession:
    """Validate the fields of a session to create."""
    values = session_values(check, session, MUTABLE_FIELDS, limits)
    if with_key and session.HasField("key"):
        values["key"] = key(check, session.key, "session.key")
    if not session.HasField("token_usage"):
        values.pop("token_usage")
    return NewSession(**values)


def _populated_fields(session: session_pb2.Session) -> frozenset[str]:
    """The mutable fields that have a non-empty value: AIP-134's implied update mask."""
    return frozenset(
        name
        for name in MUTABLE_FIELDS
        if (
            session.HasField(name)  # type: ignore[arg-type]
            if name in ("metadata", "token_usage")
            else bool(getattr(session, name))
        )
    )


def mask_fields(
    check: Checker, request: session_service_pb2.UpdateSessionRequest
) -> frozenset[str]:
    """The fields an UpdateSession changes, from its update_mask (AIP-134)."""
    paths = list(request.update_mask.paths)
    if not paths:
        return _populated_fields(request.session)
    if "*" in paths:
        if len(paths) > 1:
            check.fail("update_mask", '"*" must be the only path')
        return MUTABLE_FIELDS
    for index, path in enumerate(paths):
        where = f"update_mask.paths[{index}]"
        if path not in _SESSION_FIELDS:
            check.fail(where, f'"{path}" is not a field of Session')
        elif path in _IMMUTABLE_FIELDS:
            check.fail(where, f'"{path}" cannot be changed after creation')
        elif path not in MUTABLE_FIELDS:
            check.fail(where, f'"{path}" is output only')
    return frozenset(paths) & MUTABLE_FIELDS
