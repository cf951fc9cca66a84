"""Validation of a request's Session fields, shared by the methods that take them."""

from __future__ import annotations

import re
from typing import Any

from chatstore.v1 import session_pb2, session_service_pb2, shared_state_pb2
from chatstore_server.api import convert
from chatstore_server.api.limits import Limits
from chatstore_server.api.validation import (
    MAX_LABELS,
    NOT_JSON,
    Checker,
    check_etag,
    check_labels,
    json_metadata,
)
from chatstore_server.store import (
    MUTABLE_FIELDS,
    AccessMode,
    NewSession,
    Retention,
    SessionChangeRecord,
    SessionKey,
    SharedStatePatchRecord,
)
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
    check: Checker,
    session: session_pb2.Session,
    fields: frozenset[str],
    limits: Limits,
    prefix: str = "session",
) -> dict[str, Any]:
    """Validate the named mutable fields of `session` (at `prefix` in the request);
    return them as store values."""
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
                getattr(session, name), f"{prefix}.{name}", max_chars=max_chars
            )
    if "metadata" in fields:
        parsed = json_metadata(check, session, prefix, limits)
        if session.metadata_json:
            values["metadata"] = parsed or None
        else:
            values["metadata"] = convert.struct_to_dict(session.metadata) or None
    if "labels" in fields:
        labels = dict(session.labels)
        check_labels(check, labels, f"{prefix}.labels", max_pairs=MAX_LABELS)
        values["labels"] = labels
    if "retention" in fields:
        if session.retention == session_pb2.RETENTION_UNSPECIFIED:
            values["retention"] = Retention.SAVED
        elif session.retention not in convert.RETENTION_FROM_PROTO:
            check.fail(f"{prefix}.retention", "unknown retention")
        else:
            values["retention"] = convert.RETENTION_FROM_PROTO[session.retention]
    if "access_mode" in fields:
        if session.access_mode == session_pb2.ACCESS_MODE_UNSPECIFIED:
            values["access_mode"] = AccessMode.READ_WRITE
        elif session.access_mode not in convert.ACCESS_MODE_FROM_PROTO:
            check.fail(f"{prefix}.access_mode", "unknown access mode")
        else:
            values["access_mode"] = convert.ACCESS_MODE_FROM_PROTO[session.access_mode]
    if "token_usage" in fields:
        usage = session.token_usage
        for name in ("input_tokens", "output_tokens", "total_tokens"):
            if getattr(usage, name) < 0:
                check.fail(f"{prefix}.token_usage.{name}", "must not be negative")
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
    populated = frozenset(
        name
        for name in MUTABLE_FIELDS
        if (
            session.HasField(name)  # type: ignore[arg-type]
            if name in ("metadata", "token_usage")
            else bool(getattr(session, name))
        )
    )
    return populated | {"metadata"} if session.metadata_json else populated


def mask_fields(
    check: Checker, request: session_service_pb2.UpdateSessionRequest
) -> frozenset[str]:
    """The fields an UpdateSession changes, from its update_mask (AIP-134)."""
    paths = list(request.update_mask.paths)
    if not paths:
        return _populated_fields(request.session)
    return _named_fields(check, paths, "update_mask")


def _named_fields(check: Checker, paths: list[str], field: str) -> frozenset[str]:
    """The mutable fields `paths` (an update mask at `field`) names; "*" is all of
    them, and `metadata_json` names `metadata`."""
    if "*" in paths:
        if len(paths) > 1:
            check.fail(field, '"*" must be the only path')
        return MUTABLE_FIELDS
    named = set()
    for index, path in enumerate(paths):
        where = f"{field}.paths[{index}]"
        if path == "metadata_json":
            path = "metadata"
        if path not in _SESSION_FIELDS:
            check.fail(where, f'"{path}" is not a field of Session')
        elif path in _IMMUTABLE_FIELDS:
            check.fail(where, f'"{path}" cannot be changed after creation')
        elif path not in MUTABLE_FIELDS:
            check.fail(where, f'"{path}" is output only')
        else:
            named.add(path)
    return frozenset(named)


MAX_SHARED_STATE_PATCHES = 16
_APP = r"[^/\x00-\x1f\x7f]{1,128}"
SHARED_STATE_NAME = re.compile(rf"apps/{_APP}/state|apps/{_APP}/users/{_APP}/state")
"""A shared state's name: an app's, or a user's within an app."""


def patch_mode(check: Checker, mode: int, field: str) -> bool:
    """Whether a `PatchMode` is PATCH_MODE_REPLACE_KEYS (unspecified means MERGE)."""
    if mode not in _PATCH_MODES:
        check.fail(field, "must be PATCH_MODE_MERGE or PATCH_MODE_REPLACE_KEYS")
    return mode == shared_state_pb2.PATCH_MODE_REPLACE_KEYS


_PATCH_MODES = frozenset(shared_state_pb2.PatchMode.values())


def shared_state_patch(
    check: Checker, patch: shared_state_pb2.SharedStatePatch, field: str
) -> SharedStatePatchRecord | None:
    """Validate a shared state patch at `field`; None if it is wrong."""
    if SHARED_STATE_NAME.fullmatch(patch.name) is None:
        check.fail(
            f"{field}.name",
            'must be "apps/{app}/state" or "apps/{app}/users/{user}/state"'
            " ({app}, {user}: 1 to 128 characters, no / or control characters)",
        )
    parsed = check.json_text(patch.patch_json, f"{field}.patch_json", object_only=True)
    revision = check_etag(check, patch.etag, f"{field}.etag")
    if parsed is NOT_JSON:
        return None
    replace_keys = patch_mode(check, patch.mode, f"{field}.mode")
    return SharedStatePatchRecord(patch.name, parsed, revision, replace_keys)


def session_change(
    check: Checker, change: session_service_pb2.SessionChange, limits: Limits
) -> SessionChangeRecord:
    """Validate what an append changes besides its rows (`session_change`)."""
    field = "session_change"
    named = (
        _named_fields(check, list(change.update_mask.paths), f"{field}.update_mask")
        if change.update_mask.paths
        else frozenset()
    )
    fields = session_values(check, change.session, named, limits, f"{field}.session")
    patch = None
    if change.metadata_patch_json:
        where = f"{field}.metadata_patch_json"
        if "metadata" in named:
            check.fail(where, "not with metadata in update_mask: one or the other")
        if len(change.metadata_patch_json.encode()) > limits.max_metadata_bytes:
            check.fail(where, f"at most {limits.max_metadata_bytes:,} bytes")
        parsed = check.json_text(change.metadata_patch_json, where, object_only=True)
        patch = None if parsed is NOT_JSON else parsed
    if len(change.shared_state_patches) > MAX_SHARED_STATE_PATCHES:
        check.fail(f"{field}.shared_state_patches", f"at most {MAX_SHARED_STATE_PATCHES} patches")
    patches = [
        shared_state_patch(check, p, f"{field}.shared_state_patches[{i}]")
        for i, p in enumerate(change.shared_state_patches)
    ]
    names = [p.name for p in change.shared_state_patches]
    if len(names) != len(set(names)):
        check.fail(f"{field}.shared_state_patches", "each state at most once per change")
    return SessionChangeRecord(
        fields=fields,
        metadata_patch=patch,
        metadata_replace_keys=patch_mode(
            check, change.metadata_patch_mode, f"{field}.metadata_patch_mode"
        ),
        shared_state_patches=tuple(p for p in patches if p is not None),
    )
