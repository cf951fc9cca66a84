"""Opaque page tokens for keyset pagination (AIP-158).

A token holds the position after the last item of a page and a fingerprint of the
request it continues (method, tenant, filters). Reusing it with a different request
is INVALID_ARGUMENT, as is a token that was not issued by this server. Tokens carry
no secrets: the tenant always comes from the request, never from the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import MutableSequence, Sequence
from typing import Any

from chatstore_server.api.errors import FieldViolation, invalid_argument

_VERSION = 1
_FIELD = "page_token"


# What json.dumps(..., separators=(",", ":"), sort_keys=True, default=str) and
# json.dumps(..., separators=(",", ":")) give, with the encoders made once (json.dumps
# makes one per call, with these arguments): a page token is made for every page.
_CANONICAL = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str).encode
_COMPACT = json.JSONEncoder(separators=(",", ":")).encode


def _fingerprint(binding: Sequence[Any]) -> str:
    canonical = _CANONICAL(list(binding))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode(binding: Sequence[Any], position: Sequence[Any]) -> str:
    """A token for the page after `position`, valid only for requests matching `binding`.

    Args:
        binding: JSON-able values that identify the listing (method, tenant, filters).
        position: JSON-able keyset values of the last item returned.
    """
    body = {"v": _VERSION, "b": _fingerprint(binding), "p": list(position)}
    raw = _COMPACT(body).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(token: str, binding: Sequence[Any]) -> list[Any]:
    """The position in `token`.

    Raises:
        ApiError: INVALID_ARGUMENT if the token is malformed or was issued for a
            request that does not match `binding`.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        valid = (
            isinstance(body, dict)
            and body.get("v") == _VERSION
            and isinstance(body.get("p"), list)
            and isinstance(body.get("b"), str)
        )
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise invalid_argument([FieldViolation(_FIELD, "malformed page token")])
    if body["b"] != _fingerprint(binding):
        raise invalid_argument(
            [FieldViolation(_FIELD, "the token was issued for a request with other parameters")]
        )
    position: list[Any] = body["p"]
    return position


def bad_position() -> Exception:
    """The error for a token whose position does not have the expected shape."""
    return invalid_argument([FieldViolation(_FIELD, "malformed page token")])


# Room left in a response for everything that is not a list item (token, session...).
_RESPONSE_OVERHEAD_BYTES = 64 * 1024


def fitting(items: Sequence[Any], max_response_bytes: int, whole: Any = None) -> int:
    """How many of `items` (protobuf messages) fit in one response of at most
    `max_response_bytes`: a page stops short rather than fail (AIP-158 lets a page hold
    fewer items than asked). Always at least one, since a single item is bounded far
    below the limit by the content and metadata limits.

    `whole`, the response holding `items`, settles the common case (everything fits)
    with one size computation instead of one per item.
    """
    if whole is not None and fits(whole, max_response_bytes):
        return len(items)
    return _count_fitting([item.ByteSize() for item in items], max_response_bytes)


def _count_fitting(sizes: Sequence[int], max_response_bytes: int) -> int:
    """How many items of these encoded sizes fit in one response (at least one)."""
    budget = max_response_bytes - _RESPONSE_OVERHEAD_BYTES
    used = 0
    for count, size in enumerate(sizes):
        used += size + 8  # field tag and length prefix
        if used > budget and count > 0:
            return count
    return len(sizes)


def fits(whole: Any, max_response_bytes: int) -> bool:
    """Whether the response `whole` (a protobuf message) fits in `max_response_bytes`:
    one size computation, where `fitting` would size its items one by one."""
    return bool(whole.ByteSize() <= max_response_bytes - _RESPONSE_OVERHEAD_BYTES)


def decode_seq(token: str, binding: Sequence[Any]) -> int | None:
    """The position of a token of a seq-ordered listing (messages, events); None when
    `token` is empty.

    Raises:
        ApiError: INVALID_ARGUMENT for a malformed token, or one issued for another request.
    """
    if not token:
        return None
    position = decode(token, binding)
    if len(position) != 1 or not isinstance(position[0], int) or position[0] < 0:
        raise bad_position()
    seq: int = position[0]
    return seq


def seq_page(
    items: MutableSequence[Any],
    next_seq: int | None,
    binding: Sequence[Any],
    max_response_bytes: int,
    whole: Any = None,
) -> str:
    """Cut a page of seq-ordered protos (a list or a response's repeated field) short of
    the response limit, in place; the next page's token ("" on the last page). `whole`
    as in `fitting`."""
    kept = fitting(items, max_response_bytes, whole)
    if kept < len(items):
        next_seq = items[kept - 1].seq
        del items[kept:]
    return _seq_token(binding, next_seq)


def encoded_seq_page(
    encoded: list[bytes],
    seqs: Sequence[int],
    next_seq: int | None,
    binding: Sequence[Any],
    max_response_bytes: int,
) -> str:
    """`seq_page` for items already encoded (`api.wire`), whose seqs are `seqs`."""
    sizes = [len(item) for item in encoded]
    kept = len(encoded)
    if sum(sizes) + 8 * kept > max_response_bytes - _RESPONSE_OVERHEAD_BYTES:
        kept = _count_fitting(sizes, max_response_bytes)
    if kept < len(encoded):
        next_seq = seqs[kept - 1]
        del encoded[kept:]
    return _seq_token(binding, next_seq)


def _seq_token(binding: Sequence[Any], next_seq: int | None) -> str:
    return encode(binding, [next_seq]) if next_seq is not None else ""
