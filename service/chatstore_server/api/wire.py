"""Answers written in the protobuf wire format from messages already encoded by the
store (`store.encoded`): a ListMessages page is one `bytes.join`, with no Message
object per message. The server sends a handler's `bytes` as they are
(`api.registration`)."""

from __future__ import annotations

from collections.abc import Iterable

from chatstore_server.store.encoded import SMALL, VARINTS, varint

# Keys of ListMessagesResponse's fields (session_service.proto's numbers).
_MESSAGES = b"\x0a"  # 1, LEN, repeated
_NEXT_PAGE_TOKEN = b"\x12"  # 2, LEN


def list_messages_response(messages: Iterable[bytes], next_page_token: str) -> bytes:
    """An encoded `ListMessagesResponse` of encoded `messages` and the next page's token
    ("" for none)."""
    small, varints = SMALL, VARINTS
    parts: list[bytes] = []
    for message in messages:
        size = len(message)
        parts += (_MESSAGES, varints[size] if size < small else varint(size), message)
    if next_page_token:
        token = next_page_token.encode()
        parts += (_NEXT_PAGE_TOKEN, varint(len(token)), token)
    return b"".join(parts)
